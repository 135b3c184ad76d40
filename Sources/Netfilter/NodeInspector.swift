internal import Glibc
import Netlink
import RandSNATCore
import SystemCalls

/// Gathers `NodeFacts` for `randsnat doctor` from the calling process's network namespace: conntrack
/// statistics and entries, the nat rules of iptables-legacy (the kernel's table blob) and nf_tables (netlink), and
/// randsnat's sets. Reads only.
public struct NodeInspector {
    let netlink: NetlinkSocket
    /// libcni's result cache (`/var/lib/cni/results`): an attachment with no file there is unknown
    /// to the runtime.
    let cniCache: String
    /// randsnat's pod records, to tell the pods of libcni's cache randsnat never saw; nil: not told.
    let records: (any RecordStore)?

    public init(cniCache: String, records: (any RecordStore)? = nil) throws(NetfilterError) {
        netlink = try NetlinkSocket.netfilterSocket()
        self.cniCache = cniCache
        self.records = records
    }

    /// Only the conntrack statistics (for the start of `--interval`).
    public func counters() -> NodeFacts {
        var facts = NodeFacts()
        if let text = try? HostFile.read("/proc/net/stat/nf_conntrack") {
            facts.counters = NodeFacts.counters(fromStat: text)
        } else {
            facts.unreadable.append("/proc/net/stat/nf_conntrack cannot be read (is conntrack loaded?)")
        }
        facts.podTimestamps = podTimestamps()
        return facts
    }

    /// - Parameter portUse: false skips the conntrack listing (the agent scans conntrack its own,
    ///   streaming way: `ConntrackMetricsReader.scanSNAT`).
    /// - Parameter knownTimestampOffsets: the probe's result from an earlier gather of this process (a
    ///   property of the kernel, which does not change while it runs): the probe, which makes a network
    ///   namespace, then does not run again.
    /// - Parameter knownNetworks: network names the caller knows (from earlier gathers, the agent's
    ///   records): a network whose jump is gone for a moment (a flush) keeps its name through them, as
    ///   through the CNI cache's entries, instead of becoming "(unknown: RANDSNAT-…)".
    public func gather(portUse: Bool = true, knownTimestampOffsets: TimestampOffsets? = nil, knownNetworks: [String] = []) -> NodeFacts {
        var facts = counters()
        var jumpComments: [String: String] = [:]
        // Each legacy table read once, as the kernel's blob (no libiptc cache), for the rule listing,
        // the foreign count and the shadowing check.
        var legacy: [XtablesTableSnapshot] = []
        for family in Family.allCases {
            do {
                let table = try XtablesTableSnapshot(family: family)
                facts.legacyNATRules += table.foreignRuleCount
                facts.rules += legacyRules(table, comments: &jumpComments)
                legacy.append(table)
            } catch {
                facts.unreadable.append("\(error)")
            }
        }
        let nftRules = (try? NFTables(socket: netlink).snatRules()) ?? []
        // Rules of iptables-nft's and kube-proxy's nat tables, plus SNAT rules of any other table but randsnat's own.
        facts.nftablesNATRules = ((try? NFTables(socket: netlink).natRuleCount()) ?? 0)
            + nftRules.filter { !$0.isRandsnat && !$0.chain.hasPrefix("ip nat ") && !$0.chain.hasPrefix("ip6 nat ") && !$0.chain.contains(" kube-proxy ") }.count
        facts.rules += nftRules
        if portUse { facts.portUse = self.portUse() }
        facts.orphansUnknown = cacheProblem()
        var names: [String: String] = [:]
        for name in knownNetworks + facts.podTimestamps.map(\.network) { names[NetworkID(network: name).namePrefix] = name }
        facts.networks = networks(jumpComments, cacheKnown: facts.orphansUnknown == nil, names: names)
        facts.podsNeverSeen = podsNeverSeen(kernelNetworks: facts.networks.map(\.name))
        let (earlier, tables, unreadable) = earlierSNAT(facts.networks, legacy: legacy)
        legacy = []
        facts.earlierSNAT = earlier
        facts.unreadable += unreadable.filter { $0.hasPrefix("nf_tables") }  // the legacy tables' are reported above
        // Each SNAT rule as the operator writes it, from the hook tables the shadowing check read.
        facts.rules = facts.rules.map { rule in
            let shadows = earlier.contains { $0.source == rule.source && "\($0.table) \($0.chain)" == rule.chain && $0.position == rule.position }
            return NodeFacts.SNATRule(source: rule.source, chain: rule.chain, position: rule.position, target: rule.target, randomFully: rule.randomFully,
                                      ports: rule.ports, isRandsnat: rule.isRandsnat, shadowsRandsnat: shadows,
                                      text: Self.text(of: rule, in: tables))
        }
        if let knownTimestampOffsets {
            facts.timestampOffsets = knownTimestampOffsets
        } else {
            do { facts.timestampOffsets = try TimestampProbe.run() } catch {
                facts.unreadable.append("the TCP timestamp probe failed: \(error)")
            }
        }
        return facts
    }

