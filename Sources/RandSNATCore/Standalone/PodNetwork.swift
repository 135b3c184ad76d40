import CNI

/// An interface as a CNI result lists it.
public struct ResultInterface: Equatable, Sendable {
    public let name: String
    public let mac: String
    public let sandbox: String?

    public init(name: String, mac: String, sandbox: String?) {
        self.name = name
        self.mac = mac
        self.sandbox = sandbox
    }
}

/// The three interfaces of an attached pod, in the order of the result's `interfaces`.
public struct AttachedPod: Equatable, Sendable {
    public let bridge: ResultInterface
    public let hostVeth: ResultInterface
    public let pod: ResultInterface

    public init(bridge: ResultInterface, hostVeth: ResultInterface, pod: ResultInterface) {
        self.bridge = bridge
        self.hostVeth = hostVeth
        self.pod = pod
    }
}

/// The link-level part of a pod's network, which needs no address: made while IPAM runs (or,
/// for an IPAM plugin that needs the pod's link, before it runs).
public struct LinkPlan: Equatable, Sendable {
    public let bridge: String
    public let mtu: Int?
    public let hairpin: Bool
    public let promisc: Bool
    /// The pod end's MAC address (nil: the kernel's random one).
    public let mac: MACAddress?
    /// `createLinks` brings the pod end up (for an IPAM plugin that talks on it, such as dhcp);
    /// otherwise `configure` brings it up after its addresses.
    public let podUp: Bool

    public init(_ config: BridgeConfig) {
        bridge = config.bridge
        mtu = config.mtu
        hairpin = config.hairpinMode
        promisc = config.promiscMode
        mac = config.mac
        podUp = config.ipamNeedsLink
    }
}

/// The links `PodNetwork.createLinks` made, for `configure` (or `remove`) to finish.
public struct CreatedLinks: Equatable, Sendable {
    public let bridgeIndex: Int32
    public let hostVeth: String
    public let netns: String
    public let ifName: String

    public init(bridgeIndex: Int32, hostVeth: String, netns: String, ifName: String) {
        self.bridgeIndex = bridgeIndex
        self.hostVeth = hostVeth
        self.netns = netns
        self.ifName = ifName
    }
}

/// The node's and the pod's links, addresses and routes (netlink underneath).
public protocol PodNetwork {
    /// Makes or reuses the bridge and creates the veth pair, the pod end in `netns` named `ifName`,
    /// the host end a port of the bridge. On failure it removes the veth it made.
    func createLinks(_ plan: LinkPlan, netns: String, ifName: String) throws -> CreatedLinks
    /// Gateway addresses on the bridge, forwarding, the pod's addresses and routes, links up.
    func configure(_ links: CreatedLinks, plan: BridgePlan) throws -> AttachedPod
    /// Removes the veth pair `createLinks` made.
    func remove(_ links: CreatedLinks) throws
    /// Removes the pod's veth, running `meanwhile` while the kernel tears it down; a missing netns
    /// or interface counts as removed (and `meanwhile` still runs).
    func detach(netns: String, ifName: String, meanwhile: () throws -> Void) throws
    /// How the kernel differs from the plan, one sentence per difference (CHECK).
    func problems(with plan: BridgePlan, netns: String, ifName: String) throws -> [String]
}

/// Runs the IPAM plugin named in the config, as the spec says: found in CNI_PATH, with the same
/// environment (CNI_COMMAND set to `verb`) and the network config on stdin.
public protocol IPAMRunner {
    /// Starts the plugin; randsnat does other work while it runs and then waits for it.
    func start(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> any RunningIPAM
}

/// An IPAM plugin that is running.
public protocol RunningIPAM {
    /// The plugin's result (nil for DEL/CHECK, which print nothing); its CNI error when it failed.
    func wait() throws -> JSONValue?
}

extension IPAMRunner {
    /// Runs the plugin to its end.
    public func run(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> JSONValue? {
        try start(verb, plugin: plugin, environment: environment, config: config).wait()
    }
}
