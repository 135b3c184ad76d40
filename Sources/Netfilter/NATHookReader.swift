internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore

/// Reads the node's nat chains at the postrouting hook (legacy xtables as the kernel's table blob,
/// nf_tables through netlink) into `NATHookTable`s, and randsnat's pod subnets, for the shadowing check
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
    func earlierSNATWarnings(backend: BackendKind, legacy: [any XtablesTableView]? = nil) -> [String] {
        let (tables, _) = tables(legacy: legacy)
        return EarlierSNAT.find(tables, podSubnets: podSubnets(), backend: backend).map { "warning: \($0.text)" }
    }

    /// - Parameter legacy: the legacy nat tables when the caller has read them already (STATUS, doctor);
    ///   the others are read here as the kernel's blob (`XtablesTableSnapshot`: no libiptc cache).
    func tables(legacy read: [any XtablesTableView]? = nil) -> (tables: [NATHookTable], unreadable: [String]) {
        var tables: [NATHookTable] = []
        var unreadable: [String] = []
        for family in Family.allCases {
            do {
                tables.append(legacy(try read?.first { $0.family == family } ?? XtablesTableSnapshot(family: family)))
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
    func legacy(_ table: any XtablesTableView) -> NATHookTable {
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

    static let familyNames: [UInt8: String] = [UInt8(NFPROTO_IPV4): "ip", UInt8(NFPROTO_IPV6): "ip6", UInt8(NFPROTO_INET): "inet"]

    /// Streams a dump of every table: `body` gets each message's family and attributes, one receive
    /// buffer in memory at a time (a node's 20,000 rules are not held as replies).
    func dump(_ message: nf_tables_msg_types, _ what: String, _ body: (UInt8, [NetlinkAttribute]) -> Void) throws(NetfilterError) {
        let request = NetlinkRequest(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(message.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP), sequence: netlink.nextSequence(),
                                     family: UInt8(NFPROTO_UNSPEC))
        do {
            try netlink.dump(request, operation: "nf_tables \(what) dump", object: "all tables") { bytes in
                guard bytes.count >= 4 else { return }  // nfgenmsg, then the attributes
                body(bytes[0], NetlinkAttribute.parse(Array(bytes)[4...]))
            }
        } catch {
            throw NetfilterError(error)
        }
    }

    /// One rule of a dump: its table ("FAMILY NAME"), chain, and the decoder fed its expressions.
    func decode(_ family: UInt8, _ attributes: [NetlinkAttribute]) -> (table: String, chain: String, decoder: NFTRuleDecoder)? {
        guard let family = Self.familyNames[family] else { return nil }
        let table = "\(family) \(attributes[type: UInt16(NFTA_RULE_TABLE.rawValue)]?.string ?? "?")"
        let chain = attributes[type: UInt16(NFTA_RULE_CHAIN.rawValue)]?.string ?? "?"
        var decoder = NFTRuleDecoder(family: ["ip": .ipv4, "ip6": .ipv6][family])
        for element in attributes[type: UInt16(NFTA_RULE_EXPRESSIONS.rawValue)]?.nested ?? [] { decoder.add(element.nested) }
        return (table, chain, decoder)
    }

    /// Tables of family ip, ip6 or inet that have a nat base chain at postrouting, with the chains
    /// the check can reach (its hook chains and where they jump or go) and the chains holding an SNAT
    /// rule (for doctor's text of each SNAT rule). A first streamed pass over the rules finds those
    /// chains, the second decodes their rules: kube-proxy's thousands of service chains (reached from
    /// prerouting and output) are not held.
    func nftables() throws(NetfilterError) -> [NATHookTable] {
        var hooks: [String: [NATHookTable.Hook]] = [:]
        try dump(NFT_MSG_GETCHAIN, "chain") { family, attributes in
            guard let family = Self.familyNames[family], attributes[type: UInt16(NFTA_CHAIN_TYPE.rawValue)]?.string == "nat",
                  let hook = attributes[type: UInt16(NFTA_CHAIN_HOOK.rawValue)]?.nested,
                  hook[type: UInt16(NFTA_HOOK_HOOKNUM.rawValue)]?.be32 == UInt32(NF_INET_POST_ROUTING.rawValue),
                  let priority = hook[type: UInt16(NFTA_HOOK_PRIORITY.rawValue)]?.be32 else { return }
            let table = "\(family) \(attributes[type: UInt16(NFTA_CHAIN_TABLE.rawValue)]?.string ?? "?")"
            hooks[table, default: []].append(.init(chain: attributes[type: UInt16(NFTA_CHAIN_NAME.rawValue)]?.string ?? "?",
                                                   priority: Int(Int32(bitPattern: priority))))
        }
        guard !hooks.isEmpty else { return [] }
        // Pass 1: where each chain jumps, and which chains SNAT.
        var targets: [String: Set<String>] = [:]
        var wanted: Set<String> = []  // "TABLE|CHAIN"
        try dump(NFT_MSG_GETRULE, "rule") { family, attributes in
            guard let (table, chain, decoder) = decode(family, attributes), hooks[table] != nil else { return }
            switch decoder.verdict {
            case .jump(let target), .goto(let target): targets["\(table)|\(chain)", default: []].insert("\(table)|\(target)")
            case .snat: wanted.insert("\(table)|\(chain)")
            default: break
            }
        }
        var pending = hooks.flatMap { table, hooks in hooks.map { "\(table)|\($0.chain)" } }
        while let chain = pending.popLast() {
            wanted.insert(chain)
            pending += targets.removeValue(forKey: chain) ?? []  // each chain's jumps followed once
        }
        targets = [:]
        // Pass 2: those chains' rules.
        var chains: [String: [String: [NATHookRule]]] = [:]
        try dump(NFT_MSG_GETRULE, "rule") { family, attributes in
            guard let (table, chain, found) = decode(family, attributes), wanted.contains("\(table)|\(chain)") else { return }
            var decoder = found
            let comment = NFTablesBackend.userDataString(attributes[type: UInt16(NFTA_RULE_USERDATA.rawValue)]?.payload ?? [], type: 0)
            if !comment.isEmpty {
                decoder.conditions.append(.comment(comment))
            }
            let handle = (attributes[type: UInt16(NFTA_RULE_HANDLE.rawValue)]?.payload).flatMap { bytes in
                bytes.count == 8 ? bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : nil  // big-endian u64
            }
            chains[table, default: [:]][chain, default: []].append(NATHookRule(decoder.conditions, decoder.verdict, handle: handle))
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
