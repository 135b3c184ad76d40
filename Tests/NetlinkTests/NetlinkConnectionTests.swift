import CNetlink
import Glibc
import SystemCalls
import Testing
@testable import Netlink

/// A kernel in memory: each request sent is recorded and answered with the datagrams `answer`
/// gives, which the connection then receives one at a time (as mdlayher/netlink's nltest.Dial).
final class FakeKernel: NetlinkTransport {
    let answer: (NetlinkReply) -> [[UInt8]]
    private(set) var requests: [NetlinkReply] = []
    private var pending: [[UInt8]] = []

    init(answer: @escaping (NetlinkReply) -> [[UInt8]]) { self.answer = answer }

    func send(_ bytes: [UInt8]) throws(Errno) {
        let request = NetlinkReply.parse(bytes[...])
        #expect(request.count == 1, "a request is one message")
        requests += request
        pending += answer(request[0])
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        // Nothing queued: a real socket would block for ever; fail the test instead of hanging.
        guard !pending.isEmpty else { throw Errno(EAGAIN) }
        let datagram = pending.removeFirst()
        datagram.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(buffer.count))) }
        return datagram.count
    }

    /// One message's bytes.
    static func message(type: UInt16, flags: UInt16 = 0, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32($0 * 8)) } }
        var bytes = le32(UInt32(16 + body.count)) + [UInt8(type & 0xFF), UInt8(type >> 8), UInt8(flags & 0xFF), UInt8(flags >> 8)]
            + le32(sequence) + le32(0) + body
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    /// NLMSG_ERROR: `errno` 0 is an acknowledgement; `kernelMessage` adds the extended ack.
    static func error(_ errno: Int32, to request: NetlinkReply, kernelMessage: String? = nil) -> [UInt8] {
        var body = withUnsafeBytes(of: (-errno).littleEndian) { Array($0) }
        // The request's header, capped (NETLINK_CAP_ACK), then the TLVs.
        body += message(type: request.type, flags: request.flags, sequence: request.sequence, body: []).prefix(16)
        var flags: UInt16 = UInt16(NLM_F_CAPPED)
        if let kernelMessage {
            flags |= UInt16(NLM_F_ACK_TLVS)
            body += NetlinkRequest.attributes { $0.addString(UInt16(NLMSGERR_ATTR_MSG.rawValue), kernelMessage) }
        }
        return message(type: NetlinkReply.error, flags: flags, sequence: request.sequence, body: body)
    }

    static func done(_ request: NetlinkReply, errno: Int32 = 0) -> [UInt8] {
        message(type: NetlinkReply.done, flags: UInt16(NLM_F_MULTI), sequence: request.sequence,
                body: withUnsafeBytes(of: (-errno).littleEndian) { Array($0) })
    }
}

/// The connection's framing, dump, error and sequence logic against a fake kernel (no root, no socket).
struct NetlinkConnectionTests {
    static func request(_ flags: NetlinkFlags, sequence: UInt32 = 100) -> NetlinkRequest {
        var request = NetlinkRequest(NetfilterMessageType(.ipset, command: 9), flags: flags, sequence: sequence,
                                     header: NetfilterHeader(family: 2))
        request.addString(UInt16(2), "RANDSNAT-X")
        return request
    }

    static func data(_ value: UInt8, multi: Bool, sequence: UInt32) -> [UInt8] {
        FakeKernel.message(type: 0x0609, flags: multi ? UInt16(NLM_F_MULTI) : 0, sequence: sequence,
                           body: [2, 0, 0, 0] + NetlinkRequest.attributes { $0.addU8(UInt16(1), value) })
    }

    @Test func anAcknowledgementEndsTheExchange() throws {
        let kernel = FakeKernel { [FakeKernel.error(0, to: $0)] }
        let socket = NetlinkSocket(transport: kernel)
        let replies = try socket.exchange(Self.request([.request, .ack]), operation: "adding", object: "x")
        #expect(replies.isEmpty)
        #expect(kernel.requests.count == 1)
        #expect(kernel.requests.first?.nfAttributes[type: 2]?.string == "RANDSNAT-X")
    }

    /// A dump across datagrams, with a stale answer to an earlier request mixed in: the stale one is
    /// skipped, the parts come back in order, NLMSG_DONE ends it.
    @Test func aDumpAcrossDatagramsSkipsOtherSequenceNumbers() throws {
        let kernel = FakeKernel { request in
            let sequence = request.sequence
            return [FakeKernel.message(type: NetlinkReply.error, sequence: sequence - 1, body: [0xEF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16))
                        + Self.data(1, multi: true, sequence: sequence) + Self.data(2, multi: true, sequence: sequence),
                    Self.data(99, multi: true, sequence: sequence - 1) + Self.data(3, multi: true, sequence: sequence),
                    FakeKernel.done(request)]
        }
        let socket = NetlinkSocket(transport: kernel)
        let replies = try socket.exchange(Self.request([.request, .ack, .dump]), operation: "listing", object: "x")
        #expect(replies.map { $0.nfAttributes[type: 1]?.u8 } == [1, 2, 3])
        var seen: [UInt8] = []
        try socket.dump(Self.request([.request, .dump], sequence: 200), operation: "listing", object: "x") { body in
            seen.append(body[8])
        }
        #expect(seen == [1, 2, 3])
    }

