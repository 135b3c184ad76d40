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

    /// Streams a dump of every table: `body` gets each reply as it comes, one receive buffer in memory
    /// at a time (a node's 20,000 rules are not held as replies); the first reply that does not
    /// decode (`NFTDecoder` throws) ends the reading with its error.
    func dump(_ command: NetfilterMessageType, _ what: String,
              _ body: (NetlinkReply) throws(NetfilterError) -> Void) throws(NetfilterError) {
        let request = NetlinkRequest(command, flags: [.request, .ack, .dump], sequence: netlink.nextSequence(),
                                     header: NetfilterHeader(family: NFTFamily.unspecified))
        var failure: NetfilterError?
        do throws(NetlinkError) {
            try netlink.dump(request, operation: "nf_tables \(what) dump", object: "all tables") { bytes in
                guard failure == nil else { return }
                do throws(NetfilterError) {
                    try body(NetlinkReply(type: command.rawValue, flags: 0, sequence: 0, body: Array(bytes)))
                } catch {
                    failure = error
                }
            }
        } catch {
            throw NetfilterError(error)
        }
        if let failure { throw failure }
    }

    /// One rule of a dump (families ip, ip6, inet): its table ("FAMILY NAME"), chain, and the decoder
    /// fed its expressions.
    func decode(_ rule: NFTRuleDump) throws(NetfilterError) -> (table: String, chain: String, decoder: NFTRuleDecoder)? {
        guard let family = Self.family(rule.family) else { return nil }
        var decoder = NFTRuleDecoder(family: family.packets)
        do throws(NetlinkError) {
            for expression in rule.expressions { try decoder.add(expression) }
        } catch {
            throw NetfilterError.netlink(operation: "reading", object: "an nf_tables rule's expressions", errno: 0, reason: error.reason)
        }
        return ("\(family.name) \(rule.table)", rule.chain, decoder)
    }

    /// The families the check reads: nft's keyword, and the packets' family (nil for inet).
    static func family(_ family: UInt8) -> (name: String, packets: Family?)? {
        switch family {
        case NFTFamily.ipv4: ("ip", .ipv4)
        case NFTFamily.ipv6: ("ip6", .ipv6)
        case NFTFamily.inet: ("inet", nil)
        default: nil
        }
    }

    /// Tables of family ip, ip6 or inet that have a nat base chain at postrouting, with the chains
    /// the check can reach (its hook chains and where they jump or go) and the chains holding an SNAT
    /// rule (for doctor's text of each SNAT rule). A first streamed pass over the rules finds those
    /// chains, the second decodes their rules: kube-proxy's thousands of service chains (reached from
    /// prerouting and output) are not held.
    func nftables() throws(NetfilterError) -> [NATHookTable] {
        var hooks: [String: [NATHookTable.Hook]] = [:]
        try dump(NFTCommand.getChain, "chain") { (reply) throws(NetfilterError) in
            let chain = try NFTDecoder.chain(reply)
            guard let family = Self.family(chain.family), chain.type == "nat", let hook = chain.hook,
                  hook.number == NFTConstant.postrouting else { return }
            hooks["\(family.name) \(chain.table)", default: []].append(.init(chain: chain.name, priority: Int(hook.priority)))
        }
        guard !hooks.isEmpty else { return [] }
        // Pass 1: where each chain jumps, and which chains SNAT.
        var targets: [String: Set<String>] = [:]
        var wanted: Set<String> = []  // "TABLE|CHAIN"
        try dump(NFTCommand.getRule, "rule") { (reply) throws(NetfilterError) in
            guard let (table, chain, decoder) = try decode(NFTDecoder.rule(reply)), hooks[table] != nil else { return }
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
        try dump(NFTCommand.getRule, "rule") { (reply) throws(NetfilterError) in
            let rule = try NFTDecoder.rule(reply)
            guard let (table, chain, found) = try decode(rule), wanted.contains("\(table)|\(chain)") else { return }
            var decoder = found
            if !rule.comment.isEmpty {
                decoder.conditions.append(.comment(rule.comment))
            }
            chains[table, default: [:]][chain, default: []].append(NATHookRule(decoder.conditions, decoder.verdict, handle: rule.handle))
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
