import CNetfilter
import Glibc
import Netlink
import RandSNATCore

/// Reads the node's nat chains at the postrouting hook (legacy xtables through libiptc, nf_tables
/// through netlink) into `NATHookTable`s, and randsnat's pod subnets, for the shadowing check
/// (`EarlierSNAT`, pure, in the core). Reads only; used by doctor, STATUS and the installer.
public struct NATHookReader {
    let netlink: NetlinkSocket

    public init() throws(NetfilterError) {
        netlink = try NetlinkSocket.netfilterSocket()
    }

    init(netlink: NetlinkSocket) { self.netlink = netlink }

    /// SNAT rules that run before randsnat's on `backend` (nil: the one `auto` picks on this node),
    /// and what could not be read (each a sentence).
    public func earlierSNAT(backend: BackendKind?) -> (found: [EarlierSNAT], unreadable: [String]) {
        let (tables, unreadable) = tables()
        let kind = backend ?? NodeNetfilter.detect(netlink)
        return (EarlierSNAT.find(tables, podSubnets: podSubnets(), backend: kind), unreadable)
    }

    /// The installer's check: the config key `backend` decides which of randsnat's backends.
    public static func earlierSNAT(_ choice: BackendChoice) -> (found: [EarlierSNAT], unreadable: [String]) {
        do {
            return try NATHookReader().earlierSNAT(backend: choice == .auto ? nil : BackendKind(rawValue: choice.rawValue))
        } catch {
            return ([], ["netfilter cannot be read to look for SNAT rules before randsnat's: \(error)"])
        }
    }

    /// STATUS's lines: one per earlier SNAT rule (STATUS still succeeds: ADD works, its SNAT does not
    /// take effect for that traffic until the operator changes the setting the line names).
    /// - Parameter legacy: the legacy nat tables when the caller has read them already.
    func earlierSNATWarnings(backend: BackendKind, legacy: [IPTCTable]? = nil) -> [String] {
        let (tables, _) = tables(legacy: legacy)
        return EarlierSNAT.find(tables, podSubnets: podSubnets(), backend: backend).map { "warning: \($0.text)" }
    }

    /// - Parameter legacy: the legacy nat tables when the caller has read them already (STATUS).
    func tables(legacy read: [IPTCTable]? = nil) -> (tables: [NATHookTable], unreadable: [String]) {
        var tables: [NATHookTable] = []
        var unreadable: [String] = []
        for family in Family.allCases {
            do {
                tables.append(legacy(try read?.first { $0.family == family } ?? IPTCTable(family: family)))
            } catch {
                unreadable.append("the \(family == .ipv4 ? "iptables" : "ip6tables")-legacy nat table cannot be read to look for SNAT rules before randsnat's: \(error)")
            }
        }
        do {
            tables += try nftables()
        } catch {
            unreadable.append("nf_tables cannot be read to look for SNAT rules before randsnat's: \(error)")
        }
        return (tables, unreadable)
    }

    /// The pod subnets in randsnat's subnet sets (ipsets and `inet randsnat`'s sets), every network.
    public func podSubnets() -> [CIDR] {
        var subnets: [CIDR] = []
        let ipset = IPSet(socket: netlink)
        for name in (try? ipset.names()) ?? [] where name.hasPrefix(NetworkID.prefix) && (name.hasSuffix("-S4") || name.hasSuffix("-S6")) {
            for entry in (try? ipset.entries(name)) ?? [] {
                subnets.append(CIDR(address: entry.address, prefix: entry.prefix ?? entry.address.family.bitCount))
            }
        }
        if let backend = try? NFTablesBackend(reader: netlink) {
            for set in (try? backend.setNames()) ?? [] where set.hasPrefix(NetworkID.prefix) && (set.hasSuffix("-S4") || set.hasSuffix("-S6")) {
                let family: Family = set.hasSuffix("6") ? .ipv6 : .ipv4
                subnets += NFTInterval.pair((try? backend.elements(of: set, family: family)) ?? []).compactMap(\.cidr)
            }
        }
        return subnets
    }

    // MARK: legacy xtables

