import Netlink
import RandSNATCore

/// One expression as the kernel lists it: its name and its DATA's attributes.
struct NFTExpressionDump {
    let name: String
    let data: [NetlinkAttribute]

    func u32(_ name: NFTExpressionAttribute) -> UInt32? { data[name]?.be32 }
    func string(_ name: NFTExpressionAttribute) -> String? { data[name]?.string }
    /// The bytes of a data attribute's NFTA_DATA_VALUE.
    func value(_ name: NFTExpressionAttribute) throws(NetlinkError) -> [UInt8]? {
        try data[name]?.nestedAttributes()[NFTDataAttribute.value]?.payload
    }
}

/// randsnat's expressions on the wire, both ways: `encode` writes what `decode` reads back (as
/// google/nftables' expr types), so CHECK compares what the kernel holds with what ADD writes.
/// Numbers are the kernel's, declared once in NFTProtocol.swift.
enum NFTExpressionCodec {
    typealias A = NFTExpressionAttribute

    /// Writes one NFTA_LIST_ELEM: the expression's name and DATA.
    static func encode(_ expression: NFTExpression, into request: inout NetlinkRequest) {
        let name: String
        switch expression {
        case .meta: name = "meta"
        case .equal, .notEqual: name = "cmp"
        case .payload, .transportPayload: name = "payload"
        case .deleteFromSet: name = "dynset"
        case .lookup: name = "lookup"
        case .randomNumber: name = "numgen"
        case .immediate, .verdict: name = "immediate"
        case .masquerade: name = "masq"
        case .snat: name = "nat"
        }
        request.nested(NFTDataAttribute.listElement) { element in
            element.addString(NFTDataAttribute.expressionName, name)
            element.nested(NFTDataAttribute.expressionData) { data(&$0, expression) }
        }
    }

    private static func data(_ r: inout NetlinkRequest, _ expression: NFTExpression) {
        switch expression {
        case .meta(let key, let register):
            r.addNFT32(A.metaKey, key.key.wire)
            r.addNFT32(A.metaDestination, register.rawValue)
        case .equal(let register, let bytes):
            r.addNFT32(A.cmpSource, register.rawValue)
            r.addNFT32(A.cmpOperator, NFTCmpOperator.equal.wire)
            r.addValue(A.cmpData, bytes)
        case .notEqual(let register, let bytes):
            r.addNFT32(A.cmpSource, register.rawValue)
            r.addNFT32(A.cmpOperator, NFTCmpOperator.notEqual.wire)
            r.addValue(A.cmpData, bytes)
        case .payload(let offset, let length, let register):
            r.addNFT32(A.payloadDestination, register.rawValue)
            r.addNFT32(A.payloadBase, NFTConstant.networkHeader)
            r.addNFT32(A.payloadOffset, offset)
            r.addNFT32(A.payloadLength, length)
        case .transportPayload(let offset, let length, let register):
            r.addNFT32(A.payloadDestination, register.rawValue)
            r.addNFT32(A.payloadBase, NFTConstant.transportHeader)
            r.addNFT32(A.payloadOffset, offset)
            r.addNFT32(A.payloadLength, length)
        case .deleteFromSet(let set, let register):
            r.addString(A.dynsetSetName, set)
            r.addNFT32(A.dynsetOperation, NFTConstant.dynsetDelete)
            r.addNFT32(A.dynsetKeySource, register.rawValue)
        case .lookup(let set, let register):
            r.addString(A.lookupSet, set)
            r.addNFT32(A.lookupSource, register.rawValue)
        case .randomNumber(let modulus, let register):
            r.addNFT32(A.numgenDestination, register.rawValue)
            r.addNFT32(A.numgenModulus, modulus)
            r.addNFT32(A.numgenType, NFTConstant.numgenRandom)
        case .immediate(let register, let bytes):
            r.addNFT32(A.immediateDestination, register.rawValue)
            r.addValue(A.immediateData, bytes)
        case .verdict(let verdict):
            r.addNFT32(A.immediateDestination, NFTRegister.verdict.rawValue)
            r.nested(A.immediateData) {
                $0.nested(NFTDataAttribute.verdict) {
                    $0.addNFT32(NFTDataAttribute.verdictCode, verdict.code.wire)
                    if case .jump(let chain) = verdict { $0.addString(NFTDataAttribute.verdictChain, chain) }
                }
            }
        case .masquerade(let flags, let ports):
            r.addNFT32(A.masqFlags, flags)
            if let (low, high) = ports {
                r.addNFT32(A.masqPortMin, low.rawValue)
                r.addNFT32(A.masqPortMax, high.rawValue)
            }
        case .snat(let family, let addresses, let ports, let flags):
            r.addNFT32(A.natType, NFTConstant.natSource)
            r.addNFT32(A.natFamily, UInt32(family == .ipv4 ? NFTFamily.ipv4 : NFTFamily.ipv6))
            r.addNFT32(A.natAddressMin, addresses.0.rawValue)
            r.addNFT32(A.natAddressMax, addresses.1.rawValue)
            if let (low, high) = ports {
                r.addNFT32(A.natPortMin, low.rawValue)
                r.addNFT32(A.natPortMax, high.rawValue)
            }
            r.addNFT32(A.natFlags, flags)
        }
    }

