internal import CNetlink
internal import Glibc
import SystemCalls

/// A netlink protocol (the third argument of `socket(AF_NETLINK, ...)`).
public struct NetlinkProtocol: Hashable, Sendable {
    let rawValue: Int32

    /// Links, addresses, routes. The corresponding C constant is `NETLINK_ROUTE`.
    public static let route = NetlinkProtocol(rawValue: NETLINK_ROUTE)
    /// ipset, ctnetlink, nf_tables. `NETLINK_NETFILTER`.
    public static let netfilter = NetlinkProtocol(rawValue: NETLINK_NETFILTER)
}

/// What carries netlink datagrams: the kernel's socket, or a fake kernel in unit tests.
package protocol NetlinkTransport: AnyObject {
    /// Sends one request (one datagram).
    func send(_ bytes: [UInt8]) throws(Errno)
    /// Receives one datagram into `buffer`; returns its whole length, which is more than
    /// `buffer.count` when it did not fit (and was cut).
    /// - Throws: `Errno.wouldBlock` (EAGAIN) when nothing came within the transport's answer timeout
    ///   (a kernel socket's SO_RCVTIMEO; a fake kernel with nothing left to say).
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
}

/// An AF_NETLINK socket: every system call of the netlink side is here. A socket acts on the
/// network namespace it was created in.
final class KernelSocket: NetlinkTransport {
    let descriptor: FileDescriptor

    /// - Parameter answerTimeout: how long one `receive` waits for a datagram (SO_RCVTIMEO, set here
    ///   once: no system call per receive); nil waits as long as it takes.
    init(_ netlinkProtocol: NetlinkProtocol, nonBlocking: Bool = false, answerTimeout: Duration? = nil) throws(SystemCallError) {
        let type = Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(AF_NETLINK, type, netlinkProtocol.rawValue)
        guard fd >= 0 else { throw SystemCallError("opening", "a netlink socket (protocol \(netlinkProtocol.rawValue))") }
        if let answerTimeout {
            let (seconds, attoseconds) = answerTimeout.components
            var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                let error = SystemCallError("setting", "a \(answerTimeout) receive timeout on a netlink socket")
                Glibc.close(fd)
                throw error
            }
        }
        descriptor = FileDescriptor(rawValue: fd)
        // Errors with the kernel's explanation (extended ack), without the request echoed back.
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { descriptor.close() }

    /// Joins a multicast group (such as NFNLGRP_NFTABLES); the socket is bound first, to a port id
    /// the kernel picks, since only a bound socket can join.
    func join(group: Int32) throws(SystemCallError) {
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor.rawValue, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0 else { throw SystemCallError("binding", "a netlink socket") }
        var group = group
        guard setsockopt(descriptor.rawValue, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemCallError("joining", "netlink multicast group \(group)")
        }
    }

    func send(_ bytes: [UInt8]) throws(Errno) {
        let sent = bytes.withUnsafeBytes { raw in retryingOnInterrupt { Glibc.send(descriptor.rawValue, raw.baseAddress, raw.count, 0) } }
        guard sent >= 0 else { throw Errno.current }
        guard sent == bytes.count else { throw Errno(EMSGSIZE) }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        // MSG_TRUNC: the datagram's whole length comes back even when the buffer was too small.
        let count = retryingOnInterrupt { recv(descriptor.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_TRUNC)) }
        guard count >= 0 else { throw Errno.current }
        return count
    }
}

