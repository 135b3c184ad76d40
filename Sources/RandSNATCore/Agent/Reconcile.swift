import CNI

/// What one reconcile pass of a network did and what it could not do.
public struct ReconcileReport: Equatable, Sendable {
    /// One line per repair (what was missing, on which network, how many pods).
    public var repairs: [String] = []
    /// What is still wrong after the pass, one sentence each; empty when the network converged.
    public var problems: [String] = []
    /// Objects put back, by kind (`RepairKind`), counted as the lines above say.
    public var repairCounts: [String: Int] = [:]
    /// Whether a network's pass (or the listing of the records) failed with an error.
    public var failed = false
    /// Pods per network, family, backend and generation once the pass ended (the records' desired state).
    public var pods: [PodGroup: Int] = [:]
    /// Pods whose rules or members are still missing after the pass, per network and family (0 when
    /// none: every network the pass reconciled has its entries).
    public var podsLackingRules: [NetworkFamily: Int] = [:]
    /// What the pass's look at libcni's cache adopted and could not adopt (nil: it did not look).
    public var adoption: AdoptionReport?

    /// The kinds of `repairCounts`: one place for the label values the metrics show.
    public enum RepairKind {
        /// A network's state moved to its current backend.
        public static let backendMove = "backend_move"
        /// A generation's chain, jump and sets (installed together).
        public static let rules = "rules"
        /// A pod's member in its generation's set.
        public static let member = "member"
        /// A generation no pod uses, removed.
        public static let generationRemoved = "generation_removed"
        /// A pod subnet no pod is in any more, taken out of its subnet set.
        public static let subnetRemoved = "subnet_removed"
    }

    public struct NetworkFamily: Hashable, Sendable {
        public let network: String
        public let family: Family
        public init(network: String, family: Family) {
            self.network = network
            self.family = family
        }
    }

    public struct PodGroup: Hashable, Sendable {
        public let network: String
        public let family: Family
        public let backend: String
        public let generation: String
        public init(network: String, family: Family, backend: String, generation: String) {
            self.network = network
            self.family = family
            self.backend = backend
            self.generation = generation
        }
    }

    public init() {}

    /// Adds another network's report to this one.
    public mutating func merge(_ other: ReconcileReport) {
        repairs += other.repairs
        problems += other.problems
        repairCounts.merge(other.repairCounts, uniquingKeysWith: +)
        failed = failed || other.failed
        pods.merge(other.pods, uniquingKeysWith: +)
        podsLackingRules.merge(other.podsLackingRules, uniquingKeysWith: +)
    }
}

/// The agent's work on one network: the kernel made equal to the desired state, that is the
/// current config's generation (or, for a network whose config has left the node, the config each
/// record holds) holding every recorded pod, in the network's backend.
///
///     records (under the network lock) ─┐
///     desired config ───────────────────┼─→ per family: install what is missing (chain, jump, sets)
///                                       │   add missing members and subnets
///                                       │   move pods of older generations: new member first,
///                                       │     then the old member out (flows kept), old generation
///                                       │     removed once empty; the record rewritten
///                                       └─→ generations of the network with no member: removed
///
/// Members no record backs (pods of a randsnat that kept no records) are left alone: only GC,
/// which has the runtime's list of live attachments, may remove them. Nothing outside randsnat's
/// names is read for writing or touched.
extension SNATPlugin {
    /// Reconciles one network under its lock.
    /// - Parameter desired: randsnat's entry of the network in the node's config; nil when the
    ///   network's config is no longer on the node (each record's own config is then kept).
    /// - Parameter midMove: called when a move's new members are in and the old ones not yet out
    ///   (a fault-injection point: tests kill the agent there).
    /// - Parameter memory: what the running agent's earlier passes verified (nil: check everything).
    public func reconcile(network: String, desired: [JSONKey: JSONValue]?, memory: ReconcileMemory? = nil,
                          midMove: () -> Void = {}) -> ReconcileReport {
        var report = ReconcileReport()
        let id = NetworkID(network: network)
        var current: PluginConfig?
        if let desired {
            do {
                current = try PluginConfig.parse(desired).config
            } catch {
                report.problems.append("network \"\(network)\": its config in net.d is refused (\(error)); keeping the config each pod's record holds")
            }
        }
        let timeout = current?.lockTimeoutSeconds ?? PluginConfig().lockTimeoutSeconds
        do {
            try lock.withLock(id, timeoutSeconds: timeout) {
                try reconcileLocked(id, current: current, memory: memory, report: &report, midMove: midMove)
            }
        } catch {
            report.problems.append("network \"\(network)\": \(error)")
            report.failed = true
        }
        return report
    }