    /// Reads an expression back (nil for kinds and forms randsnat does not write); throws when its
    /// attributes are not whole.
    static func decode(_ e: NFTExpressionDump) throws(NetlinkError) -> NFTExpression? {
        func register(_ name: A) -> NFTRegister? { e.u32(name).flatMap { NFTRegister(rawValue: $0) } }
        switch e.name {
        case "meta":
            guard let key = e.u32(A.metaKey).flatMap({ NFTExpression.MetaKey(NFTMetaKey($0)) }), let r = register(A.metaDestination) else { return nil }
            return .meta(key, r)
        case "cmp":
            guard let r = register(A.cmpSource) else { return nil }
            switch e.u32(A.cmpOperator).map(NFTCmpOperator.init) {
            case .equal?: return .equal(r, try e.value(A.cmpData) ?? [])
            case .notEqual?: return .notEqual(r, try e.value(A.cmpData) ?? [])
            default: return nil
            }
        case "payload":
            guard let offset = e.u32(A.payloadOffset), let length = e.u32(A.payloadLength), let r = register(A.payloadDestination) else { return nil }
            switch e.u32(A.payloadBase) {
            case NFTConstant.networkHeader: return .payload(offset: offset, length: length, r)
            case NFTConstant.transportHeader: return .transportPayload(offset: offset, length: length, r)
            default: return nil
            }
        case "dynset":
            guard e.u32(A.dynsetOperation) == NFTConstant.dynsetDelete, let set = e.string(A.dynsetSetName), let r = register(A.dynsetKeySource)
            else { return nil }
            return .deleteFromSet(set: set, key: r)
        case "lookup":
            guard let set = e.string(A.lookupSet), let r = register(A.lookupSource), (e.u32(A.lookupFlags) ?? 0) == 0 else { return nil }
            return .lookup(set: set, r)
        case "numgen":
            guard let modulus = e.u32(A.numgenModulus), let r = register(A.numgenDestination), e.u32(A.numgenType) == NFTConstant.numgenRandom
            else { return nil }
            return .randomNumber(modulus: modulus, r)
        case "immediate":
            guard let r = register(A.immediateDestination) else { return nil }
            let payload = try e.data[A.immediateData]?.nestedAttributes() ?? []
            if r == .verdict {
                let verdict = try payload[NFTDataAttribute.verdict]?.nestedAttributes() ?? []
                guard let wire = verdict[NFTDataAttribute.verdictCode]?.be32 else { return nil }
                let code = NFTVerdictCode(wire)
                if code == .return { return .verdict(.return) }
                if code == .drop { return .verdict(.drop) }
                if code == .accept { return .verdict(.accept) }
                if code == .jump, let chain = verdict[NFTDataAttribute.verdictChain]?.string {
                    return .verdict(.jump(chain))
                }
                return nil
            }
            return .immediate(r, payload[NFTDataAttribute.value]?.payload ?? [])
        case "masq":
            let low = register(A.masqPortMin), high = register(A.masqPortMax)
            return .masquerade(flags: e.u32(A.masqFlags) ?? 0, ports: low.flatMap { l in high.map { (l, $0) } })
        case "nat":
            guard e.u32(A.natType) == NFTConstant.natSource, let low = register(A.natAddressMin), let high = register(A.natAddressMax) else { return nil }
            let family: Family = e.u32(A.natFamily) == UInt32(NFTFamily.ipv6) ? .ipv6 : .ipv4
            let portLow = register(A.natPortMin), portHigh = register(A.natPortMax)
            // The kernel adds the flags it derives (NF_NAT_RANGE_MAP_IPS, _PROTO_SPECIFIED): keep the random bits.
            let flags = (e.u32(A.natFlags) ?? 0) & (NFTRule.randomFully | 1 << 2 | 1 << 3)
            return .snat(family: family, addresses: (low, high), ports: portLow.flatMap { l in portHigh.map { (l, $0) } }, flags: flags)
        default:
            return nil
        }
    }
}
