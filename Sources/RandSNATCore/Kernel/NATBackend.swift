/// A member randsnat finds in a member set: the pod's address and the comment naming its owner.
public struct InstalledMember: Equatable, Sendable {
    public let address: IPAddress
    public let comment: String

    public init(address: IPAddress, comment: String) {
        self.address = address
        self.comment = comment
    }
}

/// One family's objects of one generation of a network, as the kernel holds them.
public struct InstalledGeneration: Equatable, Sendable {
    public let names: ObjectNames
    public let members: [InstalledMember]
    /// The pods' subnets in the subnet set.
    public let subnets: [CIDR]

    public init(names: ObjectNames, members: [InstalledMember], subnets: [CIDR]) {
        self.names = names
        self.members = members
        self.subnets = subnets
    }
}

/// What the node says about its ability to serve ADDs (STATUS) and which netfilter it runs.
public struct NodeReport: Equatable, Sendable {
    /// Faults that stop ADD from working; STATUS fails when there is any.
    public var problems: [String] = []
    /// Things an operator should know (such as a node whose nat rules live in nf_tables).
    public var warnings: [String] = []
    public var notes: [String] = []

    public init() {}
}

/// The netfilter implementations randsnat can write to.
public enum BackendKind: String, CaseIterable, Sendable {
    /// Legacy xtables through libiptc, with ipsets.
    case iptables
    /// Native nf_tables through libnftnl: table `inet randsnat`.
    case nftables
}

/// The config key `backend`.
public enum BackendChoice: String, Sendable {
    /// What the node uses: nf_tables when its ruleset holds the node's nat rules and the legacy nat
    /// table holds none, legacy otherwise (an empty node stays on libiptc). A network that has
    /// state stays where it is until GC finds the node has changed.
    case auto
    case iptables
    case nftables
}

/// What the verbs read of a network in one backend: by names (cheap, the per-pod path) or with
/// members (DEL without a record, CHECK, GC, moves). Per-pod reads cost the same however large the
/// node's nat table is.
public protocol NetworkReader {
    var kind: BackendKind { get }
    /// How many bytes a member's comment holds here (`Attachment.comment(limit:)` renders for it).
    var commentLimit: Int { get }
    /// True when the plan's sets exist and the nat table's rules still use them.
    func isInstalled(_ plan: FamilyPlan) throws -> Bool
    /// The network's generations and families that have a member set, by name, no member read:
    /// "does this backend hold the network".
    func generationNames(of id: NetworkID) throws -> [ObjectNames]
    /// Every generation and family of the network that has a member set, with its members.
    func generations(of id: NetworkID) throws -> [InstalledGeneration]
    /// The number of members in the generation's member set; nil when the set does not exist.
    func memberCount(of names: ObjectNames, in id: NetworkID) throws -> Int?
    /// The members of the generation's member set (address and owner comment); nil when the set does
    /// not exist. One listing of that set only (never a whole table): the agent compares it with the
    /// records, member by member.
    func members(of names: ObjectNames, in id: NetworkID) throws -> [InstalledMember]?
    /// The member holding `address` in the generation's member set; nil when there is none (or no
    /// set). DEL's question before it removes a member: whose is it?
    func member(_ address: IPAddress, in names: ObjectNames, of id: NetworkID) throws -> InstalledMember?
    /// True when the generation's member set exists (DEL's first question: one small answer where
    /// the backend can give it, not the members).
    func hasMemberSet(_ names: ObjectNames, in id: NetworkID) throws -> Bool
    /// How the kernel's chain and jump differ from the plan, one sentence per difference (reads
    /// whole tables: not for the per-pod path).
    func problems(with plan: FamilyPlan) throws -> [String]
}

extension NetworkReader {
    public func hasMemberSet(_ names: ObjectNames, in id: NetworkID) throws -> Bool {
        try memberCount(of: names, in: id) != nil
    }

    /// From the set's listing, where the backend cannot ask for one member.
    public func member(_ address: IPAddress, in names: ObjectNames, of id: NetworkID) throws -> InstalledMember? {
        try members(of: names, in: id)?.first { $0.address == address }
    }
}

/// What the verbs write of a network in one backend. Per pod only members and subnets change;
/// `install`, `uninstall` and `removeStrays` may read or replace a whole table.
public protocol NetworkWriter {
    /// Creates the sets, the chain with its rules and the jump, replacing what differs; one commit.
    func install(_ plan: FamilyPlan) throws
    /// Removes the jump, the chain and the sets; pieces already gone count as removed.
    func uninstall(_ names: ObjectNames) throws
    /// Adds (or takes over) the pod's member, commented with its owner (at most `commentLimit`
    /// bytes), and its subnet: the per-pod step of ADD, in one kernel transaction where the backend
    /// has them.
    func addPod(_ member: PodPlan.Member, comment: String) throws
    /// Adds many pods' members and subnets (the agent's moves and repairs): one kernel transaction
    /// where the backend has them.
    func addPods(_ pods: [(member: PodPlan.Member, comment: String)]) throws
    func remove(_ member: InstalledMember, from names: ObjectNames) throws
    /// Removes members but not the conntrack entries of their flows: the pods live on in another
    /// generation (the agent's move), and their connections must keep their mappings.
    func removeKeepingFlows(_ members: [InstalledMember], from names: ObjectNames) throws
    func remove(subnet: CIDR, from names: ObjectNames) throws
    /// Removes chains and jumps of the network whose generation is not in `keep` (left by a crash).
    func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws
}

/// The node as a backend sees it (STATUS, and `auto` for a network new on the node). Both read
/// whole tables: not for the per-pod path.
public protocol NodeProbe {
    func status() throws -> NodeReport
    /// Which netfilter holds the node's nat rules.
    func nodeNetfilter() throws -> BackendKind
}

/// A netfilter implementation as the verbs use it.
public typealias NATBackend = NetworkReader & NetworkWriter & NodeProbe

/// A backend without multi-member transactions: it adds a member and a subnet one call each, and
/// gets `addPod`, `addPods` and `removeKeepingFlows` of many members from them.
public protocol MemberSteps: NetworkWriter {
    func add(_ member: PodPlan.Member, comment: String) throws
    /// Adds a pod subnet (shared by the pods in it; its comment names no pod).
    func add(subnet: CIDR, to names: ObjectNames) throws
    func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws
}

extension MemberSteps {
    public func addPod(_ member: PodPlan.Member, comment: String) throws {
        try add(member, comment: comment)
        try add(subnet: member.address.subnet, to: member.names)
    }

    public func addPods(_ pods: [(member: PodPlan.Member, comment: String)]) throws {
        for pod in pods { try addPod(pod.member, comment: pod.comment) }
    }

    public func removeKeepingFlows(_ members: [InstalledMember], from names: ObjectNames) throws {
        for member in members { try removeKeepingFlows(member, from: names) }
    }
}

/// Serialises randsnat's own work on one network across processes, so that a last DEL tearing the
/// network down and a new ADD can never interleave.
public protocol NetworkLock {
    func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T
}
