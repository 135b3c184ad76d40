import CNI

/// The agent's adoption of an attachment randsnat never saw (see `AdoptionPlan`): what ADD would
/// have done for it, with the addresses libcni's cache holds and the network's current config.
extension SNATPlugin {
    /// Installs the attachment's members and writes its record, under the network lock, as ADD does.
    /// False when, under the lock, it has a record after all (an ADD ran meanwhile) or `stillCached`
    /// says the runtime removed it (a DEL ran meanwhile): then nothing is done.
    /// - Throws: the network's config is refused, or the kernel or the record store failed.
    public func adopt(_ adoption: AdoptionPlan.Adoption, stillCached: () -> Bool) throws -> Bool {
        let cached = adoption.cached
        var members = adoption.config
        members["name"] = .string(cached.attachment.network)
        let (config, _) = try PluginConfig.parse(members)
        let pod = Planner.pod(cached.attachment, addresses: cached.addresses, config: config)
        return try addSNAT(pod, config: config, members: members, adopted: true) {
            try records.read(cached.attachment) == nil && stillCached()
        }
    }

    /// Removes an adopted pod's members and record, as DEL does, once libcni's cache no longer holds
    /// it: a runtime that tears a pod down with the config it was set up with (podman and CRI-O use
    /// the cached config) never runs randsnat's DEL for a pod set up without randsnat. False when,
    /// under the lock, the record is no longer an adopted one (an ADD wrote it anew) or `stillGone`
    /// says the cache holds the pod again.
    public func release(_ record: PodRecord, stillGone: () -> Bool) throws -> Bool {
        try removeSNAT(record.attachment, members: record.config, addresses: record.addresses.map(\.address)) {
            try records.read(record.attachment)?.adopted == true && stillGone()
        }
    }
}
