internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore
import SystemCalls

/// randsnat's state in the legacy xtables nat tables (libiptc/libip6tc) and in ipsets.
///
/// Per network and family, written once (one commit) and removed once:
///
///     nat POSTROUTING  -m set --match-set RANDSNAT-<net>-<gen>-P4 src -j RANDSNAT-<net>-<gen>
///     nat RANDSNAT-<net>-<gen>   bypass rules, then MASQUERADE/SNAT --random-fully
///     ipset RANDSNAT-<net>-<gen>-P4  hash:ip       pods           (comment <net>/<container>/<ifname>)
///     ipset RANDSNAT-<net>-<gen>-S4  hash:net      pod subnets    (shared: no pod named)
///
/// Per pod, only set members change: a netlink message each, whatever the size of the nat table.
/// The member set's reference count (held by the jump rule) tells without reading the table that
/// the rules are still there.
public final class IPTablesBackend: NATBackend, MemberSteps {
    public var kind: BackendKind { .iptables }
    public var commentLimit: Int { IPSet.commentLimit }
    private let netlink: NetlinkSocket
    private let xtablesLock: FileLock
    private let lockTimeoutSeconds: Double
    private let log: (String) -> Void

    private let flowCleanup: FlowCleanup

    public init(xtablesLock: FileLock, lockTimeoutSeconds: Double, flowCleanup: FlowCleanup = .flush,
                log: @escaping (String) -> Void = { _ in }) throws(NetfilterError) {
        self.flowCleanup = flowCleanup
        netlink = try NetlinkSocket.netfilterSocket()
        self.xtablesLock = xtablesLock
        self.lockTimeoutSeconds = lockTimeoutSeconds
        self.log = log
    }

    private var ipset: IPSet { IPSet(socket: netlink) }

    public func isInstalled(_ plan: FamilyPlan) throws -> Bool {
        for name in [plan.names.memberSet, plan.names.subnetSet] {
            guard let header = try ipset.header(name), header.references > 0 else { return false }
        }
        return true
    }

    func encode(_ plan: FamilyPlan) throws(NetfilterError) -> (jump: EncodedRule, rules: [EncodedRule]) {
        var indexes: [String: UInt16] = [:]
        let index = { (name: String) throws(NetfilterError) -> UInt16 in
            if let known = indexes[name] { return known }
            let found = try IPSet.index(of: name)
            indexes[name] = found
            return found
        }
        let jump = try RuleEncoder.encode(plan.jump, family: plan.family, chain: "POSTROUTING", setIndex: index)
        var rules: [EncodedRule] = []
        for rule in plan.rules {
            rules.append(try RuleEncoder.encode(rule, family: plan.family, chain: plan.names.chain, setIndex: index))
        }
        return (jump, rules)
    }

