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

/// A kernel that answers an nfnetlink batch in part: it acks the first `acks` messages between the
/// batch's begin and end and then says nothing more (a lost or stuck answer).
final class PartlyAnsweringKernel: NetlinkTransport {
    let acks: Int
    private var pending: [[UInt8]] = []

    init(acks: Int) { self.acks = acks }

    func send(_ bytes: [UInt8]) throws(Errno) {
        for message in NetlinkReply.parse(bytes[...]).dropFirst().dropLast().prefix(acks) {
            pending.append(FakeKernel.error(0, to: message))
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        // Nothing more: as a kernel socket's SO_RCVTIMEO running out.
        guard !pending.isEmpty else { throw Errno(EAGAIN) }
        let datagram = pending.removeFirst()
        datagram.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(buffer.count))) }
        return datagram.count
    }
}

/// A kernel that does not answer: the wait is bounded and its error says what went unanswered
/// (ETIMEDOUT), never the socket's EAGAIN as a read failure.
struct NetlinkSilenceTests {
    @Test func aSilentKernelFailsTheRequestWithATimeout() {
        let socket = NetlinkSocket(transport: FakeKernel { _ in [] })
        let error = #expect(throws: NetlinkError.self) {
            try socket.exchange(NetlinkConnectionTests.request([.request, .ack], sequence: 100), operation: "adding", object: "x")
        }
        #expect(error?.errno == Errno(ETIMEDOUT))
        #expect(error?.description.hasPrefix("adding x: the kernel sent no answer to request 100 within 10.0 seconds; retry") == true,
                "\(error?.description ?? "")")
        #expect(error?.description.contains("dmesg") == true)
    }

    /// A dump whose first part came and whose end never does.
    @Test func aDumpThatStopsMidwayFailsWithATimeout() {
        let socket = NetlinkSocket(transport: FakeKernel { [NetlinkConnectionTests.data(1, multi: true, sequence: $0.sequence)] })
        let error = #expect(throws: NetlinkError.self) {
            try socket.exchange(NetlinkConnectionTests.request([.request, .dump], sequence: 7), operation: "listing", object: "x")
        }
        #expect(error?.errno == Errno(ETIMEDOUT))
        #expect(error?.reason.hasPrefix("the kernel sent no answer to request 7 after 1 reply messages within 10.0 seconds") == true,
                "\(error?.reason ?? "")")
    }

    /// A batch of three whose last two acks never come: the error names them and the first by `describe`.
    @Test(arguments: [0, 2])
    func aBatchWithoutAllItsAcksFailsWithATimeout(acks: Int) {
        let socket = NetlinkSocket(transport: PartlyAnsweringKernel(acks: acks), answerTimeout: .seconds(3))
        let messages = (0..<3).map { _ in NetlinkConnectionTests.request([.request, .ack]) }
        let error = #expect(throws: NetlinkError.self) {
            try socket.transaction(.nftables, messages) { ("adding", "element \($0 + 1)") }
        }
        #expect(error?.errno == Errno(ETIMEDOUT))
        let which = acks == 2 ? "message 3 of 3 (the first unanswered: adding element 3)" : "3 messages of 3 (the first unanswered: adding element 1)"
        #expect(error?.description == "committing an nf_tables batch of 3 messages: the kernel sent no answer to \(which) within 3.0 seconds; "
                + "whether the kernel applied the batch is unknown; retry, and if it happens again look in the kernel log (dmesg) "
                + "for hung tasks or netlink errors (ETIMEDOUT)")
    }

    /// The real socket: a message without NLM_F_REQUEST or NLM_F_ACK gets no answer from rtnetlink,
    /// so only SO_RCVTIMEO ends the wait. The test cannot hang: the request runs on a thread, and the
    /// test gives up on it after 10 s.
    @Test func theKernelSocketStopsWaitingAfterItsTimeout() throws {
        final class Outcome { var error: NetlinkError?; var seconds = 0.0 }
        let outcome = Outcome()
        var done: [Int32] = [-1, -1]
        try #require(pipe(&done) == 0)
        let socket = try NetlinkSocket(.route, answerTimeout: .milliseconds(300))
        let writeEnd = done[1]
        _ = try SystemThread.start {
            let start = ContinuousClock.now
            do {
                _ = try socket.exchange(NetlinkRequest(type: 18 /* RTM_GETLINK */, flags: 0, sequence: 5, header: [UInt8](repeating: 0, count: 16)),
                                        operation: "asking", object: "rtnetlink")
            } catch let error as NetlinkError {
                outcome.error = error
            } catch {
                Issue.record("not a NetlinkError: \(error)")
            }
            let elapsed = ContinuousClock.now - start
            outcome.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            var byte: UInt8 = 1
            _ = write(writeEnd, &byte, 1)
        }
        var ready = pollfd(fd: done[0], events: Int16(POLLIN), revents: 0)
        // Given up on, the thread keeps its pipe (it may still write to it).
        try #require(poll(&ready, 1, 10_000) == 1, "the request still waits after 10 s: the socket has no answer timeout")
        close(done[0])
        close(done[1])
        #expect(outcome.error?.errno == Errno(ETIMEDOUT), "\(String(describing: outcome.error))")
        #expect(outcome.error?.reason.contains("within 0.3 seconds") == true, "\(String(describing: outcome.error))")
        #expect(outcome.seconds >= 0.25 && outcome.seconds < 5, "waited \(outcome.seconds) s")
    }
}