    /// The text of `rule` (at its chain and position) in the hook table that holds it, if one does.
    static func text(of rule: NodeFacts.SNATRule, in tables: [NATHookTable]) -> String? {
        for table in tables where table.source == rule.source {
            for (chain, rules) in table.chains where "\(table.table) \(chain)" == rule.chain && rule.position >= 1 && rule.position <= rules.count {
                return rules[rule.position - 1].text(chain: chain, syntax: table.syntax)
            }
        }
        return nil
    }

    /// SNAT/MASQUERADE rules of one legacy nat table, and the comments of randsnat's jumps.
    func legacyRules(_ table: any XtablesTableView, comments: inout [String: String]) -> [NodeFacts.SNATRule] {
        let source = table.family == .ipv4 ? "iptables-legacy" : "ip6tables-legacy"
        for rule in table.rules(in: "POSTROUTING") where rule.targetName.hasPrefix(NetworkID.prefix) {
            comments[rule.targetName] = try? rule.entry(table.family).matches.lazy.compactMap { match -> String? in
                if case .comment(let text) = match { text } else { nil }
            }.first
        }
        var found: [NodeFacts.SNATRule] = []
        for chain in table.chains {
            for (index, rule) in table.rules(in: chain).enumerated() where rule.targetName == "MASQUERADE" || rule.targetName == "SNAT" {
                let range = (try? rule.entry(table.family))?.target.natRange(family: table.family) ?? NATRange()
                found.append(NodeFacts.SNATRule(source: source, chain: "nat \(chain)", position: index + 1, target: rule.targetName,
                                                randomFully: range.flags.contains(.randomFully), ports: range.ports,
                                                isRandsnat: chain.hasPrefix(NetworkID.prefix), shadowsRandsnat: false))
            }
        }
        return found
    }

    /// The shadowing check, for each backend randsnat's networks use (or, with none yet, the one
    /// `auto` would pick).
    /// - Parameter legacy: the legacy nat tables, read already.
    func earlierSNAT(_ networks: [NodeFacts.Network], legacy: [any XtablesTableView]) -> (found: [EarlierSNAT], tables: [NATHookTable], unreadable: [String]) {
        let reader = NATHookReader(netlink: netlink)
        let (tables, unreadable) = reader.tables(legacy: legacy)
        let subnets = reader.podSubnets()
        var backends = BackendKind.allCases.filter { kind in networks.contains { $0.backend == kind } }
        if backends.isEmpty { backends = [NodeNetfilter.detect(netlink)] }
        var found: [EarlierSNAT] = []
        for backend in backends {
            for shadow in EarlierSNAT.find(tables, podSubnets: subnets, backend: backend)
            where !found.contains(where: { ($0.source, $0.table, $0.chain, $0.position) == (shadow.source, shadow.table, shadow.chain, shadow.position) }) {
                found.append(shadow)
            }
        }
        return (found, tables, unreadable)
    }

    /// SNATed conntrack entries grouped by destination and SNAT address, busiest first.
    func portUse() -> [NodeFacts.PortUse] {
        var counts: [String: (NodeFacts.PortUse, Int)] = [:]
        for family in Family.allCases {
            for entry in (try? Conntrack(socket: netlink).entries(family)) ?? [] where entry.isSourceNATed {
                let proto = SNATDestination.protocolName(entry.proto)
                let key = "\(entry.originalDestination)|\(entry.originalDestinationPort ?? 0)|\(proto)|\(entry.replyDestination)"
                let use = NodeFacts.PortUse(destination: "\(entry.originalDestination)", port: entry.originalDestinationPort ?? 0, proto: proto,
                                            snatAddress: "\(entry.replyDestination)", entries: 0)
                counts[key, default: (use, 0)].1 += 1
            }
        }
        return counts.values.map { NodeFacts.PortUse(destination: $0.0.destination, port: $0.0.port, proto: $0.0.proto,
                                                     snatAddress: $0.0.snatAddress, entries: $0.1) }
            .sorted { ($0.entries, $0.destination) > ($1.entries, $1.destination) }
    }

