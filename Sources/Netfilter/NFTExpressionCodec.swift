internal import CNetfilterUAPI
import Netlink
import RandSNATCore

/// The attribute names inside one expression's DATA, by expression (cast once here).
struct NFTExpressionAttribute: NetlinkAttributeName {
    let type: UInt16
    static let metaKey = Self(type: cValue(NFTA_META_KEY)), metaDestination = Self(type: cValue(NFTA_META_DREG))
    static let cmpSource = Self(type: cValue(NFTA_CMP_SREG)), cmpOperator = Self(type: cValue(NFTA_CMP_OP))
    static let cmpData = Self(type: cValue(NFTA_CMP_DATA))
    static let payloadBase = Self(type: cValue(NFTA_PAYLOAD_BASE)), payloadOffset = Self(type: cValue(NFTA_PAYLOAD_OFFSET))
    static let payloadLength = Self(type: cValue(NFTA_PAYLOAD_LEN)), payloadDestination = Self(type: cValue(NFTA_PAYLOAD_DREG))
    static let lookupSet = Self(type: cValue(NFTA_LOOKUP_SET)), lookupSource = Self(type: cValue(NFTA_LOOKUP_SREG))
    static let lookupFlags = Self(type: cValue(NFTA_LOOKUP_FLAGS))
    static let numgenDestination = Self(type: cValue(NFTA_NG_DREG)), numgenModulus = Self(type: cValue(NFTA_NG_MODULUS))
    static let numgenType = Self(type: cValue(NFTA_NG_TYPE))
    static let immediateDestination = Self(type: cValue(NFTA_IMMEDIATE_DREG)), immediateData = Self(type: cValue(NFTA_IMMEDIATE_DATA))
    static let masqFlags = Self(type: cValue(NFTA_MASQ_FLAGS))
    static let masqPortMin = Self(type: cValue(NFTA_MASQ_REG_PROTO_MIN)), masqPortMax = Self(type: cValue(NFTA_MASQ_REG_PROTO_MAX))
    static let natType = Self(type: cValue(NFTA_NAT_TYPE)), natFamily = Self(type: cValue(NFTA_NAT_FAMILY))
    static let natAddressMin = Self(type: cValue(NFTA_NAT_REG_ADDR_MIN)), natAddressMax = Self(type: cValue(NFTA_NAT_REG_ADDR_MAX))
    static let natPortMin = Self(type: cValue(NFTA_NAT_REG_PROTO_MIN)), natPortMax = Self(type: cValue(NFTA_NAT_REG_PROTO_MAX))
    static let natFlags = Self(type: cValue(NFTA_NAT_FLAGS))
    /// iptables-nft's `target` (an xtables target inside nf_tables).
    static let targetName = Self(type: cValue(NFTA_TARGET_NAME)), targetRevision = Self(type: cValue(NFTA_TARGET_REV))
    static let targetInfo = Self(type: cValue(NFTA_TARGET_INFO))
    /// iptables-nft's `match` (an xtables match inside nf_tables).
    static let matchName = Self(type: cValue(NFTA_MATCH_NAME)), matchRevision = Self(type: cValue(NFTA_MATCH_REV))
    static let matchInfo = Self(type: cValue(NFTA_MATCH_INFO))
    /// `bitwise` (read only: the shadowing check follows masks nft writes for prefixes and marks).
    static let bitwiseSource = Self(type: cValue(NFTA_BITWISE_SREG)), bitwiseDestination = Self(type: cValue(NFTA_BITWISE_DREG))
    static let bitwiseMask = Self(type: cValue(NFTA_BITWISE_MASK))
}

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
/// Numbers are the kernel's (linux/netfilter/nf_tables.h).
enum NFTExpressionCodec {
    typealias A = NFTExpressionAttribute
    static let cmpEqual = UInt32(NFT_CMP_EQ.rawValue), networkHeader = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)
    static let numgenRandom = UInt32(NFT_NG_RANDOM.rawValue), natSource = UInt32(NFT_NAT_SNAT.rawValue)

    /// Writes one NFTA_LIST_ELEM: the expression's name and DATA.
    static func encode(_ expression: NFTExpression, into request: inout NetlinkRequest) {
        let name: String
        switch expression {
        case .meta: name = "meta"
        case .equal: name = "cmp"
        case .payload: name = "payload"
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
            r.addNFT32(A.metaKey, key.rawValue)
            r.addNFT32(A.metaDestination, register.rawValue)
        case .equal(let register, let bytes):
            r.addNFT32(A.cmpSource, register.rawValue)
            r.addNFT32(A.cmpOperator, cmpEqual)
            r.addValue(A.cmpData, bytes)
        case .payload(let offset, let length, let register):
            r.addNFT32(A.payloadDestination, register.rawValue)
            r.addNFT32(A.payloadBase, networkHeader)
            r.addNFT32(A.payloadOffset, offset)
            r.addNFT32(A.payloadLength, length)
        case .lookup(let set, let register):
            r.addString(A.lookupSet, set)
            r.addNFT32(A.lookupSource, register.rawValue)
        case .randomNumber(let modulus, let register):
            r.addNFT32(A.numgenDestination, register.rawValue)
            r.addNFT32(A.numgenModulus, modulus)
            r.addNFT32(A.numgenType, numgenRandom)
        case .immediate(let register, let bytes):
            r.addNFT32(A.immediateDestination, register.rawValue)
            r.addValue(A.immediateData, bytes)
        case .verdict(let verdict):
            r.addNFT32(A.immediateDestination, NFTRegister.verdict.rawValue)
            r.nested(A.immediateData) {
                $0.nested(NFTDataAttribute.verdict) {
                    $0.addNFT32(NFTDataAttribute.verdictCode, UInt32(bitPattern: verdict.code))
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
            r.addNFT32(A.natType, natSource)
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
            guard let key = e.u32(A.metaKey).flatMap(NFTExpression.MetaKey.init), let r = register(A.metaDestination) else { return nil }
            return .meta(key, r)
        case "cmp":
            guard e.u32(A.cmpOperator) == cmpEqual, let r = register(A.cmpSource) else { return nil }
            return .equal(r, try e.value(A.cmpData) ?? [])
        case "payload":
            guard e.u32(A.payloadBase) == networkHeader, let offset = e.u32(A.payloadOffset), let length = e.u32(A.payloadLength),
                  let r = register(A.payloadDestination) else { return nil }
            return .payload(offset: offset, length: length, r)
        case "lookup":
            guard let set = e.string(A.lookupSet), let r = register(A.lookupSource), (e.u32(A.lookupFlags) ?? 0) == 0 else { return nil }
            return .lookup(set: set, r)
        case "numgen":
            guard let modulus = e.u32(A.numgenModulus), let r = register(A.numgenDestination), e.u32(A.numgenType) == numgenRandom
            else { return nil }
            return .randomNumber(modulus: modulus, r)
        case "immediate":
            guard let r = register(A.immediateDestination) else { return nil }
            let payload = try e.data[A.immediateData]?.nestedAttributes() ?? []
            if r == .verdict {
                let verdict = try payload[NFTDataAttribute.verdict]?.nestedAttributes() ?? []
                let code = Int32(bitPattern: verdict[NFTDataAttribute.verdictCode]?.be32 ?? 0)
                if code == NFTExpression.Verdict.return.code { return .verdict(.return) }
                if code == NFTExpression.Verdict.jump("").code, let chain = verdict[NFTDataAttribute.verdictChain]?.string {
                    return .verdict(.jump(chain))
                }
                return nil
            }
            return .immediate(r, payload[NFTDataAttribute.value]?.payload ?? [])
        case "masq":
            let low = register(A.masqPortMin), high = register(A.masqPortMax)
            return .masquerade(flags: e.u32(A.masqFlags) ?? 0, ports: low.flatMap { l in high.map { (l, $0) } })
        case "nat":
            guard e.u32(A.natType) == natSource, let low = register(A.natAddressMin), let high = register(A.natAddressMax) else { return nil }
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
