import CNetlink
import Glibc

/// A netlink request the kernel refused (or that could not be sent), naming what was asked.
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let object: String
    /// The kernel's errno (positive), 0 when the failure is randsnat's own.
    public let code: Int32
    public let reason: String

    public init(operation: String, object: String, code: Int32, reason: String) {
        self.operation = operation
        self.object = object
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(operation) \(object) failed: \(reason) (errno \(code))" }
}

/// A netlink socket (NETLINK_NETFILTER for ipset and nf_tables, NETLINK_ROUTE for links, addresses
/// and routes). A socket acts on the network namespace it was created in. Every syscall of the
/// netlink side is in this file.
public final class NetlinkSocket {
    private let descriptor: Int32
    private var sequence: UInt32

    /// - Parameter family: the netlink protocol, such as `NETLINK_NETFILTER` or `NETLINK_ROUTE`.
    public init(family: Int32) throws(NetlinkError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), family)
        guard fd >= 0 else {
            throw NetlinkError(operation: "open", object: "netlink socket (protocol \(family))", code: errno, reason: String(cString: strerror(errno)))
        }
        descriptor = fd
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { close(descriptor) }

    public static var netfilter: Int32 { NETLINK_NETFILTER }
    public static var route: Int32 { NETLINK_ROUTE }

    public func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Sends a dump request and hands each reply message's body (after the nlmsghdr) to `body`,
    /// one receive buffer at a time: memory stays one buffer however long the dump is. The bytes are
    /// valid only during the call.
    /// - Throws: the kernel's errno when it answers with an error; a dump cut short by the kernel
    ///   (NLM_F_DUMP_INTR, the table changed under it) is not an error: counts are a sample anyway.
    public func dump(_ request: NetlinkRequest, operation: String, object: String,
                     body: (UnsafeRawBufferPointer) -> Void) throws(NetlinkError) {
        let bytes = request.finished
        let sequenceSent = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
        let sent = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else {
            throw NetlinkError(operation: operation, object: object, code: errno, reason: "send: " + String(cString: strerror(errno)))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let received = recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if received < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation: operation, object: object, code: errno, reason: "recv: " + String(cString: strerror(errno)))
            }
            var offset = 0
            while offset + 16 <= received {
                let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                guard length >= 16, offset + length <= received else { break }
                let type = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
                let sequence = buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
                if sequence == sequenceSent {
                    if type == NetlinkReply.done { return }
                    if type == NetlinkReply.error {
                        let code = length >= 20 ? -buffer.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self) : 0
                        if code == 0 { return }
                        throw NetlinkError(operation: operation, object: object, code: code, reason: String(cString: strerror(code)))
                    }
                    body(UnsafeRawBufferPointer(rebasing: buffer[(offset + 16)..<(offset + length)]))
                }
                offset += (length + 3) & ~3
            }
        }
    }

    /// Sends `request` and collects the reply messages up to the ACK (or NLMSG_DONE for a dump).
    /// - Throws: `.netlink` with the kernel's errno when it answers with an error.
    public func exchange(_ request: NetlinkRequest, operation: String, object: String,
                         describe: (Int32) -> String = { String(cString: strerror($0)) }) throws(NetlinkError) -> [NetlinkReply] {
        let bytes = request.finished
        let sequenceSent = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
        let sent = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else {
            throw NetlinkError(operation: operation, object: object, code: errno, reason: "send: " + String(cString: strerror(errno)))
        }
        var replies: [NetlinkReply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation: operation, object: object, code: errno, reason: "recv: " + String(cString: strerror(errno)))
            }
            for reply in NetlinkReply.parse(buffer[0..<received]) where reply.sequence == sequenceSent {
                if reply.type == NetlinkReply.done { return replies }
                if let code = reply.errorCode {
                    if code == 0 { return replies }
                    throw NetlinkError(operation: operation, object: object, code: code, reason: describe(code))
                }
                replies.append(reply)
            }
        }
    }
}