/// One netlink connection for any subsystem: sends a request and reads its replies (single
/// answers, acknowledgements, multi-part dumps ended by NLMSG_DONE, errors with the kernel's
/// extended ack), checking each message's bounds and sequence number. Replies to other sequence
/// numbers (a late answer to an earlier request) are skipped.
public final class NetlinkSocket {
    private let transport: any NetlinkTransport
    private var sequence: UInt32
    /// How long a request waits for each datagram of its answer (see `answerTimeout`).
    let answerTimeout: Duration
    /// One receive buffer per socket, as large as the biggest datagram a dump sends (the kernel
    /// sizes dump datagrams at 32 KiB at most).
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 8)

    /// How long a request waits for each datagram of its answer before it fails with ETIMEDOUT.
    /// The kernel answers a netlink request while it is being sent (a dump, as it is read), so a
    /// silence this long means a stuck kernel or a lost answer, never a slow one; without a limit
    /// the CNI runtime's call would hang. Only request sockets have it: the agent's notification
    /// socket (`Wakeups`) waits for events as long as they take.
    public static let answerTimeout: Duration = .seconds(10)

    /// A socket of `netlinkProtocol` on this thread's network namespace.
    public convenience init(_ netlinkProtocol: NetlinkProtocol) throws(NetlinkError) {
        try self.init(netlinkProtocol, answerTimeout: Self.answerTimeout)
    }

    /// A socket whose requests wait `answerTimeout` for each datagram of an answer (SO_RCVTIMEO).
    package convenience init(_ netlinkProtocol: NetlinkProtocol, answerTimeout: Duration) throws(NetlinkError) {
        do {
            self.init(transport: try KernelSocket(netlinkProtocol, answerTimeout: answerTimeout), answerTimeout: answerTimeout)
        } catch {
            throw NetlinkError(error)
        }
    }

    /// A socket of `family` (`NetlinkSocket.netfilter`, `.route`): the first version's spelling,
    /// kept for callers not yet on `init(_:)`; typed, so no C protocol number crosses the API.
    public convenience init(family: NetlinkProtocol) throws(NetlinkError) {
        try self.init(family)
    }

    public static var netfilter: NetlinkProtocol { .netfilter }
    public static var route: NetlinkProtocol { .route }

    /// A connection over `transport` (a fake kernel in unit tests); `answerTimeout` is what the
    /// transport's EAGAIN stands for, in the errors' words.
    package init(transport: any NetlinkTransport, firstSequence: UInt32 = UInt32(truncatingIfNeeded: time(nil)),
                 answerTimeout: Duration = NetlinkSocket.answerTimeout) {
        self.transport = transport
        sequence = firstSequence
        self.answerTimeout = answerTimeout
    }

    deinit { buffer.deallocate() }

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
        try run(request, operation: operation, object: object, describe: { Errno($0).message }) { frame in body(frame.body) }
    }

    /// Sends `request` and collects the reply messages up to the ACK (or NLMSG_DONE for a dump).
    /// - Parameter describe: the words for an errno (a subsystem's own numbers, such as ipset's).
    public func exchange(_ request: NetlinkRequest, operation: String, object: String,
                         describe: (Int32) -> String = { Errno($0).message }) throws(NetlinkError) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        try run(request, operation: operation, object: object, describe: describe) { frame in
            replies.append(NetlinkReply(type: frame.type, flags: frame.flags, sequence: frame.sequence, body: Array(frame.body)))
        }
        return replies
    }

    /// The one exchange loop: send, then read until the request's answer is complete.
    private func run(_ request: NetlinkRequest, operation: String, object: String, describe: (Int32) -> String,
                     each: (NetlinkFrame) -> Void) throws(NetlinkError) {
        func failure(_ errno: Errno?, _ reason: String, kernelMessage: String? = nil) -> NetlinkError {
            NetlinkError(operation: operation, object: object, errno: errno, reason: reason, kernelMessage: kernelMessage)
        }
        if let overflow = request.overflow { throw failure(nil, "the request cannot be built: \(overflow)") }
        let expected = request.sequence
        let flags = request.flags
        var answered = 0
        do {
            try transport.send(request.finished)
        } catch {
            throw failure(error, "sending the request: \(error.message)")
        }
        while true {
            let count: Int
            do {
                count = try transport.receive(into: buffer)
            } catch where error == .wouldBlock {
                throw failure(Errno(ETIMEDOUT), silence("request \(expected)" + (answered > 0 ? " after \(answered) reply messages" : "")))
            } catch {
                throw failure(error, "reading the reply: \(error.message)")
            }
            guard count <= buffer.count else {
                throw failure(Errno(EMSGSIZE), "a reply of \(count) bytes did not fit the \(buffer.count)-byte receive buffer")
            }
            var frames = NetlinkFrames(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            while true {
                let next: NetlinkFrame?
                do { next = try frames.next() } catch { throw failure(nil, error.reason) }
                guard let frame = next else { break }
                guard frame.sequence == expected else { continue }
                switch frame.type {
                case NetlinkReply.noop:
                    continue
                case NetlinkReply.error, NetlinkReply.done:
                    // Both start with an int: the negative errno, 0 for success (NLMSG_DONE of old
                    // kernels may be shorter: success).
                    let code = frame.body.count >= 4 ? -frame.body.loadUnaligned(as: Int32.self) : 0
                    if code <= 0 { return }
                    throw failure(Errno(code), describe(code), kernelMessage: Self.extendedAck(frame))
                case NetlinkReply.overrun:
                    throw failure(Errno(ENOBUFS), "the kernel dropped part of the reply (NLMSG_OVERRUN)")
                default:
                    answered += 1
                    each(frame)
                    // Without an ack or a dump, one plain message is the whole answer.
                    if !flags.contains(.ack), frame.flags & NetlinkReply.multiFlag == 0 { return }
                }
            }
        }
    }

    /// Sends `messages` as one nfnetlink transaction of `subsystem` (NFNL_MSG_BATCH_BEGIN, the
    /// messages, NFNL_MSG_BATCH_END, in one datagram: the kernel applies all of them or none) and
    /// reads one answer per message; each message is numbered here and must ask for an ack. The
    /// first refusal throws, named by `describe(index)` of the message the kernel refused.
    public func transaction(_ subsystem: NetfilterSubsystem, _ messages: [NetlinkRequest],
                            describe: (Int) -> (operation: String, object: String)) throws(NetlinkError) {
        guard !messages.isEmpty else { return }
        func failure(_ index: Int?, _ errno: Errno?, _ reason: String, kernelMessage: String? = nil) -> NetlinkError {
            let (operation, object) = index.map(describe) ?? ("committing", "an nf_tables batch of \(messages.count) messages")
            return NetlinkError(operation: operation, object: object, errno: errno, reason: reason, kernelMessage: kernelMessage)
        }
        let batchHeader = NetfilterHeader(family: 0, resourceID: subsystem.number)
        var datagram = NetlinkRequest(type: Netlink.batchBegin, flags: NetlinkFlags.request.rawValue, sequence: nextSequence(),
                                      header: batchHeader.bytes).finished
        let first = sequence &+ 1
        for (index, message) in messages.enumerated() {
            if let overflow = message.overflow { throw failure(index, nil, "the request cannot be built: \(overflow)") }
            guard message.flags.contains(.ack) else { throw failure(index, nil, "the message asks for no acknowledgement") }
            var numbered = message.finished
            let number = nextSequence()
            for byte in 0..<4 { numbered[8 + byte] = UInt8(truncatingIfNeeded: number >> UInt32(byte * 8)) }
            datagram += numbered
        }
        datagram += NetlinkRequest(type: Netlink.batchEnd, flags: NetlinkFlags.request.rawValue, sequence: nextSequence(),
                                   header: batchHeader.bytes).finished
        do {
            try transport.send(datagram)
        } catch {
            throw failure(nil, error, "sending the batch: \(error.message)")
        }
        var answered = Set<Int>()
        while answered.count < messages.count {
            let count: Int
            do {
                count = try transport.receive(into: buffer)
            } catch where error == .wouldBlock {
                let unanswered = messages.indices.filter { !answered.contains($0) }
                let (operation, object) = describe(unanswered[0])
                let which = unanswered.count == 1 ? "message \(unanswered[0] + 1)" : "\(unanswered.count) messages"
                throw failure(nil, Errno(ETIMEDOUT), silence("\(which) of \(messages.count) (the first unanswered: \(operation) \(object))",
                                                             "whether the kernel applied the batch is unknown"))
            } catch {
                throw failure(nil, error, "reading the answers: \(error.message)")
            }
            guard count <= buffer.count else {
                throw failure(nil, Errno(EMSGSIZE), "an answer of \(count) bytes did not fit the \(buffer.count)-byte receive buffer")
            }
            var frames = NetlinkFrames(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            while true {
                let next: NetlinkFrame?
                do { next = try frames.next() } catch { throw failure(nil, nil, error.reason) }
                guard let frame = next else { break }
                let offset = Int(frame.sequence &- first)
                // The batch's begin and end, or an earlier request's late answer.
                guard frame.type == NetlinkReply.error, (0..<messages.count).contains(offset) || frame.sequence == first &- 1 else { continue }
                guard frame.body.count >= 4 else { throw failure(nil, nil, "an acknowledgement of \(frame.body.count) bytes") }
                let code = -frame.body.loadUnaligned(as: Int32.self)
                // An error on the begin message (a subsystem the kernel does not have) fails it all.
                let index: Int? = frame.sequence == first &- 1 ? nil : offset
                if code > 0 { throw failure(index, Errno(code), Errno(code).message, kernelMessage: Self.extendedAck(frame)) }
                if let index { answered.insert(index) }
            }
        }
    }

    /// The reason of an answer that did not come: what was waited for, and what to do.
    private func silence(_ waitedFor: String, _ note: String? = nil) -> String {
        "the kernel sent no answer to \(waitedFor) within \(answerTimeout)" + (note.map { "; \($0)" } ?? "")
            + "; retry, and if it happens again look in the kernel log (dmesg) for hung tasks or netlink errors"
    }

    /// The attribute names of an extended acknowledgement's TLVs (enum nlmsgerr_attrs), cast once.
    struct ExtendedAckAttribute: NetlinkAttributeName {
        let type: UInt16
        static let message = Self(type: cValue(NLMSGERR_ATTR_MSG))
    }

    /// The kernel's message in an NLMSG_ERROR or NLMSG_DONE with NLM_F_ACK_TLVS (NLMSGERR_ATTR_MSG).
    static func extendedAck(_ frame: NetlinkFrame) -> String? {
        guard frame.flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return nil }
        var offset = 4
        if frame.type == NetlinkReply.error {
            // The request's nlmsghdr comes back, and its payload too unless capped.
            guard frame.body.count >= 4 + Netlink.messageHeaderSize else { return nil }
            let echoed = Int(frame.body.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            offset += frame.flags & UInt16(NLM_F_CAPPED) != 0 ? Netlink.messageHeaderSize : Netlink.aligned(echoed)
        }
        guard offset < frame.body.count else { return nil }
        let tlvs = NetlinkAttribute.parse(Array(frame.body[offset...])[...])
        return tlvs[ExtendedAckAttribute.message]?.string
    }
}
