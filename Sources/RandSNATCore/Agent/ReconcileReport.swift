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
    /// none: every network the pass reconciled has its entries). Members are compared by address,
    /// not counted: a member no record backs does not stand for a missing one.
    public var podsLackingRules: [NetworkFamily: Int] = [:]
    /// Members no record backs that the pass kept, per network and family: their owners may be live
    /// pods (the runtime's attachments were unknown, or list them). 0 for every network reconciled.
    public var unbackedMembers: [NetworkFamily: Int] = [:]
    /// What the pass refused in net.d (`NodeConfigs.refusals`), or that net.d could not be read;
    /// empty when it took net.d whole. Set for the whole pass, not per network.
    public var configRefusals: [String] = []
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
        /// A member no record backs and no live pod owns (or whose owner's record names other
        /// addresses), removed with its flows as GC removes it.
        public static let strayMember = "stray_member"
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
        unbackedMembers.merge(other.unbackedMembers, uniquingKeysWith: +)
    }
}