    @Test func aRefusalNamesTheOperationTheObjectAndTheErrnoByName() throws {
        let kernel = FakeKernel { [FakeKernel.error(EEXIST, to: $0, kernelMessage: "Set type mismatch")] }
        let socket = NetlinkSocket(transport: kernel)
        let error = #expect(throws: NetlinkError.self) {
            try socket.exchange(Self.request([.request, .ack]), operation: "adding 198.18.0.5 to ipset", object: "RANDSNAT-X")
        }
        #expect(error?.errno == .exists)
        #expect(error?.kernelMessage == "Set type mismatch")
        #expect(error?.description == "adding 198.18.0.5 to ipset RANDSNAT-X: File exists (EEXIST); the kernel says: Set type mismatch")
    }

    /// A subsystem's own numbers (ipset's 4096 and up) are said in words by the caller's `describe`.
    @Test func aSubsystemsOwnErrorNumbersAreDescribed() {
        let kernel = FakeKernel { [FakeKernel.error(4097, to: $0)] }
        let socket = NetlinkSocket(transport: kernel)
        let error = #expect(throws: NetlinkError.self) {
            try socket.exchange(Self.request([.request, .ack]), operation: "creating ipset", object: "RANDSNAT-X") {
                $0 == 4097 ? "the kernel lacks this set type" : Errno($0).message
            }
        }
        #expect(error?.code == 4097)
        #expect(error?.description == "creating ipset RANDSNAT-X: the kernel lacks this set type (errno 4097)")
    }

    @Test func aDumpThatFailsInTheKernelThrows() {
        let kernel = FakeKernel { [Self.data(1, multi: true, sequence: $0.sequence), FakeKernel.done($0, errno: EINTR)] }
        let socket = NetlinkSocket(transport: kernel)
        let error = #expect(throws: NetlinkError.self) {
            try socket.exchange(Self.request([.request, .dump]), operation: "listing", object: "x")
        }
        #expect(error?.errno == .interrupted)
    }

    /// Without NLM_F_ACK or a dump, one plain message is the whole answer (nothing else will come).
    @Test func oneMessageAnswersARequestWithoutAck() throws {
        let kernel = FakeKernel { [Self.data(7, multi: false, sequence: $0.sequence)] }
        let socket = NetlinkSocket(transport: kernel)
        let replies = try socket.exchange(Self.request([.request]), operation: "reading", object: "x")
        #expect(replies.map { $0.nfAttributes[type: 1]?.u8 } == [7])
    }

    /// Bytes that are not whole messages, and a datagram larger than the receive buffer, fail with
    /// the operation named; nothing is read past the end.
    static func malformed(_ name: String, _ r: NetlinkReply) -> [[UInt8]] {
        switch name {
        case "a message longer than its datagram": [Array(FakeKernel.error(0, to: r).prefix(24))]
        case "a message shorter than its header": [[8, 0, 0, 0, 2, 0, 0, 0] + [UInt8](repeating: 0, count: 8)]
        case "a datagram ending inside a header": [Self.data(1, multi: true, sequence: r.sequence) + [1, 2, 3]]
        default: [FakeKernel.message(type: 0x0609, sequence: r.sequence, body: [UInt8](repeating: 0, count: 1 << 17))]
        }
    }

    @Test(arguments: ["a message longer than its datagram", "a message shorter than its header",
                      "a datagram ending inside a header", "a datagram larger than the buffer"])
    func malformedRepliesThrow(_ name: String) {
        let socket = NetlinkSocket(transport: FakeKernel { Self.malformed(name, $0) })
        let error = #expect(throws: NetlinkError.self, "\(name)") {
            try socket.exchange(Self.request([.request, .ack, .dump]), operation: "listing ipset", object: "RANDSNAT-X")
        }
        #expect(error?.description.hasPrefix("listing ipset RANDSNAT-X: ") == true, "\(name): \(error?.description ?? "")")
    }

    /// An attribute longer than netlink's 16-bit length is refused before anything is sent.
    @Test func anOversizedAttributeIsNotSent() {
        let kernel = FakeKernel { [FakeKernel.error(0, to: $0)] }
        var request = Self.request([.request, .ack])
        request.add(UInt16(3), [UInt8](repeating: 1, count: 70_000))
        #expect(request.overflow != nil)
        let error = #expect(throws: NetlinkError.self) {
            try NetlinkSocket(transport: kernel).exchange(request, operation: "adding", object: "x")
        }
        #expect(error?.description.contains("16-bit length") == true)
        #expect(kernel.requests.isEmpty)
    }

    /// The real transport: the kernel's loopback link, read through rtnetlink (no root needed).
    @Test func theKernelSocketReadsLoopback() throws {
        let lo = try RouteLink.current().link(named: "lo")
        #expect(lo?.index == 1)
        #expect(lo?.name == "lo")
        #expect(try RouteLink.current().link(named: "no-such-link0") == nil)
    }
}
