import CNI

/// The plugin's use of pod records: DEL removes exactly what the record names, GC removes the
/// records of attachments the runtime no longer has, and a move between backends or generations
/// rewrites the records of the pods it moved. All of it under the network lock.
extension SNATPlugin {
    /// Removes the members the attachment's record names, then the generation when it has no member
    /// left. False when there is no usable record, or when a set it names is gone (moved by hand or
    /// by an older randsnat): then the caller looks in every generation.
    ///
    /// A pod's subnet stays in the subnet set while its generation has members: telling whether
    /// another member is in the subnet would mean reading every member. The agent removes subnets
    /// that no record's address is in, and the last DEL of a generation removes it whole.
    func removeRecorded(_ owner: Attachment, backends: VerbBackends) throws -> Bool {
        let record: PodRecord
        do {
            guard let found = try records.read(owner) else { return false }
            record = found
        } catch {
            log("randsnat: \(owner): \(error); looking for the pod's members in every generation")
            return false
        }
        let id = NetworkID(network: owner.network)
        let backend = try backends.backend(record.backend)
        var touched: [ObjectNames] = []
        for (_, names) in record.memberNames where !touched.contains(names) {
            guard try backend.hasMemberSet(names, in: id) else { return false }
            touched.append(names)
        }
        // A member is its owner's: one another attachment took over (the same address given again
        // after an IPAM release) stays.
        for (address, names) in record.memberNames {
            guard let member = try backend.member(address.address, in: names, of: id),
                  owner.owns(member, of: [address.address], limit: backend.commentLimit) else { continue }
            try backend.remove(member, from: names)
        }
        for names in touched where try backend.memberCount(of: names, in: id) == 0 {
            try backend.uninstall(names)
        }
        return true
    }

    /// ADD of an attachment that already has a record: the members of the addresses it no longer
    /// has go (with their flows), where they are still its own; the new members are in already.
    /// Without a record nothing is looked for (that would mean listing every member): the agent
    /// removes such a member once the record names other addresses.
    func replaceRecorded(_ pod: PodPlan, in backend: any NATBackend) throws {
        let owner = pod.attachment
        let record: PodRecord
        do {
            guard let found = try records.read(owner), found.backend == backend.kind else { return }
            record = found
        } catch {
            log("randsnat: \(owner): \(error); the members of its earlier addresses are left to the agent")
            return
        }
        let id = NetworkID(network: owner.network)
        let current = Set(pod.members.map(\.address.address))
        for (address, names) in record.memberNames where !current.contains(address.address) {
            guard let member = try backend.member(address.address, in: names, of: id),
                  owner.owns(member, of: [address.address], limit: backend.commentLimit) else { continue }
            try backend.remove(member, from: names)
            log("randsnat: \(owner): removed the member of \(address.address), which its earlier ADD had and this one has not")
        }
    }

    /// After the network's pods moved to `backend` under `config`: their records say so.
    func recordMove(of network: String, to backend: BackendKind, config: PluginConfig) throws {
        let (found, problems) = try records.records(of: NetworkID(network: network))
        for problem in problems { log("randsnat: \(problem)") }
        for record in found where record.backend != backend || record.generation != Planner.generation(of: config) {
            try records.write(record.moved(to: backend, config: config))
        }
    }

    /// GC: the records of attachments not in `valid` go with their members, and the temp files of
    /// writers that are gone (under the network lock no record is being written), and files at the
    /// record names of gone attachments that randsnat does not trust (so no listing returns them).
    func removeRecords(of id: NetworkID, notIn valid: Set<Attachment>) throws {
        for line in try records.removeLeftoverTemps(of: id) { log("randsnat: \(line)") }
        let (found, problems) = try records.records(of: id)
        for problem in problems { log("randsnat: \(problem)") }
        for record in found where !valid.contains(record.attachment) {
            try records.remove(record.attachment)
        }
        for line in try records.removeFiles(of: id, notNamedFor: valid) { log("randsnat: \(line)") }
    }
}
