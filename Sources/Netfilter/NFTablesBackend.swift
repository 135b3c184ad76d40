internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore

/// randsnat's state as native nf_tables objects in its own table, `inet randsnat` (see
/// `NFTFamilyPlan` for the layout). Writes go through libnftnl/libmnl as atomic batches
/// (`NFTBatch`); reads are netlink dumps of randsnat's own table only, so no per-pod step reads or
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

    public init(runDirectory: String, lockTimeoutSeconds: Double, flowCleanup: FlowCleanup = .flush,
                log: @escaping (String) -> Void = { _ in }) throws(NetfilterError) {
        self.flowCleanup = flowCleanup
        netlink = try NetlinkSocket.netfilterSocket()
        tableLock = FileLock(path: runDirectory + "/nftables.lock", makingDirectory: runDirectory)
        self.lockTimeoutSeconds = lockTimeoutSeconds
        self.log = log
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
        let handle: UInt64
        let comment: String
        let expressions: [NFTExpression?]
        var jumpTarget: String? {
            for case .verdict(.jump(let chain))? in expressions { return chain }
            return nil
        }
    }

    private func request(_ message: NFTMessage, dump: Bool = true) -> NetlinkRequest {
        NetlinkRequest(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(message.rawValue),
                       flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0)), sequence: netlink.nextSequence(),
                       family: UInt8(NFPROTO_INET))
    }

    private typealias NFTMessage = nf_tables_msg_types

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
        var message = request(NFT_MSG_GETSET)
        message.addString(UInt16(NFTA_SET_TABLE.rawValue), table)
        return (try exchange(message, "listing nf_tables sets of", "table inet \(table)") ?? [])
            .filter { $0.nfAttributes[type: UInt16(NFTA_SET_TABLE.rawValue)]?.string == table }
            .compactMap { $0.nfAttributes[type: UInt16(NFTA_SET_NAME.rawValue)]?.string }
    }

    func chainNames() throws(NetfilterError) -> [String] {
        var message = request(NFT_MSG_GETCHAIN)
        message.addString(UInt16(NFTA_CHAIN_TABLE.rawValue), table)
        // The kernel does not filter a chain dump by table: every inet chain comes back.
        return (try exchange(message, "listing nf_tables chains of", "table inet \(table)") ?? [])
            .filter { $0.nfAttributes[type: UInt16(NFTA_CHAIN_TABLE.rawValue)]?.string == table }
            .compactMap { $0.nfAttributes[type: UInt16(NFTA_CHAIN_NAME.rawValue)]?.string }
    }

    /// A set's elements: key, interval-end flag, comment; nil when the set does not exist.
    func elements(of set: String, family: Family) throws(NetfilterError) -> [(key: IPAddress, isEnd: Bool, comment: String)]? {
        var message = request(NFT_MSG_GETSETELEM)
        message.addString(UInt16(NFTA_SET_ELEM_LIST_TABLE.rawValue), table)
        message.addString(UInt16(NFTA_SET_ELEM_LIST_SET.rawValue), set)
        guard let replies = try exchange(message, "listing the elements of nf_tables set", set) else { return nil }
        var elements: [(key: IPAddress, isEnd: Bool, comment: String)] = []
        for reply in replies {
            for item in reply.nfAttributes[type: UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue)]?.nested ?? [] {
                let attributes = item.nested
                guard let keyBytes = attributes[type: UInt16(NFTA_SET_ELEM_KEY.rawValue)]?.nested[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload,
                      let key = IPAddress(family: family, bytes: keyBytes) else { continue }
                let flags = attributes[type: UInt16(NFTA_SET_ELEM_FLAGS.rawValue)]?.be32 ?? 0
                let comment = Self.userDataString(attributes[type: UInt16(NFTA_SET_ELEM_USERDATA.rawValue)]?.payload ?? [], type: 0)
                elements.append((key, flags & UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue) != 0, comment))
            }
        }
        return elements
    }

    /// A set's flags (`NFT_SET_*`); nil when the set does not exist.
    func setFlags(_ name: String) throws(NetfilterError) -> UInt32? {
        var message = request(NFT_MSG_GETSET, dump: false)
        message.addString(UInt16(NFTA_SET_TABLE.rawValue), table)
        message.addString(UInt16(NFTA_SET_NAME.rawValue), name)
        guard let replies = try exchange(message, "reading nf_tables set", name) else { return nil }
        return replies.first.map { $0.nfAttributes[type: UInt16(NFTA_SET_FLAGS.rawValue)]?.be32 ?? 0 }
    }

    /// One element of a set, asked for by its key (a GET, not a dump of the set): absent (also when
    /// expired, or when the set is gone), or present with the milliseconds to its expiration.
    func probe(_ key: IPAddress, in set: String) throws(NetfilterError) -> NFTExpiry.Probe {
        var message = request(NFT_MSG_GETSETELEM, dump: false)
        message.addString(UInt16(NFTA_SET_ELEM_LIST_TABLE.rawValue), table)
        message.addString(UInt16(NFTA_SET_ELEM_LIST_SET.rawValue), set)
        message.beginNested(UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue))
        message.beginNested(UInt16(NFTA_LIST_ELEM.rawValue))
        message.beginNested(UInt16(NFTA_SET_ELEM_KEY.rawValue))
        message.add(UInt16(NFTA_DATA_VALUE.rawValue), key.bytes)
        message.endNested()
        message.endNested()
        message.endNested()
        guard let replies = try exchange(message, "reading element \(key) of nf_tables set", set) else { return .absent }
        return Self.probe(element: replies.lazy.flatMap { $0.nfAttributes[type: UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue)]?.nested ?? [] }.first?.nested)
    }

    /// The answer to a GET that found the element, from the element's attributes: its expiration
    /// (NFTA_SET_ELEM_EXPIRATION, milliseconds as a big-endian u64) when it has one.
    static func probe(element attributes: [NetlinkAttribute]?) -> NFTExpiry.Probe {
        let expiration = attributes?[type: UInt16(NFTA_SET_ELEM_EXPIRATION.rawValue)]?.payload
        return .present(expiresIn: expiration.flatMap { $0.count == 8 ? $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : nil })
    }

    /// A chain's rules in order; nil when the chain does not exist.
    func rules(of chain: String) throws(NetfilterError) -> [InstalledRule]? {
        var message = request(NFT_MSG_GETRULE)
        message.addString(UInt16(NFTA_RULE_TABLE.rawValue), table)
        message.addString(UInt16(NFTA_RULE_CHAIN.rawValue), chain)
        guard let replies = try exchange(message, "listing the rules of nf_tables chain", chain) else { return nil }
        return replies.filter {
            $0.nfAttributes[type: UInt16(NFTA_RULE_TABLE.rawValue)]?.string == table && $0.nfAttributes[type: UInt16(NFTA_RULE_CHAIN.rawValue)]?.string == chain
        }.map { reply in
            let attributes = reply.nfAttributes
            let handleBytes = attributes[type: UInt16(NFTA_RULE_HANDLE.rawValue)]?.payload ?? []
            let handle = handleBytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let expressions = (attributes[type: UInt16(NFTA_RULE_EXPRESSIONS.rawValue)]?.nested ?? []).map { NFTDecoder.expression($0.nested) }
            return InstalledRule(handle: handle, comment: Self.userDataString(attributes[type: UInt16(NFTA_RULE_USERDATA.rawValue)]?.payload ?? [], type: 0),
                                 expressions: expressions)
        }
    }

    /// The string of type `type` in nft's user-data TLVs (type byte, length byte, value).
    static func userDataString(_ bytes: [UInt8], type: UInt8) -> String {
        var offset = 0
        while offset + 2 <= bytes.count {
            let length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { break }
            if bytes[offset] == type { return String(decoding: bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }, as: UTF8.self) }
            offset += 2 + length
        }
        return ""
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
            var batch = NFTBatch()
            batch.addTable(table)
            batch.addChain(table, baseChain, natHook: true)
            let tag = NFTRule.comment(NFTFamilyPlan.tag(plan.jump.comment))
            // A set's flags cannot change (the kernel refuses the batch): a member set made by a
            // randsnat that deleted members, without `flags timeout`, stays as it is.
            let expiring = try setFlags(plan.names.memberSet).map { $0 & NFTBatch.expiringSetFlag != 0 } ?? true
            batch.addSet(table, plan.names.memberSet, family: plan.family, interval: false, expiring: expiring, comment: "\(tag): pods")
            batch.addSet(table, plan.names.subnetSet, family: plan.family, interval: true, comment: "\(tag): pod subnets")
            batch.addSet(table, nft.bypassSet, family: plan.family, interval: true, comment: "\(tag): destinations that bypass SNAT")
            batch.addElements(table, nft.bypassSet, NFTBatch.elements(nft.bypass))
            batch.addChain(table, nft.chain)
            batch.flushChain(table, nft.chain)
            for rule in nft.rules { batch.addRule(table, nft.chain, rule) }
            for jump in oldJumps { batch.deleteRule(table, baseChain, handle: jump.handle) }
            batch.addRule(table, baseChain, nft.jump)
            try batch.commit()
        }
    }

    public func uninstall(_ names: ObjectNames) throws {
        let chain = NFTFamilyPlan.chain(names)
        let sets = Set(try setNames())
        var batch = NFTBatch()
        for jump in try (rules(of: baseChain) ?? []) where jump.jumpTarget == chain {
            batch.deleteRule(table, baseChain, handle: jump.handle)
        }
        if try rules(of: chain) != nil {
            batch.flushChain(table, chain)
            batch.deleteChain(table, chain)
        }
        for set in [names.memberSet, names.subnetSet, NFTFamilyPlan.bypassSet(names)] where sets.contains(set) {
            batch.deleteSet(table, set)
        }
        try batch.commit()
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
            return try batch.commit()
        }
        var batch = NFTBatch()
        batch.addElements(table, member.names.memberSet, [element])
        try batch.commit()
    }

    /// The pod's element and its subnet in one batch. An element already there (a departed pod's,
    /// or this pod's from an earlier ADD) or an overlapping subnet makes the kernel refuse it all;
    /// then the two steps run one by one, each handling its case.
    public func addPod(_ member: PodPlan.Member, comment: String) throws {
        var batch = NFTBatch()
        batch.addElements(table, member.names.memberSet, [NFTBatch.Element(key: member.address.address, comment: comment)], exclusive: true)
        batch.addElements(table, member.names.subnetSet, NFTBatch.elements([NFTInterval(member.address.subnet, comment: "randsnat: pod subnet")]))
        guard try Self.refusal(of: batch, allowing: [EEXIST, ENOTEMPTY]) != nil else { return }
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
        guard try Self.refusal(of: batch, allowing: [EEXIST, ENOTEMPTY]) != nil else { return }
        for (member, comment) in pods { try addPod(member, comment: comment) }
    }

    public func removeKeepingFlows(_ members: [InstalledMember], from names: ObjectNames) throws {
        try retire(members.map(\.address), from: names.memberSet)
    }

    public func add(subnet: CIDR, to names: ObjectNames) throws {
        var batch = NFTBatch()
        batch.addElements(table, names.subnetSet, NFTBatch.elements([NFTInterval(subnet, comment: "randsnat: pod subnet")]))
        let refused = try Self.refusal(of: batch, allowing: [EEXIST, ENOTEMPTY])
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
    static func refusal(of batch: NFTBatch, allowing codes: [Int32]) throws(NetfilterError) -> Int32? {
        do {
            try batch.commit()
            return nil
        } catch {
            if case .netlink(_, _, let code, _) = error, codes.contains(code) { return code }
            throw error
        }
    }

    /// Takes the pod's element out (it no longer matches when this returns), then its flows.
    public func remove(_ member: InstalledMember, from names: ObjectNames) throws {
        try retire([member.address], from: names.memberSet)
        try Conntrack(socket: netlink).forgetFlows(from: member.address, cleanup: flowCleanup)
    }

    public func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws {
        try retire([member.address], from: names.memberSet)
    }

    /// Takes `addresses` out of the member set `set`: gone from lookups and listings when it returns.
    /// They expire (see `expire`) rather than being deleted, whose commit would make this process's
    /// socket closes wait for an RCU grace period (see `NFTExpiry`). Deleted instead, as one batch,
    /// those the kernel did not expire, and all of them when it cannot be asked for one element or
    /// refuses the update (a set without `flags timeout`).
    func retire(_ addresses: [IPAddress], from set: String) throws(NetfilterError) {
        var doomed = addresses
        do {
            doomed = try expire(addresses, in: set)
        } catch {
            // EINVAL for a set without the flag, or a kernel without element GETs: the delete below
            // does what DEL always did, and its failure is the one reported.
        }
        guard !doomed.isEmpty else { return }
        var batch = NFTBatch()
        batch.deleteElements(table, set, doomed.map { NFTBatch.Element(key: $0) })
        guard try Self.refusal(of: batch, allowing: [ENOENT]) != nil else { return }
        // One of them is not there: the kernel refused the whole batch. One by one.
        for address in doomed {
            var single = NFTBatch()
            single.deleteElements(table, set, [NFTBatch.Element(key: address)])
            _ = try Self.refusal(of: single, allowing: [ENOENT])
        }
    }

    /// Gives the ones of `addresses` that are in `set` a 1 ms timeout (one batch), then asks for each
    /// (a GET) until the kernel no longer has it, a jiffy at most; returns those it did not expire (a
    /// kernel before 6.10 keeps them as they were). Absent ones are left alone.
    private func expire(_ addresses: [IPAddress], in set: String) throws(NetfilterError) -> [IPAddress] {
        var pending: [IPAddress] = []
        for address in addresses where try probe(address, in: set) != .absent { pending.append(address) }
        guard !pending.isEmpty else { return [] }
        var update = NFTBatch()
        update.expireElements(table, set, pending.map { NFTBatch.Element(key: $0) }, milliseconds: NFTExpiry.milliseconds)
        try update.commit()
        let start = Self.microsecondsNow()
        var unexpired: [IPAddress] = []
        while !pending.isEmpty {
            var waiting: [IPAddress] = []
            var nap = 0
            for address in pending {
                switch NFTExpiry.next(after: try probe(address, in: set), waited: Self.microsecondsNow() - start) {
                case .done: break
                case .wait(let microseconds): waiting.append(address); nap = max(nap, microseconds)
                case .delete: unexpired.append(address)
                }
            }
            pending = waiting
            if nap > 0 { usleep(UInt32(nap)) }
        }
        return unexpired
    }

    private static func microsecondsNow() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1_000_000 + now.tv_nsec / 1000
    }

    public func remove(subnet: CIDR, from names: ObjectNames) throws {
        var batch = NFTBatch()
        batch.deleteElements(table, names.subnetSet, NFTBatch.elements([NFTInterval(subnet, comment: "")]))
        _ = try Self.refusal(of: batch, allowing: [ENOENT])
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
        try elements(of: names.memberSet, family: names.family)?.count
    }

    /// Removes the network's chains and sets whose generation is not kept, then the table itself
    /// when no network uses it any more.
    public func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws {
        let keptChains = Set(keep.map { NFTFamilyPlan.chain($0) })
        let keptSets = Set(keep.flatMap { [$0.memberSet, $0.subnetSet, NFTFamilyPlan.bypassSet($0)] })
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
        for set in try setNames() where set.hasPrefix(id.namePrefix) && !keptSets.contains(set) {
            batch.deleteSet(table, set)
        }
        try batch.commit()
        try removeTableIfUnused()
    }

    /// Deletes `inet randsnat` when it holds nothing but an empty postrouting chain.
    func removeTableIfUnused() throws {
        try tableLock.withLock(timeoutSeconds: lockTimeoutSeconds) {
            guard try exchange(tableRequest(), "reading nf_tables table", "inet \(table)") != nil else { return }
            let chains = try chainNames()
            let sets = try setNames()
            let baseRules = try rules(of: baseChain) ?? []
            guard sets.isEmpty, chains.allSatisfy({ $0 == baseChain }), baseRules.isEmpty else { return }
            var batch = NFTBatch()
            batch.deleteTable(table)
            try batch.commit()
        }
    }

    private func tableRequest() -> NetlinkRequest {
        var message = request(NFT_MSG_GETTABLE, dump: false)
        message.addString(UInt16(NFTA_TABLE_NAME.rawValue), table)
        return message
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
        if let current = try rules(of: nft.chain) {
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
            _ = try exchange(request(NFT_MSG_GETTABLE), "listing", "nf_tables tables")
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

/// Reads the kernel's dump of an expression back into `NFTExpression` (nil for kinds randsnat does
/// not write), for CHECK.
enum NFTDecoder {
    static func expression(_ attributes: [NetlinkAttribute]) -> NFTExpression? {
        let name = attributes[type: UInt16(NFTA_EXPR_NAME.rawValue)]?.string ?? ""
        let data = attributes[type: UInt16(NFTA_EXPR_DATA.rawValue)]?.nested ?? []
        func u32(_ type: Int32) -> UInt32? { data[type: UInt16(type)]?.be32 }
        func register(_ type: Int32) -> NFTRegister? { u32(type).flatMap { NFTRegister(rawValue: $0) } }
        func value(_ type: Int32) -> [UInt8] {
            data[type: UInt16(type)]?.nested[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload ?? []
        }
        switch name {
        case "meta":
            guard let key = u32(Int32(NFTA_META_KEY.rawValue)).flatMap(NFTExpression.MetaKey.init), let r = register(Int32(NFTA_META_DREG.rawValue))
            else { return nil }
            return .meta(key, r)
        case "cmp":
            guard u32(Int32(NFTA_CMP_OP.rawValue)) == UInt32(NFT_CMP_EQ.rawValue), let r = register(Int32(NFTA_CMP_SREG.rawValue)) else { return nil }
            return .equal(r, value(Int32(NFTA_CMP_DATA.rawValue)))
        case "payload":
            guard u32(Int32(NFTA_PAYLOAD_BASE.rawValue)) == UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue),
                  let offset = u32(Int32(NFTA_PAYLOAD_OFFSET.rawValue)), let length = u32(Int32(NFTA_PAYLOAD_LEN.rawValue)),
                  let r = register(Int32(NFTA_PAYLOAD_DREG.rawValue)) else { return nil }
            return .payload(offset: offset, length: length, r)
        case "lookup":
            guard let set = data[type: UInt16(NFTA_LOOKUP_SET.rawValue)]?.string, let r = register(Int32(NFTA_LOOKUP_SREG.rawValue)),
                  (u32(Int32(NFTA_LOOKUP_FLAGS.rawValue)) ?? 0) == 0 else { return nil }
            return .lookup(set: set, r)
        case "numgen":
            guard let modulus = u32(Int32(NFTA_NG_MODULUS.rawValue)), let r = register(Int32(NFTA_NG_DREG.rawValue)),
                  u32(Int32(NFTA_NG_TYPE.rawValue)) == UInt32(NFT_NG_RANDOM.rawValue) else { return nil }
            return .randomNumber(modulus: modulus, r)
        case "immediate":
            guard let r = register(Int32(NFTA_IMMEDIATE_DREG.rawValue)) else { return nil }
            let payload = data[type: UInt16(NFTA_IMMEDIATE_DATA.rawValue)]?.nested ?? []
            if r == .verdict {
                let verdict = payload[type: UInt16(NFTA_DATA_VERDICT.rawValue)]?.nested ?? []
                let code = Int32(bitPattern: verdict[type: UInt16(NFTA_VERDICT_CODE.rawValue)]?.be32 ?? 0)
                if code == -5 { return .verdict(.return) }
                if code == -3, let chain = verdict[type: UInt16(NFTA_VERDICT_CHAIN.rawValue)]?.string { return .verdict(.jump(chain)) }
                return nil
            }
            return .immediate(r, payload[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload ?? [])
        case "masq":
            let low = register(Int32(NFTA_MASQ_REG_PROTO_MIN.rawValue)), high = register(Int32(NFTA_MASQ_REG_PROTO_MAX.rawValue))
            return .masquerade(flags: u32(Int32(NFTA_MASQ_FLAGS.rawValue)) ?? 0, ports: low.flatMap { l in high.map { (l, $0) } })
        case "nat":
            guard u32(Int32(NFTA_NAT_TYPE.rawValue)) == UInt32(NFT_NAT_SNAT.rawValue),
                  let low = register(Int32(NFTA_NAT_REG_ADDR_MIN.rawValue)), let high = register(Int32(NFTA_NAT_REG_ADDR_MAX.rawValue))
            else { return nil }
            let family: Family = u32(Int32(NFTA_NAT_FAMILY.rawValue)) == UInt32(NFPROTO_IPV6) ? .ipv6 : .ipv4
            let portLow = register(Int32(NFTA_NAT_REG_PROTO_MIN.rawValue)), portHigh = register(Int32(NFTA_NAT_REG_PROTO_MAX.rawValue))
            // The kernel adds the flags it derives (NF_NAT_RANGE_MAP_IPS, _PROTO_SPECIFIED): keep the random bits.
            let flags = (u32(Int32(NFTA_NAT_FLAGS.rawValue)) ?? 0) & (NFTRule.randomFully | 1 << 2 | 1 << 3)
            return .snat(family: family, addresses: (low, high), ports: portLow.flatMap { l in portHigh.map { (l, $0) } }, flags: flags)
        default:
            return nil
        }
    }

    /// The kernel's rule is randsnat's `rule`: same expressions and comment.
    static func same(_ installed: NFTablesBackend.InstalledRule, _ rule: NFTRule) -> Bool {
        installed.comment.utf8Equals(rule.comment) && installed.expressions.count == rule.expressions.count
            && zip(installed.expressions, rule.expressions).allSatisfy { $0 == $1 }
    }
}
