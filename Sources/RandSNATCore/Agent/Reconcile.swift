import CNI

/// The agent's work on one network: the kernel made equal to the desired state, that is the
/// current config's generation (or, for a network whose config has left the node, the config each
/// record holds) holding every recorded pod, in the network's backend.
///
///     records (under the network lock) ─┐
///     desired config ───────────────────┼─→ per family: install what is missing (chain, jump, sets)
///     live attachments (runtime's cache)│   list the member set; compare it with the records by
///                                       │     address: add missing members and subnets, settle
///                                       │     members no record backs (`settleUnbacked`)
///                                       │   move pods of older generations: new member first,
///                                       │     then the old member out (flows kept), old generation
///                                       │     removed once empty; the record rewritten
///                                       └─→ generations of the network with no member: removed
///
/// A member no record backs goes (with its flows, as GC removes it) when its owner's record names
/// other addresses, or when the runtime's attachments are known and its owner is not among them;
/// otherwise (a pod of a randsnat that kept no records, while nobody can say whether it lives) it is
/// kept and reported. Nothing outside randsnat's names is read for writing or touched.
extension SNATPlugin {
    /// Reconciles one network under its lock.
    /// - Parameter desired: randsnat's entry of the network in the node's config; nil when the
    ///   network's config is no longer on the node (each record's own config is then kept).
    /// - Parameter live: the attachments the container runtime says exist (libcni's result cache);
    ///   nil when unknown: then no member no record backs is removed.
    /// - Parameter midMove: called when a move's new members are in and the old ones not yet out
    ///   (a fault-injection point: tests kill the agent there).
    /// - Parameter memory: what the running agent's earlier passes verified (nil: check everything).
    public func reconcile(network: String, desired: [JSONKey: JSONValue]?, memory: ReconcileMemory? = nil,
                          live: Set<Attachment>? = nil, midMove: () -> Void = {}) -> ReconcileReport {
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
                try reconcileLocked(id, current: current, memory: memory, live: live, report: &report, midMove: midMove)
            }
        } catch {
            report.problems.append("network \"\(network)\": \(error)")
            report.failed = true
        }
        return report
    }

    func reconcileLocked(_ id: NetworkID, current: PluginConfig?, memory: ReconcileMemory?, live: Set<Attachment>?,
                         report: inout ReconcileReport, midMove: () -> Void) throws {
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
        let owners = UnbackedMembers(records: records, live: live, limit: backend.commentLimit)
        for (names, members) in wanted {
            report.pods[ReconcileReport.PodGroup(network: network, family: names.family, backend: backend.kind.rawValue,
                                                 generation: names.generation), default: 0] += members.count
            report.podsLackingRules[ReconcileReport.NetworkFamily(network: network, family: names.family), default: 0] += 0
            report.unbackedMembers[ReconcileReport.NetworkFamily(network: network, family: names.family), default: 0] += 0
        }
        var strayRemoved = false
        var checked: Set<ObjectNames> = []
        for names in plans.keys.sorted(by: { ($0.generation, $0.family.digit) < ($1.generation, $1.family.digit) }) {
            let plan = plans[names]!
            let members = wanted[names]!
            if try !backend.isInstalled(plan) {
                let missing = (try? backend.problems(with: plan)) ?? []  // what the log names as put back
                try backend.install(plan)
                report.repairs.append(ReconcileReport.rulesRepair(network: network, names: names, pods: members.count,
                                                                  backend: backend.kind.rawValue, missing: missing))
                report.repairCounts[ReconcileReport.RepairKind.rules, default: 0] += 1
            }
            // The members verified earlier hold while the loop heard of no deletion (ReconcileMemory).
            let key = ReconcileMemory.key(backend.kind, names)
            let addresses = Set(members.map(\.address.address))
            if let memory, memory.notified.contains(backend.kind), memory.members[key] == addresses { continue }
            memory?.members[key] = nil
            checked.insert(names)
            let present = try backend.members(of: names, in: id) ?? []
            let presentAddresses = Set(present.map(\.address))
            var missing: [(record: PodRecord, address: PodAddress)] = []
            var adding: Set<IPAddress> = []
            for member in members where !presentAddresses.contains(member.address.address) && adding.insert(member.address.address).inserted {
                missing.append(member)
            }
            try backend.addPods(missing.map { (PodPlan.Member(address: $0.address, names: names), $0.record.attachment.comment(limit: backend.commentLimit)) })
            if !missing.isEmpty {
                report.repairCounts[ReconcileReport.RepairKind.member, default: 0] += missing.count
                let moved = missing.filter { $0.record.generation != names.generation || $0.record.backend != backend.kind }.count
                report.repairs.append("network \"\(network)\": added \(missing.count) pod member(s) to \(names.memberSet)"
                                      + (moved > 0 ? " (\(moved) moved from an older generation)" : " that were missing: "
                                         + UnbackedMembers.listed(missing.map { "\($0.address.address) (\($0.record.attachment))" })))
            }
            let backed = addresses.union(owners.recorded[names] ?? [])
            let unbacked = present.filter { !backed.contains($0.address) }
            let kept = try settleUnbacked(unbacked, in: names, of: network, backend, owners: owners, report: &report)
            strayRemoved = strayRemoved || kept.count < unbacked.count
            if missing.isEmpty && kept.isEmpty { memory?.members[key] = addresses }
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
        // Generations of the network that no desired plan uses (their pods moved out above): what is
        // left in them no record backs and is settled; a generation left without members is removed.
        for names in try backend.generationNames(of: id) where !plans.keys.contains(names) {
            let present = try backend.members(of: names, in: id) ?? []
            let kept = try settleUnbacked(present, in: names, of: network, backend, owners: owners, report: &report)
            strayRemoved = strayRemoved || kept.count < present.count
            if kept.isEmpty {
                try backend.uninstall(names)
                report.repairs.append("network \"\(network)\": removed generation \(names.generation) (\(names.family == .ipv4 ? "IPv4" : "IPv6")), which no pod uses any more")
                report.repairCounts[ReconcileReport.RepairKind.generationRemoved, default: 0] += 1
            } else {
                stillUsed.insert(names)
            }
        }
        // Subnets that no member is in (a DEL leaves its pod's subnet while the generation has other
        // members): checked when the network's pods changed since the last check, or a member went.
        let attachments = Set(records.map(\.attachment))
        if !movers.isEmpty || strayRemoved || memory?.subnetsCheckedFor[network] != attachments {
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

        // Converged after the repairs? Every plan installed and every recorded address a member.
        for (names, plan) in plans {
            let key = ReconcileReport.NetworkFamily(network: network, family: names.family)
            if try !backend.isInstalled(plan) {
                report.problems.append("network \"\(network)\": \(names.chain) is still not installed")
                report.podsLackingRules[key, default: 0] += wanted[names]!.count
                continue
            }
            guard checked.contains(names) else { continue }
            let present = Set((try backend.members(of: names, in: id) ?? []).map(\.address))
            let lacking = Set(wanted[names]!.map(\.address.address)).subtracting(present)
            if !lacking.isEmpty {
                report.podsLackingRules[key, default: 0] += lacking.count
                memory?.members[ReconcileMemory.key(backend.kind, names)] = nil
                report.problems.append("network \"\(network)\": \(names.memberSet) lacks \(lacking.count) recorded pod address(es): "
                                       + UnbackedMembers.listed(lacking.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }.map(\.description)))
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
