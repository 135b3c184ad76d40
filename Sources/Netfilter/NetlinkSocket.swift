import CNetfilter
import Glibc

/// A NETLINK_NETFILTER socket for ipset and nf_tables requests. Every syscall of the netlink side
/// is in this file.
final class NetlinkSocket {
    private let descriptor: Int32
    private var sequence: UInt32

    init() throws(NetfilterError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_NETFILTER)
        guard fd >= 0 else {
            throw .netlink(operation: "open", object: "netlink netfilter socket", errno: errno, reason: String(cString: strerror(errno)))
        }
        descriptor = fd
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { close(descriptor) }

    func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Sends `request` and collects the reply messages up to the ACK (or NLMSG_DONE for a dump).
    /// - Throws: `.netlink` with the kernel's errno when it answers with an error.
    func exchange(_ request: NetlinkRequest, operation: String, object: String,
                  describe: (Int32) -> String = { String(cString: strerror($0)) }) throws(NetfilterError) -> [NetlinkReply] {
        let bytes = request.finished
        let sequenceSent = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
        let sent = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else {
            throw .netlink(operation: operation, object: object, errno: errno, reason: "send: " + String(cString: strerror(errno)))
        }
        var replies: [NetlinkReply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received < 0 {
                if errno == EINTR { continue }
                throw .netlink(operation: operation, object: object, errno: errno, reason: "recv: " + String(cString: strerror(errno)))
            }
            for reply in NetlinkReply.parse(buffer[0..<received]) where reply.sequence == sequenceSent {
                if reply.type == NetlinkReply.done { return replies }
                if let code = reply.errorCode {
                    if code == 0 { return replies }
                    throw .netlink(operation: operation, object: object, errno: code, reason: describe(code))
                }
                replies.append(reply)
            }
        }
    }
}
