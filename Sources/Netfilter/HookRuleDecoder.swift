import Netlink
import RandSNATCore

// The shadowing check's decoders: a legacy rule's bytes, and an nf_tables rule's expressions, as a
// `NATHookRule` (conditions and a verdict). NATHookReader feeds them what it reads.

/// Reads a legacy rule (and the matches and targets iptables-nft keeps in xt form) as the shadowing
/// check's `NATHookRule`: the entry through the xtables codec (`XtablesEntry`), the matches' data as
/// their kernel structs (xt_mark_mtinfo1, xt_addrtype_info_v1, xt_addrtype_info).
extension RuleDecoder {
    static func hookRule(_ rule: IPTCTable.Rule, family: Family, isChain: (String) -> Bool) -> NATHookRule {
        let entry: XtablesEntry
        do { entry = try rule.entry(family) } catch {
            return NATHookRule([.other("\(error)")], .none(rule.targetName))
        }
        var conditions: [NATHookRule.Condition] = []
        if let source = entry.source?.cidr { conditions.append(.source(source, inverted: entry.inverse.contains(.source))) }
        if let destination = entry.destination?.cidr {
            conditions.append(.destination(destination, inverted: entry.inverse.contains(.destination)))
        }
        // iptables keeps a wildcard's "+" in the name (the mask stops before it): the name reads as written.
        if let out = entry.outInterface { conditions.append(.outInterface(out.name, inverted: entry.inverse.contains(.outInterface))) }
        if entry.proto != 0 { conditions.append(.proto(UInt8(truncatingIfNeeded: entry.proto), inverted: entry.inverse.contains(.proto))) }
        for match in entry.matches {
            conditions += Self.conditions(match: match.name, revision: match.revision, payload: match.data)
        }
        let target = rule.targetName
        let verdict: NATHookRule.Verdict
        switch target {
        case "MASQUERADE", "SNAT":
            verdict = .snat(natTarget(name: target, range: entry.target.natRange(family: family) ?? NATRange()))
        case "ACCEPT", "DROP", "RETURN": verdict = .stop(target)
        case _ where isChain(target): verdict = entry.flags.contains(.goto) ? .goto(target) : .jump(target)
        default: verdict = .none(target)
        }
        return NATHookRule(conditions, verdict)
    }

    /// The conditions of an xt match, read from its data (missing trailing bytes read as 0).
    static func conditions(match: String, revision: UInt8, payload: [UInt8]) -> [NATHookRule.Condition] {
        switch (match, revision) {
        case ("comment", _):
            return [.comment(String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self))]
        case ("mark", 1):
            guard let mark = XtablesReadMatch.mark(payload) else { return [.other("-m \(match)")] }
            return [.mark(value: mark.value, mask: mark.mask, inverted: mark.inverted)]
        case ("addrtype", 0), ("addrtype", 1):
            let types = XtablesReadMatch.addressTypes(revision: revision, payload)
            var found: [NATHookRule.Condition] = []
            if types.source != 0 { found.append(.addressType(source: true, types: types.source, inverted: types.invertSource)) }
            if types.destination != 0 {
                found.append(.addressType(source: false, types: types.destination, inverted: types.invertDestination))
            }
            return found
        default:
            return [.other("-m \(match)")]
        }
    }

    /// A MASQUERADE/SNAT target's data (an nft `target` expression's info): `compat` for the IPv4
    /// revision 0 layout (nf_nat_ipv4_multi_range_compat), else nf_nat_range(2).
    static func natTarget(name: String, payload: [UInt8], compat: Bool, family: Family) -> NATHookRule.NATTarget {
        natTarget(name: name, range: NATRange(reading: payload, compat ? .compat : .range, family: family))
    }

    /// The range's addresses (SNAT), ports and --random-fully.
    static func natTarget(name: String, range: NATRange) -> NATHookRule.NATTarget {
        var toSource: String?
        if name == "SNAT", let addresses = range.addresses {
            toSource = addresses.lowerBound == addresses.upperBound ? "\(addresses.lowerBound)" : "\(addresses.lowerBound)-\(addresses.upperBound)"
        }
        return NATHookRule.NATTarget(name: name, toSource: toSource, ports: range.ports, randomFully: range.flags.contains(.randomFully))
    }
}