    /// randsnat's networks from its member sets (ipsets, and the nftables backend's sets), named by
    /// the comments of their jumps.
    /// - Parameter names: network names by their objects' name prefix (`NetworkID.namePrefix`), for
    ///   sets whose jump is missing.
    func networks(_ comments: [String: String], cacheKnown: Bool, names: [String: String] = [:]) -> [NodeFacts.Network] {
        let ipset = IPSet(socket: netlink)
        var networks: [NodeFacts.Network] = []
        for name in (try? ipset.names()) ?? [] where name.hasPrefix(NetworkID.prefix) && (name.hasSuffix("-P4") || name.hasSuffix("-P6")) {
            let chain = String(name.dropLast(3))
            let comment = comments[chain] ?? ""
            let network = comment.split(separator: "\"").dropFirst().first.map(String.init) ?? Self.name(of: chain, names)
            let members = (try? ipset.entries(name)) ?? []
            networks.append(NodeFacts.Network(name: network, generation: String(chain.suffix(7)), family: name.hasSuffix("6") ? .ipv6 : .ipv4,
                                              pods: members.count,
                                              orphans: orphans(members.map { InstalledMember(address: $0.address, comment: $0.comment) },
                                                               network: network, cacheKnown: cacheKnown)))
        }
        networks += nftablesNetworks(cacheKnown: cacheKnown, names: names)
        return networks.sorted { ($0.name, $0.family) < ($1.name, $1.family) }
    }

    /// Why the runtime's CNI cache cannot tell live attachments (absent or unreadable, as in a pod
    /// that does not mount it); nil when it can. Without it every member would look like an orphan.
    func cacheProblem() -> String? {
        let why: String
        do {
            guard try Files.names(in: cniCache) != nil else {
                return "the CNI cache \(cniCache) does not exist"
                    + "; doctor cannot tell orphan members (name the runtime's cache, libcni's results directory, with --cni-cache DIR)"
            }
            return nil
        } catch {
            why = "\(error)"
        }
        return "the CNI cache \(cniCache) cannot be read (\(why))"
            + "; doctor cannot tell orphan members (name the runtime's cache, libcni's results directory, with --cni-cache DIR)"
    }

    /// The network of a chain (RANDSNAT-<hash>-<generation>) whose jump names none, from `names`;
    /// "(unknown: CHAIN)" when no known name has its hash.
    static func name(of chain: String, _ names: [String: String]) -> String {
        names[String(chain.dropLast(7))] ?? "(unknown: \(chain))"
    }

    /// Members the runtime's cache does not know, as "ADDRESS (COMMENT)".
    func orphans(_ members: [InstalledMember], network: String, cacheKnown: Bool) -> [String] {
        guard cacheKnown else { return [] }
        return members.filter { member in
            // A digest, or a comment an earlier release cut short, names no container to look up.
            guard let owner = Attachment.owner(fromComment: member.comment, network: network) else { return false }
            return access(cniCache + "/" + LibcniCache.fileName(of: owner), F_OK) != 0
        }.map { "\($0.address) (\($0.comment))" }
    }

    /// The networks of the nftables backend: member sets of `inet randsnat`, named by the comments
    /// of their jumps (`randsnat: name: NET generation: GEN`).
    func nftablesNetworks(cacheKnown: Bool, names known: [String: String]) -> [NodeFacts.Network] {
        guard let backend = try? NFTablesBackend(reader: netlink) else { return [] }
        var names: [String: String] = [:]
        for rule in (try? backend.rules(of: NFTFamilyPlan.baseChain)) ?? [] {
            guard let chain = rule.jumpTarget, let start = rule.comment.utf8.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let words = rule.comment[rule.comment.index(after: start)...].split(separator: " ")
            if let index = words.firstIndex(of: "name:"), index + 1 < words.count { names[String(chain.dropLast(2))] = String(words[index + 1]) }
        }
        var networks: [NodeFacts.Network] = []
        for set in (try? backend.setNames()) ?? [] where set.hasPrefix(NetworkID.prefix) && (set.hasSuffix("-P4") || set.hasSuffix("-P6")) {
            let chain = String(set.dropLast(3))
            let family: Family = set.hasSuffix("6") ? .ipv6 : .ipv4
            let network = names[chain] ?? Self.name(of: chain, known)
            let members = ((try? backend.elements(of: set, family: family)) ?? []).map { InstalledMember(address: $0.key, comment: $0.comment) }
            networks.append(NodeFacts.Network(name: network, generation: String(chain.suffix(7)), family: family, pods: members.count,
                                              orphans: orphans(members, network: network, cacheKnown: cacheKnown), backend: .nftables))
        }
        return networks
    }
}

/// Reads parts of rules others wrote.
enum RuleDecoder {
    /// The NAT range's flags and port range from an nft `target` expression's xt info.
    /// - Parameter compat: nf_nat_ipv4_multi_range_compat (IPv4 revision 0), else nf_nat_range(2).
    static func natRange(payload: [UInt8], compat: Bool) -> (UInt32, ClosedRange<UInt16>?) {
        // The flags and ports sit at the same place in both families' nf_nat_range.
        let range = NATRange(reading: payload, compat ? .compat : .range, family: compat ? .ipv4 : .ipv6)
        return (range.flags.rawValue, range.ports)
    }
}

/// A small text file (procfs).
enum HostFile {
    static func read(_ path: String) throws(SystemCallError) -> String { try Files.text(of: path) }
}