    func reconcileLocked(_ id: NetworkID, current: PluginConfig?, memory: ReconcileMemory?, report: inout ReconcileReport,
                         midMove: () -> Void) throws {
        let network = id.network
        let (found, unreadable) = try records.records(of: id)
        report.problems += unreadable
        let pods = found.filter { $0.attachment.network == network }
        guard !pods.isEmpty else { return }
        let baseConfig = current ?? pods[0].pluginConfig
        let placement = try place(id, config: baseConfig, fallback: pods[0].backend)
        let backend = placement.chosen
        for (other, generations) in placement.elsewhere {
            try migrate(generations, from: other, to: backend, network: network, config: baseConfig)
            report.repairs.append("network \"\(network)\": moved its pods from \(other.kind.rawValue) to \(backend.kind.rawValue)")
            report.repairCounts[ReconcileReport.RepairKind.backendMove, default: 0] += 1
        }
        // Re-read: a move rewrote records.
        let records = placement.elsewhere.isEmpty ? pods : try self.records.records(of: id).records.filter { $0.attachment.network == network }

        // Desired generation per pod, and the plans they need.
        var plans: [ObjectNames: FamilyPlan] = [:]
        var wanted: [ObjectNames: [(record: PodRecord, address: PodAddress)]] = [:]
        for record in records {
            let config = current ?? record.pluginConfig
            for address in record.addresses {
                let plan = Planner.family(address.family, network: network, config: config)
                plans[plan.names] = plan
                wanted[plan.names, default: []].append((record, address))
            }
        }
        for (names, members) in wanted {
            report.pods[ReconcileReport.PodGroup(network: network, family: names.family, backend: backend.kind.rawValue,
                                                 generation: names.generation), default: 0] += members.count
            report.podsLackingRules[ReconcileReport.NetworkFamily(network: network, family: names.family), default: 0] += 0
        }
        for names in plans.keys.sorted(by: { ($0.generation, $0.family.digit) < ($1.generation, $1.family.digit) }) {
            let plan = plans[names]!
            let members = wanted[names]!
            if try !backend.isInstalled(plan) {
                try backend.install(plan)
                report.repairs.append("network \"\(network)\": installed chain, jump and sets of generation \(names.generation) "
                                      + "(\(names.family == .ipv4 ? "IPv4" : "IPv6"), \(members.count) pods) in \(backend.kind.rawValue)")
                report.repairCounts[ReconcileReport.RepairKind.rules, default: 0] += 1
            }
            // A count verified earlier holds while the loop heard of no deletion (ReconcileMemory).
            let key = ReconcileMemory.key(backend.kind, names)
            if let memory, memory.notified.contains(backend.kind), memory.members[key] == members.count { continue }
            memory?.members[key] = nil
            if try backend.memberCount(of: names, in: id) == members.count {
                memory?.members[key] = members.count
                continue
            }
            let generation = try backend.generations(of: id).first { $0.names == names }
            let present = Set((generation?.members ?? []).map(\.address))
            let missing = members.filter { !present.contains($0.address.address) }
            try backend.addPods(missing.map { (PodPlan.Member(address: $0.address, names: names), $0.record.attachment.comment(limit: backend.commentLimit)) })
            let added = missing.count
            if added > 0 {
                report.repairCounts[ReconcileReport.RepairKind.member, default: 0] += added
                let moved = members.filter { $0.record.generation != names.generation || $0.record.backend != backend.kind }.count
                report.repairs.append("network \"\(network)\": added \(added) pod member(s) to \(names.memberSet)"
                                      + (moved > 0 ? " (\(moved) moved from an older generation)" : " that were missing"))
            }
        }

        // Pods recorded in another generation: their old members go (flows kept), the record follows.
        // Killed here, the next pass finds both members and finishes the move.
        var stillUsed: Set<ObjectNames> = Set(plans.keys)
        let movers = records.filter { $0.generation != Planner.generation(of: current ?? $0.pluginConfig) || $0.backend != backend.kind }
        let installed = movers.isEmpty ? [] : try backend.generations(of: id)
        if !movers.isEmpty { midMove() }
        var leaving: [ObjectNames: [InstalledMember]] = [:]
        for record in movers {
            for (address, names) in record.memberNames {
                guard let old = installed.first(where: { $0.names == names }),
                      old.members.contains(where: { $0.address == address.address && record.attachment.owns($0, of: [address.address], limit: backend.commentLimit) })
                else { continue }
                leaving[names, default: []].append(InstalledMember(address: address.address, comment: record.attachment.comment(limit: backend.commentLimit)))
            }
        }
        for (names, members) in leaving.sorted(by: { $0.key.memberSet < $1.key.memberSet }) {
            try backend.removeKeepingFlows(members, from: names)
        }
        for record in movers {
            try self.records.write(record.moved(to: backend.kind, config: current ?? record.pluginConfig))
        }
        // Generations of the network that no desired plan and no member uses.
        for names in try backend.generationNames(of: id) where !plans.keys.contains(names) {
            let count = try backend.memberCount(of: names, in: id) ?? 0
            if count == 0 {
                try backend.uninstall(names)
                report.repairs.append("network \"\(network)\": removed generation \(names.generation) (\(names.family == .ipv4 ? "IPv4" : "IPv6")), which no pod uses any more")
                report.repairCounts[ReconcileReport.RepairKind.generationRemoved, default: 0] += 1
            } else {
                stillUsed.insert(names)
                report.problems.append("network \"\(network)\": \(names.memberSet) holds \(count) member(s) no record backs (added by an older randsnat?); GC removes them when their pods are gone")
            }
        }
        // Subnets that no member is in (a DEL leaves its pod's subnet while the generation has other
        // members): checked when the network's pods changed since the last check.
        let attachments = Set(records.map(\.attachment))
        if !movers.isEmpty || memory?.subnetsCheckedFor[network] != attachments {
            try pruneSubnets(id, backend: backend, keeping: Set(plans.keys), report: &report)
            memory?.subnetsCheckedFor[network] = attachments
        }
        guard !report.repairs.isEmpty else { return }  // the checks above found nothing missing
        // Chains left without their sets (a crash, an operator's `ipset destroy`): looked for in the
        // first repairing pass of a network (and after the memory is forgotten) and after a backend
        // move, not in every move: on legacy each look reads the whole nat table.
        if memory?.straysCheckedFor.contains(network) != true || !placement.elsewhere.isEmpty {
            try backend.removeStrays(of: id, keep: stillUsed)
            memory?.straysCheckedFor.insert(network)
        }

        // Converged after the repairs? Every plan installed and every recorded member present.
        for (names, plan) in plans {
            let key = ReconcileReport.NetworkFamily(network: network, family: names.family)
            if try !backend.isInstalled(plan) {
                report.problems.append("network \"\(network)\": \(names.chain) is still not installed")
                report.podsLackingRules[key, default: 0] += wanted[names]!.count
                continue
            }
            let count = try backend.memberCount(of: names, in: id) ?? 0
            if count < wanted[names]!.count {
                report.podsLackingRules[key, default: 0] += wanted[names]!.count - count
                report.problems.append("network \"\(network)\": \(names.memberSet) holds \(count) of \(wanted[names]!.count) pods")
            }
        }
    }
}

extension SNATPlugin {
    /// Removes from the network's subnet sets (randsnat's own, of the generations in `generations`)
    /// each subnet that holds no member of its generation. Reads the generations' elements.
    func pruneSubnets(_ id: NetworkID, backend: any NATBackend, keeping generations: Set<ObjectNames>,
                      report: inout ReconcileReport) throws {
        for generation in try backend.generations(of: id) where generations.contains(generation.names) {
            for subnet in generation.subnets where !generation.members.contains(where: { subnet.contains($0.address) }) {
                try backend.remove(subnet: subnet, from: generation.names)
                report.repairs.append("network \"\(id.network)\": removed subnet \(subnet) from \(generation.names.subnetSet), which no pod is in")
                report.repairCounts[ReconcileReport.RepairKind.subnetRemoved, default: 0] += 1
            }
        }
    }
}
