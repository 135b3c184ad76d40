import SystemCalls
import RandSNATCore

/// A pod's per-namespace sysctls, read and written from a thread inside the pod's network namespace:
/// /proc/sys/net shows the network namespace of the thread that opens the file (the kernel looks the
/// entries up in the opener's namespace), not the process's. (/proc/net, by contrast, follows
/// /proc/self, the thread group's leader: a thread reads /proc/thread-self/net.)
public struct NamespaceSysctls: PodSysctls {
    public init() {}

    public func tcpTimestamps(netns: String) throws -> Int {
        try NetworkNamespace.run(in: netns) { try Sysctl.readInt(TCPTimestamps.procPath) }
    }

    public func setTCPTimestamps(_ value: Int, netns: String) throws {
        try NetworkNamespace.run(in: netns) { try Sysctl.write(TCPTimestamps.procPath, "\(value)") }
    }
}

extension Sysctl {
    /// Reads an integer under /proc/sys (of the calling thread's network namespace).
    static func readInt(_ key: String) throws(NetlinkError) -> Int {
        let path = "/proc/sys/" + key
        let contents: String
        do { contents = try Files.text(of: path) } catch { throw NetlinkError(error) }
        let text = contents.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" }).first
        guard let text, let value = Int(text) else {
            throw NetlinkError(operation: "reading", object: path, errno: nil, reason: "not an integer")
        }
        return value
    }
}
