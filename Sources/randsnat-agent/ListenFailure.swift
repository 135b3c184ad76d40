internal import Glibc
import NIOCore
import SystemCalls

/// Why the metrics endpoint could not listen, as a sentence ("the address is in use") instead of
/// NIO's `bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)`.
enum ListenFailure {
    /// ADDR:PORT as the operator writes it (an IPv6 address in brackets).
    static func endpoint(_ host: String, _ port: Int) -> String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }

    static func explain(_ error: any Error) -> String {
        guard let io = error as? IOError else { return "\(error)" }
        return reason(errno: io.errnoCode)
    }

    static func reason(errno code: Int32) -> String {
        switch code {
        case EADDRINUSE: "the address is in use (another process listens on that port: a second agent, or node_exporter?)"
        case EADDRNOTAVAIL: "the address is not one of this node's (the DaemonSet passes status.hostIP)"
        case EACCES: "permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)"
        default: Errno(code).message.lowercased() + " (\(Errno(code).name))"
        }
    }
}
