import CNI

/// One pass of the agent over the node: every network that has pod records, reconciled against
/// its entry in the node's config directory. The caller supplies the files and logs the outcome.
public struct AgentPass {
    let plugin: SNATPlugin
    let records: any RecordStore
    /// See `SNATPlugin.reconcile(network:desired:memory:live:midMove:)`.
    let midMove: () -> Void
    /// What earlier passes verified (the running agent's); nil: every pass checks everything.
    public let memory: ReconcileMemory?
    /// The attachments the container runtime says exist (libcni's result cache), asked once per
    /// pass; nil when unknown: then a member no record backs is reported, never removed (its pod
    /// may be live).
    let liveAttachments: () -> Set<Attachment>?
    /// The adoption of libcni's cache entries randsnat never saw, before the networks' passes; nil: none.
    public let adoption: CacheAdoption?

    public init(plugin: SNATPlugin, records: any RecordStore, memory: ReconcileMemory? = nil,
                liveAttachments: @escaping () -> Set<Attachment>? = { nil }, adoption: CacheAdoption? = nil,
                midMove: @escaping () -> Void = {}) {
        self.plugin = plugin
        self.records = records
        self.memory = memory
        self.liveAttachments = liveAttachments
        self.adoption = adoption
        self.midMove = midMove
    }

    /// - Parameter configFiles: the loadable files of the node's net.d (name, bytes); nil when the
    ///   directory could not be read (every network then keeps the config its records hold).
    public func run(configFiles: [(name: String, bytes: [UInt8])]?) -> ReconcileReport {
        var report = ReconcileReport()
        let configs = configFiles.map(NodeConfigs.parse)
        report.problems += configs?.problems ?? []
        report.configRefusals = configs?.refusals ?? ["the node's net.d cannot be read"]
        // Adopted attachments have records before the networks are listed: this pass reconciles them.
        if let adoption, let configs {
            let found = adoption.run(plugin: plugin, records: records, configs: configs)
            report.problems += found.problemLines
            report.adoption = found
        }
        let networks: [String]
        do {
            networks = try records.networks()
        } catch {
            report.problems.append("cannot list the pod records: \(error)")
            report.failed = true
            return report
        }
        let live = networks.isEmpty ? nil : liveAttachments()
        for network in networks {
            let outcome = plugin.reconcile(network: network, desired: configs?.networks[network], memory: memory, live: live, midMove: midMove)
            report.merge(outcome)
        }
        return report
    }
}
