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

/// The node's and the pod's links, addresses and routes (netlink underneath).
public protocol PodNetwork {
    /// Makes or reuses the bridge, creates the veth pair with the pod end in `netns` named `ifName`,
    /// assigns addresses and routes, brings the links up. On failure it removes the veth it made.
    func attach(_ plan: BridgePlan, netns: String, ifName: String) throws -> AttachedPod
    /// Removes the pod's veth; a missing netns or interface counts as removed.
    func detach(netns: String, ifName: String) throws
    /// How the kernel differs from the plan, one sentence per difference (CHECK).
    func problems(with plan: BridgePlan, netns: String, ifName: String) throws -> [String]
}

/// Runs the IPAM plugin named in the config, as the spec says: found in CNI_PATH, with the same
/// environment (CNI_COMMAND set to `verb`) and the network config on stdin.
public protocol IPAMRunner {
    /// The plugin's result (nil for DEL/CHECK, which print nothing); its CNI error when it fails.
    func run(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> JSONValue?
}
