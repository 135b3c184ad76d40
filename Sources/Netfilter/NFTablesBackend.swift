internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore
import SystemCalls

/// randsnat's state as native nf_tables objects in its own table, `inet randsnat` (see
/// `NFTFamilyPlan` for the layout). Writes are atomic batches (`NFTBatch`) on this backend's one
/// netlink socket; reads are netlink dumps of randsnat's own table only, so no per-pod step reads or
/// rewrites anybody else's ruleset, however large it is.
public final class NFTablesBackend: NATBackend {
    public var kind: BackendKind { .nftables }
    public var commentLimit: Int { NFTBatch.commentLimit }
    private let netlink: NetlinkSocket
    /// Serialises creating randsnat's table with removing it (GC), across networks and processes.
    private let tableLock: FileLock
    private let lockTimeoutSeconds: Double
    private let log: (String) -> Void
    private let table = NFTFamilyPlan.table
    private let baseChain = NFTFamilyPlan.baseChain

    private let flowCleanup: FlowCleanup
    /// True once a commit of this backend deleted elements (see `deinit`).
    private var deletedElements = false

    public init(runDirectory: String, lockTimeoutSeconds: Double, flowCleanup: FlowCleanup = .flush,
                log: @escaping (String) -> Void = { _ in }) throws(NetfilterError) {
        self.flowCleanup = flowCleanup
        netlink = try NetlinkSocket.netfilterSocket()
        tableLock = FileLock(path: runDirectory + "/nftables.lock", makingDirectory: runDirectory)
        self.lockTimeoutSeconds = lockTimeoutSeconds
        self.log = log
    }

    /// After a commit that deleted elements, waits for an RCU grace period before the socket closes.
    /// The commit left the elements on nf_tables' destroy list, whose work frees them after a grace
    /// period; closing a netfilter socket waits for that work while holding the kernel's commit mutex,
    /// so every other process's nf_tables commit waits too (a node drain's DELs then went one grace
    /// period each). Waited for here, outside the mutex (membarrier's global command is
    /// `synchronize_rcu()`), the grace periods of DELs that run at once overlap and the close
    /// usually finds the work done. Where the command is refused (nohz_full), the close waits as before.
    deinit {
        if deletedElements { _ = randsnat_wait_for_grace_period() }
    }

    /// A backend that only reads (for `randsnat doctor`): no lock directory is made.
    init(reader netlink: NetlinkSocket) throws(NetfilterError) {
        self.netlink = netlink
        flowCleanup = .flush
        tableLock = FileLock(path: "/nonexistent/nftables.lock")
        lockTimeoutSeconds = 0
        log = { _ in }
    }

    // MARK: reading randsnat's table

    struct InstalledRule {
        let table: String
        let chain: String
        let handle: UInt64
        let comment: String
        let expressions: [NFTExpression?]
        var jumpTarget: String? {
            for case .verdict(.jump(let chain))? in expressions { return chain }
            return nil
        }
    }

    /// A request about randsnat's table (a dump unless `dump` is false); `build` names the object.
    private func request(_ command: NetfilterMessageType, dump: Bool = true, _ build: (inout NetlinkRequest) -> Void) -> NetlinkRequest {
        var message = NetlinkRequest(command, flags: dump ? [.request, .ack, .dump] : [.request, .ack], sequence: netlink.nextSequence(),
                                     header: NetfilterHeader(family: NFTFamily.inet))
        build(&message)
        return message
    }

    /// Runs a request; nil when the kernel says the table (or the object) does not exist.
    private func exchange(_ request: NetlinkRequest, _ operation: String, _ object: String) throws(NetfilterError) -> [NetlinkReply]? {
        do {
            return try netlink.netfilterExchange(request, operation: operation, object: object)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
            return nil
        }
    }

    /// The names of randsnat's sets; empty when the table does not exist.
    func setNames() throws(NetfilterError) -> [String] {
        let message = request(NFTCommand.getSet) { $0.addString(NFTSetAttribute.table, table) }
        return try (try exchange(message, "listing nf_tables sets of", "table inet \(table)") ?? [])
            .map { (reply) throws(NetfilterError) in try NFTDecoder.set(reply) }.filter { $0.table == table }.map(\.name)
    }

