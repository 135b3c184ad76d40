import RandSNATCore

/// The one way randsnat builds its `NATBackend`s, shared by the per-pod binary and the agent, so the
/// two can never write the node's netfilter state differently: the same xtables lock, the same
/// nf_tables lock under `runDirectory`, the same conntrack cleanup (`RANDSNAT_CONNTRACK_CLEANUP=dump`
/// selects the dump-and-delete path that kernels before 6.3 need; the tests use it to cover that path).
public enum Backends {
    /// randsnat's nf_tables table (the agent hears of deletions in it).
    public static let nftablesTable = NFTFamilyPlan.table

    public static func factory(environment: [String: String], runDirectory: String,
                               log: @escaping (String) -> Void) -> (BackendKind, PluginConfig) throws -> any NATBackend {
        let flowCleanup: FlowCleanup = environment["RANDSNAT_CONNTRACK_CLEANUP"] == "dump" ? .dumpAndDelete : .flush
        return { kind, config in
            switch kind {
            case .iptables:
                try IPTablesBackend(xtablesLock: .xtables(environment: environment), lockTimeoutSeconds: config.lockTimeoutSeconds,
                                    flowCleanup: flowCleanup, log: log)
            case .nftables:
                try NFTablesBackend(runDirectory: runDirectory, lockTimeoutSeconds: config.lockTimeoutSeconds, flowCleanup: flowCleanup, log: log)
            }
        }
    }
}