/// Turns an nf_tables rule's expressions into conditions and a verdict: loads into registers
/// (payload, meta, bitwise masks, immediates) are followed to the `cmp` that tests them.
struct NFTRuleDecoder {
    enum Loaded {
        case payload(offset: UInt32, length: UInt32, mask: [UInt8]?)
        case meta(NFTMetaKey, mask: [UInt8]?)
        case value([UInt8])
    }

    /// The table is `ip` (an `xt` target's NAT range is then the IPv4 compat layout at revision 0).
    let ipv4: Bool
    /// The packets' family: the table's (ip, ip6), or in an inet table what `meta nfproto` tested.
    var family: Family?
    var registers: [UInt32: Loaded] = [:]
    var conditions: [NATHookRule.Condition] = []
    var verdict = NATHookRule.Verdict.none("")

    init(family: Family?) {
        self.family = family
        ipv4 = family == .ipv4
    }

    /// Follows one expression (read by `NFTDecoder`, with `NFTExpressionAttribute`'s names).
    /// - Throws: when a nested value or verdict in it is not whole attributes.
    mutating func add(_ e: NFTExpressionDump) throws(NetlinkError) {
        typealias A = NFTExpressionAttribute
        func register(_ name: A) -> [UInt8]? {
            guard let number = e.u32(name), case .value(let value)? = registers[number] else { return nil }
            return value
        }
        func ports(_ low: A, _ high: A) -> ClosedRange<UInt16>? {
            guard let first = register(low), let last = register(high), first.count >= 2, last.count >= 2 else { return nil }
            let from = UInt16(first[0]) << 8 | UInt16(first[1]), to = UInt16(last[0]) << 8 | UInt16(last[1])
            return from <= to ? from...to : nil
        }
        switch e.name {
        case "payload":
            guard let dreg = e.u32(A.payloadDestination) else { return }
            if e.u32(A.payloadBase) == NFTConstant.networkHeader {
                registers[dreg] = .payload(offset: e.u32(A.payloadOffset) ?? 0, length: e.u32(A.payloadLength) ?? 0, mask: nil)
            } else {
                registers[dreg] = nil
                conditions.append(.other("@th"))
            }
        case "meta":
            guard let dreg = e.u32(A.metaDestination), let key = e.u32(A.metaKey) else { return }
            registers[dreg] = .meta(NFTMetaKey(key), mask: nil)
        case "bitwise":
            guard let source = e.u32(A.bitwiseSource), let target = e.u32(A.bitwiseDestination) else { return }
            let mask = try e.value(A.bitwiseMask) ?? []
            switch registers[source] {
            case .payload(let offset, let length, _): registers[target] = .payload(offset: offset, length: length, mask: mask)
            case .meta(let key, _): registers[target] = .meta(key, mask: mask)
            default: registers[target] = nil
            }
        case "immediate":
            guard let dreg = e.u32(A.immediateDestination) else { return }
            let payload = try e.data[A.immediateData]?.nestedAttributes() ?? []
            guard dreg == NFTRegister.verdict.rawValue else {
                registers[dreg] = .value(payload[NFTDataAttribute.value]?.payload ?? [])
                return
            }
            let verdictData = try payload[NFTDataAttribute.verdict]?.nestedAttributes() ?? []
            let code = NFTVerdictCode(verdictData[NFTDataAttribute.verdictCode]?.be32 ?? 0)
            let chain = verdictData[NFTDataAttribute.verdictChain]?.string ?? "?"
            verdict = switch code {
            case .jump: .jump(chain)
            case .goto: .goto(chain)
            case .return: .stop("RETURN")
            case .accept: .stop("ACCEPT")
            case .drop: .stop("DROP")
            default: .none("")
            }
        case "cmp":
            guard let source = e.u32(A.cmpSource) else { return }
            let op = NFTCmpOperator(e.u32(A.cmpOperator) ?? 0)
            let condition = Self.condition(registers[source], op: op, value: try e.value(A.cmpData) ?? [], family: family)
            if case .family(let known) = condition { family = known }
            conditions.append(condition)
        case "lookup":
            let set = e.string(A.lookupSet) ?? "?"
            let inverted = NFTLookupFlags(e.u32(A.lookupFlags) ?? 0).contains(.inverted)
            conditions.append(.other("\(inverted ? "!= " : "")@\(set)"))
        case "masq":
            verdict = .snat(.init(name: "MASQUERADE", ports: ports(A.masqPortMin, A.masqPortMax),
                                  randomFully: (e.u32(A.masqFlags) ?? 0) & NFTConstant.randomFully != 0))
        case "nat" where e.u32(A.natType) == NFTConstant.natSource:
            let family: Family = e.u32(A.natFamily) == UInt32(NFTFamily.ipv6) ? .ipv6 : .ipv4
            let addresses = [A.natAddressMin, A.natAddressMax].compactMap { register($0) }
                .compactMap { IPAddress(family: family, bytes: Array($0.prefix(family == .ipv4 ? 4 : 16))) }.map { "\($0)" }
            verdict = .snat(.init(name: "SNAT", toSource: addresses.isEmpty ? nil : Array(Set(addresses)).sorted().joined(separator: "-"),
                                  ports: ports(A.natPortMin, A.natPortMax),
                                  randomFully: (e.u32(A.natFlags) ?? 0) & NFTConstant.randomFully != 0))
        case "target":
            let target = e.string(A.targetName) ?? ""
            let info = e.data[A.targetInfo]?.payload ?? []
            let revision = e.u32(A.targetRevision) ?? 0
            verdict = target == "MASQUERADE" || target == "SNAT"
                ? .snat(RuleDecoder.natTarget(name: target, payload: info, compat: ipv4 && revision == 0, family: ipv4 ? .ipv4 : .ipv6))
                : .none(target)
        case "match":
            conditions += RuleDecoder.conditions(match: e.string(A.matchName) ?? "", revision: UInt8(truncatingIfNeeded: e.u32(A.matchRevision) ?? 0),
                                                 payload: e.data[A.matchInfo]?.payload ?? [])
        case "counter":
            break
        default:
            conditions.append(.other(e.name))
        }
    }