    func chainNames() throws(NetfilterError) -> [String] {
        let message = request(NFTCommand.getChain) { $0.addString(NFTChainAttribute.table, table) }
        // The kernel does not filter a chain dump by table: every inet chain comes back.
        return try (try exchange(message, "listing nf_tables chains of", "table inet \(table)") ?? [])
            .map { (reply) throws(NetfilterError) in try NFTDecoder.chain(reply) }.filter { $0.table == table }.map(\.name)
    }

    /// A set's elements: key, interval-end flag, comment; nil when the set does not exist.
    func elements(of set: String, family: Family) throws(NetfilterError) -> [(key: IPAddress, isEnd: Bool, comment: String)]? {
        let message = request(NFTCommand.getElements) {
            $0.addString(NFTElementAttribute.listTable, table)
            $0.addString(NFTElementAttribute.listSet, set)
        }
        guard let replies = try exchange(message, "listing the elements of nf_tables set", set) else { return nil }
        var elements: [(key: IPAddress, isEnd: Bool, comment: String)] = []
        for reply in replies {
            for element in try NFTDecoder.elements(reply) {
                guard let key = IPAddress(family: family, bytes: element.key) else { continue }
                elements.append((key, element.flags & NFTConstant.elementIntervalEnd != 0, element.comment))
            }
        }
        return elements
    }

    /// How many elements a set has, counted as its dump streams by (`NFTDecoder.elementCount`: no
    /// element decoded, one receive buffer at a time); nil when the set does not exist.
    func elementCount(of set: String) throws(NetfilterError) -> Int? {
        let message = request(NFTCommand.getElements) {
            $0.addString(NFTElementAttribute.listTable, table)
            $0.addString(NFTElementAttribute.listSet, set)
        }
        var count = 0
        var failure: NetfilterError?
        do throws(NetlinkError) {
            try netlink.dump(message, operation: "counting the elements of nf_tables set", object: set) { body in
                guard failure == nil else { return }
                do throws(NetfilterError) {
                    count += try NFTDecoder.elementCount(NetlinkReply(type: NFTCommand.getElements.rawValue, flags: 0, sequence: 0, body: Array(body)))
                } catch {
                    failure = error
                }
            }
        } catch where error.code == ENOENT {
            return nil
        } catch {
            throw NetfilterError(error)
        }
        if let failure { throw failure }
        return count
    }

    /// A set's flags (`NFT_SET_*`); nil when the set does not exist.
    func setFlags(_ name: String) throws(NetfilterError) -> UInt32? {
        let message = request(NFTCommand.getSet, dump: false) {
            $0.addString(NFTSetAttribute.table, table)
            $0.addString(NFTSetAttribute.name, name)
        }
        guard let replies = try exchange(message, "reading nf_tables set", name), let reply = replies.first else { return nil }
        return try NFTDecoder.set(reply).flags
    }

    /// The kernel's answer to a GET of one element; nil when the element (or the set) is not there.
    private func element(_ key: IPAddress, in set: String) throws(NetfilterError) -> [NetlinkReply]? {
        let message = request(NFTCommand.getElements, dump: false) {
            $0.addString(NFTElementAttribute.listTable, table)
            $0.addString(NFTElementAttribute.listSet, set)
            $0.nested(NFTElementAttribute.listElements) {
                $0.nested(NFTDataAttribute.listElement) { $0.addValue(NFTElementAttribute.key, key.bytes) }
            }
        }
        return try exchange(message, "reading element \(key) of nf_tables set", set)
    }

    /// A chain's rules in order; nil when the table does not exist. A chain that does not exist
    /// has none (the kernel answers a rule dump for a missing chain with an empty one): ask
    /// `chainNames` whether it is there.
    func rules(of chain: String) throws(NetfilterError) -> [InstalledRule]? {
        let message = request(NFTCommand.getRule) {
            $0.addString(NFTRuleAttribute.table, table)
            $0.addString(NFTRuleAttribute.chain, chain)
        }
        guard let replies = try exchange(message, "listing the rules of nf_tables chain", chain) else { return nil }
        return try replies.map { (reply) throws(NetfilterError) in try NFTDecoder.installedRule(reply) }
            .filter { $0.table == table && $0.chain == chain }
    }

    // MARK: NATBackend

    public func isInstalled(_ plan: FamilyPlan) throws -> Bool {
        let nft = NFTFamilyPlan(plan)
        guard let current = try rules(of: nft.chain), current.count == nft.rules.count else { return false }
        return try (rules(of: baseChain) ?? []).contains { $0.jumpTarget == nft.chain }
    }

