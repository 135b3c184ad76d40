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
        return try addSNAT(pod, config: config, members: members) {
            try records.read(cached.attachment) == nil && stillCached()
        }
    }
}