    /// The condition a `cmp` makes of what its register holds.
    /// - Parameter family: the packets' family when the table (ip, ip6) or an earlier `meta nfproto` says it.
    static func condition(_ loaded: Loaded?, op: NFTCmpOperator, value: [UInt8], family: Family?) -> NATHookRule.Condition {
        let inverted = op == .notEqual
        guard op == .equal || inverted else { return .other("cmp") }
        switch loaded {
        case .payload(let offset, let length, let mask)?:
            // ip saddr/daddr at 12/16 (4 bytes), ip6 saddr/daddr at 8/24 (16 bytes); nft loads only the
            // bytes a prefix needs (`ip saddr 198.18.0.0/16` is 2 bytes at 12), masking the last one
            // when the prefix is not a whole number of bytes.
            let family = family ?? (length == 16 ? .ipv6 : (length == 4 ? .ipv4 : nil))
            let size = family == .ipv4 ? 4 : 16
            guard let family, length >= 1, Int(length) <= size, value.count == Int(length),
                  let address = IPAddress(family: family, bytes: value + Array(repeating: 0, count: size - value.count)) else {
                return .other("@nh,\(offset * 8),\(length * 8)")
            }
            let prefix = mask.map { $0.reduce(0) { $0 + $1.nonzeroBitCount } } ?? Int(length) * 8
            let cidr = CIDR(address: address, prefix: prefix)
            switch (family, offset) {
            case (.ipv4, 12), (.ipv6, 8): return .source(cidr, inverted: inverted)
            case (.ipv4, 16), (.ipv6, 24): return .destination(cidr, inverted: inverted)
            default: return .other("@nh,\(offset * 8),\(length * 8)")
            }
        case .meta(let key, let mask)?:
            func host32(_ bytes: [UInt8]?) -> UInt32? {
                guard let bytes, bytes.count >= 4 else { return nil }
                return bytes.prefix(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            }
            switch key {
            case .outInterfaceName:
                let name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
                return .outInterface(value.contains(0) ? name : name + "*", inverted: inverted)
            case .outInterface:
                return .outInterface("#\(host32(value) ?? 0)", inverted: inverted)
            case .mark:
                return .mark(value: host32(value) ?? 0, mask: host32(mask) ?? UInt32.max, inverted: inverted)
            case .nfproto where !inverted:
                return .family(value.first == NFTFamily.ipv6 ? .ipv6 : .ipv4)
            case .l4proto where value.count == 1:
                return .proto(value[0], inverted: inverted)
            default:
                return .other("meta \(key)")
            }
        default:
            return .other("cmp")
        }
    }
}
