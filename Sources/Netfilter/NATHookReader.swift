internal import CNetfilterUAPI
internal import Glibc
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

    static let familyNames: [UInt8: String] = [UInt8(NFPROTO_IPV4): "ip", UInt8(NFPROTO_IPV6): "ip6", UInt8(NFPROTO_INET): "inet"]

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