    public func install(_ plan: FamilyPlan) throws {
        let nft = NFTFamilyPlan(plan)
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            let oldJumps = try (rules(of: baseChain) ?? []).filter { $0.jumpTarget == nft.chain }
            let tag = NFTRule.comment(NFTFamilyPlan.tag(plan.jump.comment))
            // A set's flags cannot change (the kernel refuses the batch): a member set made by an
            // earlier randsnat (`flags dynamic,timeout`) keeps its flags; elements are only added and
            // deleted, which works in either.
            let flags = try setFlags(plan.names.memberSet) ?? 0
            var batch = NFTBatch()
            batch.addTable(table)
            batch.addChain(table, baseChain, hook: .snat)
            batch.addSet(table, plan.names.memberSet, family: plan.family, interval: false, flags: flags, comment: "\(tag): pods")
            batch.addSet(table, plan.names.subnetSet, family: plan.family, interval: true, comment: "\(tag): pod subnets")
            batch.addSet(table, nft.bypassSet, family: plan.family, interval: true, comment: "\(tag): destinations that bypass SNAT")
            batch.addElements(table, nft.bypassSet, NFTBatch.elements(nft.bypass))
            batch.addChain(table, nft.chain)
            batch.flushChain(table, nft.chain)
            for rule in nft.rules { batch.addRule(table, nft.chain, rule) }
            for jump in oldJumps { batch.deleteRule(table, baseChain, handle: jump.handle) }
            batch.addRule(table, baseChain, nft.jump)
            try removeEarlierDepartures(in: &batch)
            try batch.commit(on: netlink)
        }
    }

    /// Adds to `batch` the removal of the departures chain an earlier build kept in randsnat's table
    /// (an output-hook chain whose rules deleted pods' elements, each naming a member set, so a set
    /// could not go while it stayed).
    private func removeEarlierDepartures(in batch: inout NFTBatch) throws(NetfilterError) {
        guard try chainNames().contains(NFTFamilyPlan.earlierDeparturesChain) else { return }
        batch.flushChain(table, NFTFamilyPlan.earlierDeparturesChain)
        batch.deleteChain(table, NFTFamilyPlan.earlierDeparturesChain)
    }

    /// Removes the departures chain an earlier build left (see `removeEarlierDepartures`), under the
    /// table lock; true when there was one. Install and the agent's first pass call it.
    public func removeEarlierDepartures() throws -> Bool {
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            var batch = NFTBatch()
            try removeEarlierDepartures(in: &batch)
            guard !batch.isEmpty else { return false }
            try batch.commit(on: netlink)
            return true
        }
    }

    public func uninstall(_ names: ObjectNames) throws {
        let chain = NFTFamilyPlan.chain(names)
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            let sets = Set(try setNames())
            var batch = NFTBatch()
            for jump in try (rules(of: baseChain) ?? []) where jump.jumpTarget == chain {
                batch.deleteRule(table, baseChain, handle: jump.handle)
            }
            if try chainNames().contains(chain) {
                batch.flushChain(table, chain)
                batch.deleteChain(table, chain)
            }
            try removeEarlierDepartures(in: &batch)
            for set in [names.memberSet, names.subnetSet, NFTFamilyPlan.bypassSet(names)] where sets.contains(set) {
                batch.deleteSet(table, set)
            }
            try batch.commit(on: netlink)
        }
        try removeTableIfUnused()
    }

    /// Adds the pod's element; an element left with another owner's comment is replaced.
    public func add(_ member: PodPlan.Member, comment: String) throws {
        let element = NFTBatch.Element(key: member.address.address, comment: comment)
        if let current = try elements(of: member.names.memberSet, family: member.address.family)?.first(where: { $0.key == element.key }) {
            if current.comment.utf8Equals(Attachment.clip(comment, to: commentLimit)) { return }
            var batch = NFTBatch()
            batch.deleteElements(table, member.names.memberSet, [element])
            batch.addElements(table, member.names.memberSet, [element])
            return try batch.commit(on: netlink)
        }
        var batch = NFTBatch()
        batch.addElements(table, member.names.memberSet, [element])
        try batch.commit(on: netlink)
    }

    /// The pod's element and its subnet in one batch. An element already there (a departed pod's,
    /// or this pod's from an earlier ADD) or an overlapping subnet makes the kernel refuse it all;
    /// then the two steps run one by one, each handling its case.
    public func addPod(_ member: PodPlan.Member, comment: String) throws {
        var batch = NFTBatch()
        batch.addElements(table, member.names.memberSet, [NFTBatch.Element(key: member.address.address, comment: comment)], exclusive: true)
        batch.addElements(table, member.names.subnetSet, NFTBatch.elements([NFTInterval(member.address.subnet, comment: "randsnat: pod subnet")]))
        guard try refusal(of: batch, allowing: [EEXIST, ENOTEMPTY]) != nil else { return }
        try add(member, comment: comment)
        try add(subnet: member.address.subnet, to: member.names)
    }

    /// Every element and subnet in one batch (each batch costs the kernel's commit, ~10 ms with its
    /// RCU wait: 250 pods one by one took 4 s to move); refused as a whole (an element or an
    /// overlapping subnet already there), the pods are added one by one.
    public func addPods(_ pods: [(member: PodPlan.Member, comment: String)]) throws {
        guard pods.count > 1 else { return try pods.forEach { try addPod($0.member, comment: $0.comment) } }
        var members: [String: [NFTBatch.Element]] = [:]
        var subnets: [String: [CIDR]] = [:]
        for (member, comment) in pods {
            members[member.names.memberSet, default: []].append(NFTBatch.Element(key: member.address.address, comment: comment))
            if !(subnets[member.names.subnetSet] ?? []).contains(member.address.subnet) {
                subnets[member.names.subnetSet, default: []].append(member.address.subnet)
            }
        }
        var batch = NFTBatch()
        for (set, elements) in members.sorted(by: { $0.key < $1.key }) { batch.addElements(table, set, elements, exclusive: true) }
        for (set, cidrs) in subnets.sorted(by: { $0.key < $1.key }) {
            batch.addElements(table, set, NFTBatch.elements(cidrs.map { NFTInterval($0, comment: "randsnat: pod subnet") }))
        }
        guard try refusal(of: batch, allowing: [EEXIST, ENOTEMPTY]) != nil else { return }
        for (member, comment) in pods { try addPod(member, comment: comment) }
    }

    public func removeKeepingFlows(_ members: [InstalledMember], from names: ObjectNames) throws {
        try retire(members.map(\.address), from: names)
    }

    public func add(subnet: CIDR, to names: ObjectNames) throws {
        var batch = NFTBatch()
        batch.addElements(table, names.subnetSet, NFTBatch.elements([NFTInterval(subnet, comment: "randsnat: pod subnet")]))
        let refused = try refusal(of: batch, allowing: [EEXIST, ENOTEMPTY])
        guard let code = refused else { return }
        // An overlapping subnet is there already (pods of one network with different prefixes): fine
        // when it covers this one.
        let present = NFTInterval.pair(try elements(of: names.subnetSet, family: subnet.family) ?? [])
        let last = NFTInterval.last(of: subnet)
        guard present.contains(where: { !NFTInterval.less(subnet.address, $0.first) && !NFTInterval.less($0.last, last) }) else {
            throw NetfilterError.netlink(operation: "adding \(subnet) to nf_tables set", object: names.subnetSet, errno: code,
                                         reason: "it overlaps a subnet there without being inside it")
        }
    }

    /// Commits `batch`; a refusal with one of the `allowing` codes is returned instead of thrown.
    func refusal(of batch: NFTBatch, allowing codes: [Int32]) throws(NetfilterError) -> Int32? {
        do {
            try batch.commit(on: netlink)
            return nil
        } catch {
            if case .netlink(_, _, let code, _) = error, codes.contains(code) { return code }
            throw error
        }
    }

    /// Takes the pod's element out (it no longer matches when this returns), then its flows.
    public func remove(_ member: InstalledMember, from names: ObjectNames) throws {
        try retire([member.address], from: names)
        try Conntrack(socket: netlink).forgetFlows(from: member.address, cleanup: flowCleanup)
    }

    public func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws {
        try retire([member.address], from: names)
    }

    /// Takes `addresses` out of the generation's member set in one batch: when the kernel has
    /// acknowledged it they match no packet and no lookup, so an ADD of the same address may follow at
    /// once. One that is not there makes the kernel refuse the whole batch; then one by one.
    func retire(_ addresses: [IPAddress], from names: ObjectNames) throws(NetfilterError) {
        let set = names.memberSet
        guard !addresses.isEmpty else { return }
        var batch = NFTBatch()
        batch.deleteElements(table, set, addresses.map { NFTBatch.Element(key: $0) })
        deletedElements = true
        guard try refusal(of: batch, allowing: [ENOENT]) != nil else { return }
        for address in addresses {
            var single = NFTBatch()
            single.deleteElements(table, set, [NFTBatch.Element(key: address)])
            _ = try refusal(of: single, allowing: [ENOENT])
        }
    }

    public func remove(subnet: CIDR, from names: ObjectNames) throws {
        var batch = NFTBatch()
        batch.deleteElements(table, names.subnetSet, NFTBatch.elements([NFTInterval(subnet, comment: "")]))
        _ = try refusal(of: batch, allowing: [ENOENT])
    }

    public func generations(of id: NetworkID) throws -> [InstalledGeneration] {
        var generations: [InstalledGeneration] = []
        for name in try setNames() {
            guard let names = ObjectNames(memberSet: name, of: id) else { continue }
            let members = (try elements(of: names.memberSet, family: names.family) ?? []).map {
                InstalledMember(address: $0.key, comment: $0.comment)
            }
            let subnets = NFTInterval.pair(try elements(of: names.subnetSet, family: names.family) ?? []).compactMap(\.cidr)
            generations.append(InstalledGeneration(names: names, members: members, subnets: subnets))
        }
        return generations
    }

    /// The network's member sets by name: one list of randsnat's sets, no elements read.
    public func generationNames(of id: NetworkID) throws -> [ObjectNames] {
        try setNames().compactMap { ObjectNames(memberSet: $0, of: id) }
    }

    /// nf_tables sends no element count with a set, so this lists the one member set's elements.
    public func memberCount(of names: ObjectNames, in id: NetworkID) throws -> Int? {
        try elementCount(of: names.memberSet)
    }

    /// One element dump of the member set (its elements only: no other set, chain or rule is read).
    public func members(of names: ObjectNames, in id: NetworkID) throws -> [InstalledMember]? {
        try elements(of: names.memberSet, family: names.family)?.map { InstalledMember(address: $0.key, comment: $0.comment) }
    }

    /// A GET of the one element, not a dump of the set.
    public func member(_ address: IPAddress, in names: ObjectNames, of id: NetworkID) throws -> InstalledMember? {
        guard let replies = try element(address, in: names.memberSet) else { return nil }
        for reply in replies {
            for found in try NFTDecoder.elements(reply) where IPAddress(family: names.family, bytes: found.key) == address {
                return InstalledMember(address: address, comment: found.comment)
            }
        }
        return nil
    }

    /// The set itself (a GET of its attributes), not a dump of its elements.
    public func hasMemberSet(_ names: ObjectNames, in id: NetworkID) throws -> Bool {
        try setFlags(names.memberSet) != nil
    }

    /// Removes the network's chains and sets whose generation is not kept, then the table itself
    /// when no network uses it any more.
    public func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws {
        let keptChains = Set(keep.map { NFTFamilyPlan.chain($0) })
        let keptSets = Set(keep.flatMap { [$0.memberSet, $0.subnetSet, NFTFamilyPlan.bypassSet($0)] })
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            let baseRules = try rules(of: baseChain) ?? []
            var batch = NFTBatch()
            for rule in baseRules {
                if let target = rule.jumpTarget, target.hasPrefix(id.namePrefix), !keptChains.contains(target) {
                    batch.deleteRule(table, baseChain, handle: rule.handle)
                }
            }
            for chain in try chainNames() where chain.hasPrefix(id.namePrefix) && !keptChains.contains(chain) {
                batch.flushChain(table, chain)
                batch.deleteChain(table, chain)
            }
            let straySets = try setNames().filter { $0.hasPrefix(id.namePrefix) && !keptSets.contains($0) }
            try removeEarlierDepartures(in: &batch)
            for set in straySets { batch.deleteSet(table, set) }
            try batch.commit(on: netlink)
        }
        try removeTableIfUnused()
    }

    /// Deletes `inet randsnat` when it holds nothing but an empty postrouting chain (and an earlier
    /// build's departures chain, see `removeEarlierDepartures`).
    func removeTableIfUnused() throws {
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            guard try exchange(tableRequest(), "reading nf_tables table", "inet \(table)") != nil else { return }
            let chains = try chainNames()
            let sets = try setNames()
            let baseRules = try rules(of: baseChain) ?? []
            guard sets.isEmpty, chains.allSatisfy({ $0 == baseChain || $0 == NFTFamilyPlan.earlierDeparturesChain }), baseRules.isEmpty else { return }
            var batch = NFTBatch()
            batch.deleteTable(table)
            try batch.commit(on: netlink)
        }
    }

    private func tableRequest() -> NetlinkRequest {
        request(NFTCommand.getTable, dump: false) { $0.addString(NFTTableAttribute.name, table) }
    }

    public func problems(with plan: FamilyPlan) throws -> [String] {
        let nft = NFTFamilyPlan(plan)
        var problems: [String] = []
        let sets = Set(try setNames())
        for set in [plan.names.memberSet, plan.names.subnetSet, nft.bypassSet] where !sets.contains(set) {
            problems.append("nf_tables set \(set) is missing from table inet \(table)")
        }
        if let present = try elements(of: nft.bypassSet, family: plan.family) {
            let bypass = NFTInterval.pair(present).map { "\($0.first)-\($0.last)" }
            let expected = nft.bypass.map { "\($0.first)-\($0.last)" }
            if bypass != expected { problems.append("nf_tables set \(nft.bypassSet) holds \(bypass); randsnat writes \(expected)") }
        }
        if try chainNames().contains(nft.chain), let current = try rules(of: nft.chain) {
            if current.count != nft.rules.count {
                problems.append("chain \(nft.chain) has \(current.count) rules; randsnat writes \(nft.rules.count)")
            }
            for (index, rule) in nft.rules.enumerated() where index >= current.count || !NFTDecoder.same(current[index], rule) {
                problems.append("rule \(index + 1) of \(nft.chain) is not `\(rule.text)`")
            }
        } else {
            problems.append("chain \(nft.chain) is missing from table inet \(table)")
        }
        let jumps = try (rules(of: baseChain) ?? []).filter { $0.jumpTarget == nft.chain }
        if jumps.isEmpty {
            problems.append("chain inet \(table) \(baseChain) has no jump to \(nft.chain)")
        } else if jumps.count > 1 || !NFTDecoder.same(jumps[0], nft.jump) {
            problems.append("the jump to \(nft.chain) in inet \(table) \(baseChain) is not `\(nft.jump.text)`")
        }
        return problems
    }

    public func status() throws -> NodeReport {
        var report = NodeReport()
        do {
            _ = try exchange(request(NFTCommand.getTable) { _ in }, "listing", "nf_tables tables")
        } catch {
            report.problems.append("nf_tables is unusable: \(error); the kernel needs nf_tables with nft_nat, nft_masq, nft_numgen")
        }
        if let reason = tableLock.unusableReason() {
            report.problems.append("randsnat's lock \(tableLock.path) cannot be opened: \(reason); check RANDSNAT_RUN_DIR")
        }
        let nodeRules = (try? NFTables(socket: netlink).natRuleCount()) ?? 0
        report.notes.append("netfilter: nf_tables (\(nodeRules) nat rules of iptables-nft or kube-proxy), randsnat in table inet \(table)")
        report.warnings += NATHookReader(netlink: netlink).earlierSNATWarnings(backend: kind)
        return report
    }

    public func nodeNetfilter() throws -> BackendKind { NodeNetfilter.detect(netlink) }
}

/// Which netfilter holds the node's nat rules, as kube-proxy's iptables-wrapper decides it:
/// nf_tables when its nat tables hold rules and the legacy nat table holds none; legacy otherwise.
enum NodeNetfilter {
    static func detect(_ netlink: NetlinkSocket) -> BackendKind {
        let nftRules = (try? NFTables(socket: netlink).natRuleCount()) ?? 0
        guard nftRules > 0 else { return .iptables }
        // A kernel without legacy xtables nat holds no legacy rules.
        let legacyRules = Family.allCases.reduce(0) { count, family in
            count + ((try? IPTCTable(family: family)).map(IPTablesBackend.foreignRuleCount) ?? 0)
        }
        return legacyRules == 0 ? .nftables : .iptables
    }
}
