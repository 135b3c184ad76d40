import RandSNATCore

/// The one way randsnat builds its `NATBackend`s, shared by the per-pod binary and the agent, so the
/// two can never write the node's netfilter state differently: the same xtables lock, the same
/// nf_tables lock under `runDirectory`, the same conntrack cleanup. Building one is cheap (a netlink
/// socket, no file touched): a verb builds only the backends it asks for (`VerbBackends`).
public enum Backends {
    /// randsnat's nf_tables table (the agent hears of deletions in it).
    public static let nftablesTable = NFTFamilyPlan.table

    public static func factory(environment: [String: String], runDirectory: String,
                               log: @escaping (String) -> Void) -> (BackendKind, PluginConfig) throws -> any NATBackend {
        let flowCleanup = TestSwitches(environment: environment).flowCleanup
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

/// The environment switches the integration tests set to reach paths a healthy node on a current
/// kernel does not take, read here and nowhere else, so that their names and values are in one place.
/// Neither makes randsnat do more than it would on some node: one selects the path that exists for
/// older kernels, the other a crash. They stay in the shipped binary because the integration tests run
/// the binary that ships, not a second build. (The installer's crash before a rename needs no switch:
/// the test makes the kernel fail the rename, with strace's fault injection.)
public struct TestSwitches: Sendable {
    /// `RANDSNAT_CONNTRACK_CLEANUP=dump`: DEL forgets a pod's flows by dump-and-delete, the path
    /// of kernels whose ctnetlink cannot flush with a filter (before 6.3).
    public let flowCleanup: FlowCleanup
    /// `RANDSNAT_AGENT_FAULT=mid-move`: the agent kills itself (SIGKILL) between a move's two halves.
    public let agentFaultMidMove: Bool

    public init(environment: [String: String]) {
        flowCleanup = environment["RANDSNAT_CONNTRACK_CLEANUP"] == "dump" ? .dumpAndDelete : .flush
        agentFaultMidMove = environment["RANDSNAT_AGENT_FAULT"] == "mid-move"
    }
}
