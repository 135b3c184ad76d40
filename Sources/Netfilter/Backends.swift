import RandSNATCore

/// The one way randsnat builds its `NATBackend`s, shared by the per-pod binary and the agent, so the
/// two can never write the node's netfilter state differently: the same xtables lock, the same
/// nf_tables lock under `runDirectory`, the same conntrack cleanup. Building one is cheap (a netlink
/// socket, no file touched): a verb builds only the backends it asks for (`VerbBackends`).
public enum Backends {
    /// randsnat's nf_tables table (the agent hears of deletions in it).
    public static let nftablesTable = NFTFamilyPlan.table

    /// - Parameter flowCleanup: how DEL forgets a pod's flows (`.flush` everywhere but in the test
    ///   executable that runs DEL on the path of kernels without filtered flushes).
    public static func factory(environment: [String: String], runDirectory: String, flowCleanup: FlowCleanup = .flush,
                               log: @escaping (String) -> Void) -> (BackendKind, PluginConfig) throws -> any NATBackend {
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

    /// Removes what an earlier build left in the kernel and this one no longer uses: the nftables
    /// departures chain (see `NFTablesBackend.removeEarlierDepartures`). Lines for the log: what was
    /// removed, or why it could not be; none on a node without it (or without nf_tables).
    public static func removeEarlierLeftovers(runDirectory: String) -> [String] {
        guard let backend = try? NFTablesBackend(runDirectory: runDirectory, lockTimeoutSeconds: PluginConfig().lockTimeoutSeconds) else { return [] }
        do {
            guard try backend.removeEarlierDepartures() else { return [] }
            return ["removed chain \(NFTFamilyPlan.earlierDeparturesChain) of table inet \(nftablesTable), which an earlier randsnat left"]
        } catch {
            return ["chain \(NFTFamilyPlan.earlierDeparturesChain) of table inet \(nftablesTable), which an earlier randsnat left, could not be removed: \(error)"]
        }
    }
}
