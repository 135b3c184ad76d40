internal import CNetlink
internal import Glibc
import SystemCalls
import RandSNATCore

/// Whether this kernel gives each TCP connection a timestamp offset that depends on its ports
/// (Linux 165573e41f2f, 6.18 and 6.12 stable) or one per address pair (4.12 to that commit).
///
/// The probe, on a thread in a private network namespace of its own (made with unshare, gone when
/// the thread ends; its tcp_timestamps is the kernel's default, 1): loopback up, one listener on
/// 127.0.0.1, two connections to it from two source ports, then `getsockopt(TCP_TIMESTAMP)` on both,
/// which is the socket's current timestamp clock plus its offset. The two readings are microseconds
/// apart, so with one offset per address pair they differ by a ms or so; with per-port offsets they
/// differ by two random 32-bit offsets (a difference under 1000 ms by chance: about 1 in 2 million).
/// Then the same with tcp_timestamps 2 in that namespace (no offset): those two must agree, or the
/// method does not work on this kernel and the answer is "unknown".
public enum TimestampProbe {
    public static func run() throws -> TimestampOffsets {
        try NetworkNamespace.run(in: "") { () throws -> TimestampOffsets in
            let links = try RouteLink.current()
            guard let lo = try links.link(named: "lo") else {
                throw NetlinkError(operation: "finding", object: "lo in the probe's namespace", errno: nil, reason: "no loopback")
            }
            try links.configure(lo, up: true)
            let listener = try socketOrThrow()
            defer { close(listener) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            try check(withSockaddr(&address) { bind(listener, $0, $1) }, "binding the probe's listener")
            try check(listen(listener, 8), "listening")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            try check(withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
            }, "reading the listener's port")
            // Two connections with the kernel's default (1), then, as a control of the method itself,
            // two with the offset turned off (2), whose readings must agree.
            let withOffsets = try readings(to: &address)
            try Sysctl.write(TCPTimestamps.procPath, "2")
            let control = try readings(to: &address)
            return TimestampOffsets(withOffsets: withOffsets, control: control)
        }
    }

    /// `TCP_TIMESTAMP` of two fresh connections to the listener at `address`.
    static func readings(to address: inout sockaddr_in) throws -> [UInt32] {
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for _ in 0..<2 {
            let client = try socketOrThrow()
            clients.append(client)
            try check(withSockaddr(&address) { connect(client, $0, $1) }, "connecting on loopback")
        }
        return try clients.map { client throws(NetlinkError) in
            var value: UInt32 = 0
            var size = socklen_t(MemoryLayout<UInt32>.size)
            try check(getsockopt(client, Int32(IPPROTO_TCP), TCP_TIMESTAMP, &value, &size), "reading TCP_TIMESTAMP")
            return value
        }
    }

    static func socketOrThrow() throws(NetlinkError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetlinkError(SystemCallError("opening", "a TCP socket")) }
        return fd
    }

    static func check(_ result: Int32, _ operation: String) throws(NetlinkError) {
        guard result == 0 else { throw NetlinkError(SystemCallError(operation, "(timestamp probe)")) }
    }

    static func withSockaddr(_ address: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
}

/// What one pod's network namespace says about its TCP timestamps.
public struct PodNamespaceReader {
    public init() {}

    /// net.ipv4.tcp_timestamps and the TCP counters (TcpExt and Tcp, by name) of the namespace at
    /// `netns`. The counters are read from /proc/thread-self/net: /proc/net is /proc/self/net, which
    /// shows the namespace of the process's main thread, not of this one.
    public func read(netns: String) throws -> (tcpTimestamps: Int, counters: [String: UInt64]) {
        try NetworkNamespace.run(in: netns) {
            let value = try Sysctl.readInt(TCPTimestamps.procPath)
            let text = try ProcText.read("/proc/thread-self/net/netstat") + ProcText.read("/proc/thread-self/net/snmp")
            return (value, PodTCPCounters.parse(text))
        }
    }
}

/// A small procfs text file.
enum ProcText {
    static func read(_ path: String) throws(NetlinkError) -> String {
        do {
            return try Files.text(of: path)
        } catch {
            throw NetlinkError(error)
        }
    }
}
