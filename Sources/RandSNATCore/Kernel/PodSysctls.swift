/// `net.ipv4.tcp_timestamps`, the one place for its name and its values.
///
/// Since Linux commit 165573e41f2f ("tcp: secure_seq: add back ports to TS offset", 6.18, also in
/// 6.12 stable) value 1 gives each connection a timestamp offset that depends on its ports. Through
/// SNAT a new flow can land on a 4-tuple a server still holds in TIME_WAIT, with a timestamp unrelated
/// to the old one, and the server's PAWS check drops the SYN (TcpExtPAWSTimewait). Value 2 keeps
/// timestamps without the offset, so they grow monotonically per host and PAWS lets the SYN in.
public enum TCPTimestamps {
    /// The sysctl's name, as `sysctl` spells it.
    public static let name = "net.ipv4.tcp_timestamps"
    /// Its file under `/proc/sys`.
    public static let procPath = "net/ipv4/tcp_timestamps"
    /// The values randsnat accepts for `podTCPTimestamps` (all the kernel gives a meaning to).
    public static let values: ClosedRange<Int64> = 0...2

    /// What a value means, in a few words.
    public static func meaning(_ value: Int) -> String {
        switch value {
        case 0: "no timestamps"
        case 1: "timestamps with a random per-connection offset"
        case 2: "timestamps without the per-connection offset"
        default: "a value the kernel gives no meaning"
        }
    }
}

/// Settings of a pod's network namespace (per-namespace sysctls under /proc/sys/net, which show the
/// namespace of the thread that opens them).
public protocol PodSysctls {
    /// The value of `net.ipv4.tcp_timestamps` in the network namespace at `netns`.
    func tcpTimestamps(netns: String) throws -> Int
    /// Sets `net.ipv4.tcp_timestamps` in the network namespace at `netns`.
    func setTCPTimestamps(_ value: Int, netns: String) throws
}

/// For callers that never set a pod's sysctls: every call fails, saying so.
public struct NoPodSysctls: PodSysctls {
    public init() {}
    public func tcpTimestamps(netns: String) throws -> Int { throw PodSettingError(netns: netns, wanted: nil, reason: "no sysctl access here") }
    public func setTCPTimestamps(_ value: Int, netns: String) throws {
        throw PodSettingError(netns: netns, wanted: value, reason: "no sysctl access here")
    }
}

/// The kernel did not take (or could not show) a pod setting randsnat's config asks for.
public struct PodSettingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let netns: String
    /// The value that was to be set; nil when reading failed.
    public let wanted: Int?
    public let reason: String

    public init(netns: String, wanted: Int?, reason: String) {
        self.netns = netns
        self.wanted = wanted
        self.reason = reason
    }

    public var description: String {
        if let wanted {
            return "podTCPTimestamps: setting \(TCPTimestamps.name) to \(wanted) in the pod's network namespace \(netns) failed: \(reason); "
                + "this kernel or this node (a read-only /proc/sys?) does not take the value: remove podTCPTimestamps from the config "
                + "or make /proc/sys/net writable for the CNI plugin"
        }
        return "podTCPTimestamps: reading \(TCPTimestamps.name) in the pod's network namespace \(netns) failed: \(reason)"
    }
}