    public func install(_ plan: FamilyPlan) throws {
        try ipset.create(plan.names.memberSet, kind: .hashIP, family: plan.family)
        try ipset.create(plan.names.subnetSet, kind: .hashNet, family: plan.family)
        let (jump, rules) = try encode(plan)
        let chain = plan.names.chain
        try xtablesLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            let table = try IPTCTable(family: plan.family)
            if !table.chainExists(chain) {
                try table.createChain(chain)
                for rule in rules { try table.append(rule, to: chain) }
            } else if !Self.same(table.rules(in: chain), rules) {
                try table.flush(chain)
                for rule in rules { try table.append(rule, to: chain) }
            }
            let postrouting = table.rules(in: "POSTROUTING")
            let jumps = postrouting.indices.filter { postrouting[$0].targetName == chain }
            if !(jumps.count == 1 && Self.matches(postrouting[jumps[0]], jump)) {
                for index in jumps.reversed() { try table.deleteRule(at: index, in: "POSTROUTING") }
                try table.append(jump, to: "POSTROUTING")
            }
            if plan.family == .ipv4, let warning = netfilterWarning(legacyRules: Self.foreignRuleCount(table)) {
                log("randsnat: \(warning)")
            }
            try table.commit()
        }
    }

    /// Rules in the table that are not randsnat's.
    static func foreignRuleCount(_ table: IPTCTable) -> Int {
        table.chains.filter { !$0.hasPrefix(NetworkID.prefix) }.reduce(0) { count, chain in
            count + table.rules(in: chain).filter { !$0.targetName.hasPrefix(NetworkID.prefix) }.count
        }
    }

    /// Which netfilter holds the node's nat rules, as kube-proxy's iptables-wrapper decides it:
    /// nf_tables when its nat tables hold rules and the legacy nat table holds none.
    func netfilterWarning(legacyRules: Int) -> String? {
        let nftRules = (try? NFTables(socket: netlink).natRuleCount()) ?? 0
        guard nftRules > 0 && legacyRules == 0 else { return nil }
        return "this node's nat rules are in nf_tables (\(nftRules) rules: iptables-nft or nftables) and the legacy nat table holds none: "
            + "randsnat's legacy rules run beside them in an order nobody chose: set \"backend\" to \"auto\" or \"nftables\""
    }

    /// True when the rule read back is the one randsnat writes (counters and a jump's offset aside).
    static func matches(_ rule: IPTCTable.Rule, _ expected: EncodedRule) -> Bool {
        (try? rule.entry(expected.family)) == expected.entry
    }

    static func same(_ current: [IPTCTable.Rule], _ expected: [EncodedRule]) -> Bool {
        current.count == expected.count && zip(current, expected).allSatisfy(matches)
    }

    /// Removes the jumps to `chain` from POSTROUTING, then the chain.
    private func removeChain(_ chain: String, from table: IPTCTable) throws(NetfilterError) {
        let postrouting = table.rules(in: "POSTROUTING")
        for index in postrouting.indices.reversed() where postrouting[index].targetName == chain {
            try table.deleteRule(at: index, in: "POSTROUTING")
        }
        if table.chainExists(chain) {
            try table.flush(chain)
            try table.deleteChain(chain)
        }
    }

    public func uninstall(_ names: ObjectNames) throws {
        // Sets no rule references mean the jump and the chain's set rule are gone (or never were, as
        // after a failed first ADD): the table need not be read, nor its lock taken.
        let referenced = try [names.memberSet, names.subnetSet].contains { (try ipset.header($0)?.references ?? 0) > 0 }
        if referenced {
            try removeTableState(names)
        }
        try ipset.destroy(names.memberSet)
        try ipset.destroy(names.subnetSet)
    }

    private func removeTableState(_ names: ObjectNames) throws {
        try xtablesLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            let table = try IPTCTable(family: names.family)
            try removeChain(names.chain, from: table)
            try table.commit()
        }
    }

    public func add(_ member: PodPlan.Member, comment: String) throws {
        try ipset.add(member.names.memberSet, IPSet.Entry(address: member.address.address, prefix: nil, comment: comment))
    }

    public func add(subnet: CIDR, to names: ObjectNames) throws {
        try ipset.add(names.subnetSet, IPSet.Entry(address: subnet.address, prefix: subnet.prefix,
                                                   comment: "randsnat: pod subnet"))
    }

    /// Removes the member, then the conntrack entries of the flows it started (as Calico does):
    /// they would outlive the pod for up to days, and a new pod given the address would get their replies.
    public func remove(_ member: InstalledMember, from names: ObjectNames) throws {
        try ipset.delete(names.memberSet, IPSet.Entry(address: member.address, prefix: nil, comment: ""))
        try Conntrack(socket: netlink).forgetFlows(from: member.address, cleanup: flowCleanup)
    }

    public func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws {
        try ipset.delete(names.memberSet, IPSet.Entry(address: member.address, prefix: nil, comment: ""))
    }

    public func remove(subnet: CIDR, from names: ObjectNames) throws {
        try ipset.delete(names.subnetSet, IPSet.Entry(address: subnet.address, prefix: subnet.prefix, comment: ""))
    }

    public func generations(of id: NetworkID) throws -> [InstalledGeneration] {
        var generations: [InstalledGeneration] = []
        for name in try ipset.names() {
            guard let names = ObjectNames(memberSet: name, of: id) else { continue }
            let members = (try ipset.entries(names.memberSet) ?? []).map { InstalledMember(address: $0.address, comment: $0.comment) }
            let subnets = (try ipset.entries(names.subnetSet) ?? []).map {
                CIDR(address: $0.address, prefix: $0.prefix ?? $0.address.family.bitCount)
            }
            generations.append(InstalledGeneration(names: names, members: members, subnets: subnets))
        }
        return generations
    }

    /// The network's member sets by name: one list of set names, no members read.
    public func generationNames(of id: NetworkID) throws -> [ObjectNames] {
        try ipset.names().compactMap { ObjectNames(memberSet: $0, of: id) }
    }

    /// The member count from the set's header: one small round trip, whatever the count.
    public func memberCount(of names: ObjectNames, in id: NetworkID) throws -> Int? {
        guard let header = try ipset.header(names.memberSet) else { return nil }
        if let elements = header.elements { return Int(elements) }
        return try ipset.entries(names.memberSet)?.count
    }

    /// One listing of the member set (ipset sends no single member with its comment: DEL's
    /// `member(_:in:of:)` reads this too).
    public func members(of names: ObjectNames, in id: NetworkID) throws -> [InstalledMember]? {
        try ipset.entries(names.memberSet)?.map { InstalledMember(address: $0.address, comment: $0.comment) }
    }

    public func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws {
        for family in Family.allCases {
            try xtablesLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
                let table = try IPTCTable(family: family)
                for chain in table.chains where chain.hasPrefix(id.namePrefix)
                    && !keep.contains(where: { $0.chain == chain && $0.family == family }) {
                    try removeChain(chain, from: table)
                }
                try table.commit()
            }
        }
        for name in try ipset.names() where name.hasPrefix(id.namePrefix)
            && !keep.contains(where: { $0.memberSet == name || $0.subnetSet == name }) {
            try ipset.destroy(name)
        }
    }

    public func problems(with plan: FamilyPlan) throws -> [String] {
        var problems: [String] = [], unused: [String] = []
        for name in [plan.names.memberSet, plan.names.subnetSet] {
            guard let header = try ipset.header(name) else {
                problems.append("ipset \(name) does not exist")
                continue
            }
            if header.references == 0 { unused.append("ipset \(name) is used by no rule") }
        }
        guard problems.isEmpty else { return problems }
        let (jump, rules) = try encode(plan)
        let table = try XtablesTableSnapshot(family: plan.family)  // read only: the kernel's blob, no libiptc cache
        let chain = plan.names.chain
        let tableName = plan.family == .ipv4 ? "iptables" : "ip6tables"
        if !table.chainExists(chain) {
            problems.append("chain \(chain) is missing from the \(tableName) nat table")
        } else {
            let current = table.rules(in: chain)
            if current.count != rules.count {
                problems.append("chain \(chain) has \(current.count) rules; randsnat writes \(rules.count)")
            }
            for (index, rule) in rules.enumerated() where index >= current.count || !Self.matches(current[index], rule) {
                problems.append("rule \(index + 1) of \(chain) is not `\(rule.text)`")
            }
        }
        let postrouting = table.rules(in: "POSTROUTING")
        let jumps = postrouting.filter { $0.targetName == chain }
        if jumps.isEmpty {
            problems.append("\(tableName) nat POSTROUTING has no jump to \(chain)")
        } else if jumps.count > 1 || !Self.matches(jumps[0], jump) {
            problems.append("\(tableName) nat POSTROUTING's jump to \(chain) is not `\(jump.text)`")
        }
        // A set no rule uses is what a missing rule leaves: the rule (the jump, say) is named when one is.
        return problems.isEmpty ? unused : problems
    }

    public func status() throws -> NodeReport {
        var report = NodeReport()
        do {
            _ = try ipset.names()
        } catch {
            report.problems.append("ipset is unusable: \(error)")
        }
        var legacyRules = 0
        var tables: [IPTCTable] = []
        for family in Family.allCases {
            do {
                let table = try IPTCTable(family: family)
                legacyRules += Self.foreignRuleCount(table)
                tables.append(table)
            } catch {
                report.problems.append("\(error)")
            }
            for (kind, name, revision) in [("target", "MASQUERADE", UInt8(0)), ("target", "SNAT", UInt8(family == .ipv4 ? 0 : 1)),
                                           ("match", "set", UInt8(4)), ("match", "comment", UInt8(0)), ("match", "statistic", UInt8(0))]
            where !KernelRevision.supported(kind: kind, name: name, revision: revision, family: family) {
                report.problems.append("the kernel has no \(family == .ipv4 ? "IPv4" : "IPv6") \(kind) \(name) (revision \(revision)); load its module (xt_\(name))")
            }
        }
        if let reason = xtablesLock.unusableReason() {
            report.problems.append("the xtables lock \(xtablesLock.path) cannot be opened: \(reason)")
        }
        if let warning = netfilterWarning(legacyRules: legacyRules) {
            report.warnings.append(warning)
            report.notes.append("netfilter: nf_tables")
        } else {
            report.notes.append("netfilter: iptables-legacy (\(legacyRules) legacy nat rules besides randsnat's)")
        }
        report.warnings += NATHookReader(netlink: netlink).earlierSNATWarnings(backend: kind, legacy: tables)
        return report
    }

    public func nodeNetfilter() throws -> BackendKind { NodeNetfilter.detect(netlink) }
}

/// Asks the kernel whether it has an xtables extension revision (the check iptables makes).
enum KernelRevision {
    static func supported(kind: String, name: String, revision: UInt8, family: Family) -> Bool {
        let fd = socket(family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var request = xt_get_revision()
        XtablesEntry.store(Array(name.utf8), into: &request.name)
        request.revision = revision
        var length = socklen_t(MemoryLayout<xt_get_revision>.size)
        // IPv6 has its own numbers (IP6T_BASE_CTL + 4 / + 5); IPv4's + 2 / + 3 are IPV6_RECVTCLASS and
        // IPV6_TCLASS there, which any IPv6 socket answers.
        let option = family == .ipv4 ? (kind == "match" ? IPT_SO_GET_REVISION_MATCH : IPT_SO_GET_REVISION_TARGET)
                                     : (kind == "match" ? IP6T_SO_GET_REVISION_MATCH : IP6T_SO_GET_REVISION_TARGET)
        return getsockopt(fd, family == .ipv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6), option, &request, &length) == 0
    }
}
