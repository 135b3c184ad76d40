/// What the agent knows of a network's members besides the sets: which addresses the records give
/// each generation, whose members the records back, and which attachments the runtime says live.
struct UnbackedMembers {
    /// The addresses each generation's set holds by the records (a pod still in an older generation
    /// counts there until its move is done).
    let recorded: [ObjectNames: Set<IPAddress>]
    /// Every address a record of the network holds, in whatever generation.
    let addresses: Set<IPAddress>
    /// The owner comments of the attachments that have a record (as this backend writes them).
    let recordedOwners: Set<[UInt8]>
    /// The comments that may name a live attachment of the network; nil when unknown.
    let liveOwners: Set<[UInt8]>?

    init(records: [PodRecord], live: Set<Attachment>?, limit: Int) {
        var recorded: [ObjectNames: Set<IPAddress>] = [:]
        for record in records {
            for (address, names) in record.memberNames { recorded[names, default: []].insert(address.address) }
        }
        self.recorded = recorded
        addresses = Set(records.flatMap { $0.addresses.map(\.address) })
        recordedOwners = Set(records.map { Array($0.attachment.comment(limit: limit).utf8) })
        let network = records.first?.attachment.network
        liveOwners = live.map { Set($0.filter { $0.network.utf8Equals(network ?? "") }.flatMap { $0.comments(limit: limit) }) }
    }

    /// Why a member no record backs goes, or nil when it stays (its pod may be live).
    func reasonToRemove(_ member: InstalledMember) -> String? {
        let owner = Array(member.comment.utf8)
        if recordedOwners.contains(owner) { return "its owner's record names other addresses" }
        guard let liveOwners else { return nil }
        return liveOwners.contains(owner) ? nil : "no live pod owns it"
    }

    /// A few items of a list for a log line (a set may hold thousands).
    static func listed(_ items: [String]) -> String {
        items.count <= 3 ? items.joined(separator: ", ") : items.prefix(3).joined(separator: ", ") + " and \(items.count - 3) more"
    }
}

extension SNATPlugin {
    /// Members of a generation's set that no record backs: each goes, with the conntrack entries of
    /// its flows as GC removes it, when `UnbackedMembers.reasonToRemove` gives a reason (its flows are
    /// kept when a record holds its address in another generation: that pod's connections); the
    /// others stay and are reported (a problem line, and `ReconcileReport.unbackedMembers`).
    /// Returns the members that stay.
    func settleUnbacked(_ unbacked: [InstalledMember], in names: ObjectNames, of network: String, _ backend: any NATBackend,
                        owners: UnbackedMembers, report: inout ReconcileReport) throws -> [InstalledMember] {
        guard !unbacked.isEmpty else { return [] }
        var removed: [String] = []
        var kept: [InstalledMember] = []
        for member in unbacked {
            guard let reason = owners.reasonToRemove(member) else {
                kept.append(member)
                continue
            }
            if owners.addresses.contains(member.address) {
                try backend.removeKeepingFlows([member], from: names)
            } else {
                try backend.remove(member, from: names)
            }
            removed.append("\(member.address) (\"\(member.comment.escapedBytes)\": \(reason))")
        }
        if !removed.isEmpty {
            report.repairs.append("network \"\(network)\": removed \(removed.count) member(s) of \(names.memberSet) that no record backs: "
                                  + UnbackedMembers.listed(removed))
            report.repairCounts[ReconcileReport.RepairKind.strayMember, default: 0] += removed.count
        }
        if !kept.isEmpty {
            report.unbackedMembers[ReconcileReport.NetworkFamily(network: network, family: names.family), default: 0] += kept.count
            let why = owners.liveOwners == nil ? "whether their pods live is unknown (no list of the runtime's attachments)"
                                               : "their pods are live but have no record"
            report.problems.append("network \"\(network)\": \(names.memberSet) holds \(kept.count) member(s) no record backs, kept because \(why): "
                                   + UnbackedMembers.listed(kept.map { "\($0.address) (\"\($0.comment.escapedBytes)\")" }))
        }
        return kept
    }
}