    /// POSTROUTING and the chains it leads to.
    func legacy(_ table: IPTCTable) -> NATHookTable {
        var chains: [String: [NATHookRule]] = [:]
        var pending = ["POSTROUTING"]
        while let chain = pending.popLast() {
            guard chains[chain] == nil else { continue }
            let rules = table.rules(in: chain).map { RuleDecoder.hookRule($0, family: table.family, isChain: table.chainExists) }
            chains[chain] = rules
            for rule in rules {
                switch rule.verdict {
                case .jump(let target), .goto(let target): pending.append(target)
                default: break
                }
            }
        }
        return NATHookTable(source: table.family == .ipv4 ? "iptables-legacy" : "ip6tables-legacy", table: "nat", syntax: .iptables,
                            hooks: [.init(chain: "POSTROUTING", priority: NATHookTable.srcnatPriority)], chains: chains)
    }

    // MARK: nf_tables

    static let familyNames: [UInt8: String] = [2: "ip", 10: "ip6", 1: "inet"]

    func dump(_ message: nf_tables_msg_types, _ what: String) throws(NetfilterError) -> [NetlinkReply] {
        let request = NetlinkRequest(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(message.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP), sequence: netlink.nextSequence(),
                                     family: UInt8(NFPROTO_UNSPEC))
        return try netlink.netfilterExchange(request, operation: "nf_tables \(what) dump", object: "all tables")
    }

    /// Tables of family ip, ip6 or inet that have a nat base chain at postrouting, with all their chains.
    func nftables() throws(NetfilterError) -> [NATHookTable] {
        var hooks: [String: [NATHookTable.Hook]] = [:]
        for reply in try dump(NFT_MSG_GETCHAIN, "chain") {
            let attributes = reply.nfAttributes
            guard let family = Self.familyNames[reply.family ?? 0], attributes[type: UInt16(NFTA_CHAIN_TYPE.rawValue)]?.string == "nat",
                  let hook = attributes[type: UInt16(NFTA_CHAIN_HOOK.rawValue)]?.nested,
                  hook[type: UInt16(NFTA_HOOK_HOOKNUM.rawValue)]?.be32 == UInt32(NF_INET_POST_ROUTING.rawValue),
                  let priority = hook[type: UInt16(NFTA_HOOK_PRIORITY.rawValue)]?.be32 else { continue }
            let table = "\(family) \(attributes[type: UInt16(NFTA_CHAIN_TABLE.rawValue)]?.string ?? "?")"
            hooks[table, default: []].append(.init(chain: attributes[type: UInt16(NFTA_CHAIN_NAME.rawValue)]?.string ?? "?",
                                                   priority: Int(Int32(bitPattern: priority))))
        }
        guard !hooks.isEmpty else { return [] }
        var chains: [String: [String: [NATHookRule]]] = [:]
        for reply in try dump(NFT_MSG_GETRULE, "rule") {
            let attributes = reply.nfAttributes
            guard let family = Self.familyNames[reply.family ?? 0] else { continue }
            let table = "\(family) \(attributes[type: UInt16(NFTA_RULE_TABLE.rawValue)]?.string ?? "?")"
            guard hooks[table] != nil else { continue }
            let chain = attributes[type: UInt16(NFTA_RULE_CHAIN.rawValue)]?.string ?? "?"
            var decoder = NFTRuleDecoder(family: ["ip": .ipv4, "ip6": .ipv6][family])
            for element in attributes[type: UInt16(NFTA_RULE_EXPRESSIONS.rawValue)]?.nested ?? [] { decoder.add(element.nested) }
            let comment = NFTablesBackend.userDataString(attributes[type: UInt16(NFTA_RULE_USERDATA.rawValue)]?.payload ?? [], type: 0)
            if !comment.isEmpty {
                decoder.conditions.append(.comment(comment))
            }
            chains[table, default: [:]][chain, default: []].append(NATHookRule(decoder.conditions, decoder.verdict))
        }
        // iptables-nft's tables (`ip nat`, `ip6 nat`, as `natRuleCount` counts them) are read back as
        // iptables-nft-save writes them; every other table in nft's syntax.
        return hooks.keys.sorted().map { table in
            NATHookTable(source: "nftables", table: table, syntax: table == "ip nat" || table == "ip6 nat" ? .iptables : .nft,
                         hooks: hooks[table]!, chains: chains[table] ?? [:],
                         isRandsnat: table == "inet \(NFTFamilyPlan.table)")
        }
    }
}

/// Turns an nf_tables rule's expressions into conditions and a verdict: loads into registers
/// (payload, meta, bitwise masks, immediates) are followed to the `cmp` that tests them.
struct NFTRuleDecoder {
    enum Loaded {
        case payload(offset: UInt32, length: UInt32, mask: [UInt8]?)
        case meta(UInt32, mask: [UInt8]?)
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

    mutating func add(_ expression: [NetlinkAttribute]) {
        let name = expression[type: UInt16(NFTA_EXPR_NAME.rawValue)]?.string ?? ""
        let data = expression[type: UInt16(NFTA_EXPR_DATA.rawValue)]?.nested ?? []
        func u32(_ type: UInt32) -> UInt32? { data[type: UInt16(type)]?.be32 }
        func bytes(_ type: UInt32) -> [UInt8] { data[type: UInt16(type)]?.nested[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload ?? [] }
        func register(_ type: UInt32) -> [UInt8]? {
            guard let number = u32(type), case .value(let value)? = registers[number] else { return nil }
            return value
        }
        func ports(_ low: UInt32, _ high: UInt32) -> ClosedRange<UInt16>? {
            guard let first = register(low), let last = register(high), first.count >= 2, last.count >= 2 else { return nil }
            let from = UInt16(first[0]) << 8 | UInt16(first[1]), to = UInt16(last[0]) << 8 | UInt16(last[1])
            return from <= to ? from...to : nil
        }
        switch name {
        case "payload":
            guard let dreg = u32(NFTA_PAYLOAD_DREG.rawValue) else { return }
            if u32(NFTA_PAYLOAD_BASE.rawValue) == NFT_PAYLOAD_NETWORK_HEADER.rawValue {
                registers[dreg] = .payload(offset: u32(NFTA_PAYLOAD_OFFSET.rawValue) ?? 0, length: u32(NFTA_PAYLOAD_LEN.rawValue) ?? 0, mask: nil)
            } else {
                registers[dreg] = nil
                conditions.append(.other("@th"))
            }
        case "meta":
            guard let dreg = u32(NFTA_META_DREG.rawValue), let key = u32(NFTA_META_KEY.rawValue) else { return }
            registers[dreg] = .meta(key, mask: nil)
        case "bitwise":
            guard let source = u32(NFTA_BITWISE_SREG.rawValue), let target = u32(NFTA_BITWISE_DREG.rawValue) else { return }
            let mask = bytes(NFTA_BITWISE_MASK.rawValue)
            switch registers[source] {
            case .payload(let offset, let length, _): registers[target] = .payload(offset: offset, length: length, mask: mask)
            case .meta(let key, _): registers[target] = .meta(key, mask: mask)
            default: registers[target] = nil
            }
        case "immediate":
            guard let dreg = u32(NFTA_IMMEDIATE_DREG.rawValue) else { return }
            let payload = data[type: UInt16(NFTA_IMMEDIATE_DATA.rawValue)]?.nested ?? []
            guard dreg == NFT_REG_VERDICT.rawValue else {
                registers[dreg] = .value(payload[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload ?? [])
                return
            }
            let verdictData = payload[type: UInt16(NFTA_DATA_VERDICT.rawValue)]?.nested ?? []
            let code = Int32(bitPattern: verdictData[type: UInt16(NFTA_VERDICT_CODE.rawValue)]?.be32 ?? 0)
            let chain = verdictData[type: UInt16(NFTA_VERDICT_CHAIN.rawValue)]?.string ?? "?"
            verdict = switch code {
            case NFT_JUMP.rawValue: .jump(chain)
            case NFT_GOTO.rawValue: .goto(chain)
            case NFT_RETURN.rawValue: .stop("RETURN")
            case Int32(NF_ACCEPT): .stop("ACCEPT")
            case Int32(NF_DROP): .stop("DROP")
            default: .none("")
            }
        case "cmp":
            guard let source = u32(NFTA_CMP_SREG.rawValue) else { return }
            let op = u32(NFTA_CMP_OP.rawValue) ?? 0
            let condition = Self.condition(registers[source], op: op, value: bytes(NFTA_CMP_DATA.rawValue), family: family)
            if case .family(let known) = condition { family = known }
            conditions.append(condition)
        case "lookup":
            let set = data[type: UInt16(NFTA_LOOKUP_SET.rawValue)]?.string ?? "?"
            conditions.append(.other("\((u32(NFTA_LOOKUP_FLAGS.rawValue) ?? 0) & NFT_LOOKUP_F_INV.rawValue != 0 ? "!= " : "")@\(set)"))
        case "masq":
            verdict = .snat(.init(name: "MASQUERADE", ports: ports(NFTA_MASQ_REG_PROTO_MIN.rawValue, NFTA_MASQ_REG_PROTO_MAX.rawValue),
                                  randomFully: (u32(NFTA_MASQ_FLAGS.rawValue) ?? 0) & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0))
        case "nat" where u32(NFTA_NAT_TYPE.rawValue) == NFT_NAT_SNAT.rawValue:
            let family: Family = u32(NFTA_NAT_FAMILY.rawValue) == UInt32(NFPROTO_IPV6) ? .ipv6 : .ipv4
            let addresses = [NFTA_NAT_REG_ADDR_MIN.rawValue, NFTA_NAT_REG_ADDR_MAX.rawValue].compactMap { register($0) }
                .compactMap { IPAddress(family: family, bytes: Array($0.prefix(family == .ipv4 ? 4 : 16))) }.map { "\($0)" }
            verdict = .snat(.init(name: "SNAT", toSource: addresses.isEmpty ? nil : Array(Set(addresses)).sorted().joined(separator: "-"),
                                  ports: ports(NFTA_NAT_REG_PROTO_MIN.rawValue, NFTA_NAT_REG_PROTO_MAX.rawValue),
                                  randomFully: (u32(NFTA_NAT_FLAGS.rawValue) ?? 0) & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0))
        case "target":
            let target = data[type: UInt16(NFTA_TARGET_NAME.rawValue)]?.string ?? ""
            let info = data[type: UInt16(NFTA_TARGET_INFO.rawValue)]?.payload ?? []
            let revision = u32(NFTA_TARGET_REV.rawValue) ?? 0
            verdict = target == "MASQUERADE" || target == "SNAT"
                ? .snat(RuleDecoder.natTarget(name: target, payload: info, compat: ipv4 && revision == 0, family: ipv4 ? .ipv4 : .ipv6))
                : .none(target)
        case "match":
            let match = data[type: UInt16(NFTA_MATCH_NAME.rawValue)]?.string ?? ""
            conditions += RuleDecoder.conditions(match: match, revision: UInt8(truncatingIfNeeded: u32(NFTA_MATCH_REV.rawValue) ?? 0),
                                                 payload: data[type: UInt16(NFTA_MATCH_INFO.rawValue)]?.payload ?? [])
        case "counter":
            break
        default:
            conditions.append(.other(name))
        }
    }

    /// The condition a `cmp` makes of what its register holds.
    /// - Parameter family: the packets' family when the table (ip, ip6) or an earlier `meta nfproto` says it.
    static func condition(_ loaded: Loaded?, op: UInt32, value: [UInt8], family: Family?) -> NATHookRule.Condition {
        let inverted = op == NFT_CMP_NEQ.rawValue
        guard op == NFT_CMP_EQ.rawValue || inverted else { return .other("cmp") }
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
            case NFT_META_OIFNAME.rawValue:
                let name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
                return .outInterface(value.contains(0) ? name : name + "*", inverted: inverted)
            case NFT_META_OIF.rawValue:
                return .outInterface("#\(host32(value) ?? 0)", inverted: inverted)
            case NFT_META_MARK.rawValue:
                return .mark(value: host32(value) ?? 0, mask: host32(mask) ?? UInt32.max, inverted: inverted)
            case NFT_META_NFPROTO.rawValue where !inverted:
                return .family(value.first == UInt8(NFPROTO_IPV6) ? .ipv6 : .ipv4)
            case NFT_META_L4PROTO.rawValue where value.count == 1:
                return .proto(value[0], inverted: inverted)
            default:
                return .other("meta \(key)")
            }
        default:
            return .other("cmp")
        }
    }
}
