import CNetfilterUAPI
import Glibc
import Testing
import SystemCalls
@testable import Netfilter
@testable import Netlink
@testable import RandSNATCore

/// DEL's flow cleanup against the real kernel, in a private network namespace (root only): both
/// ways of forgetting a departed pod's flows, the filtered flush this kernel has and the
/// dump-and-delete of kernels before 6.3, remove exactly the flows the pod started. (The
/// integration test `del_forgets_the_pods_flows` checks the flush path end to end; the
/// dump-and-delete path is reached here, through the internal API, with no switch in the binary.)
struct ConntrackKernelTests {
    static let pod = IPAddress("198.18.0.2")!
    static let otherPod = IPAddress("198.18.0.3")!
    static let podV6 = IPAddress("2001:db8::2")!

    /// One UDP entry `source:port → destination:9999`, as `conntrack -I` makes it (ctnetlink
    /// IPCTNL_MSG_CT_NEW with both tuples and a timeout).
    static func insert(_ socket: NetlinkSocket, _ source: IPAddress, _ destination: IPAddress, port: UInt16) throws {
        func tuple(_ message: inout NetlinkRequest, _ name: ConntrackAttribute, from: IPAddress, to: IPAddress, sport: UInt16, dport: UInt16) {
            message.nested(name) { tuple in
                tuple.nested(ConntrackAttribute.Tuple.ip) {
                    $0.add(ConntrackAttribute.IP.source(from.family), from.bytes)
                    $0.add(ConntrackAttribute.IP.destination(from.family), to.bytes)
                }
                tuple.nested(ConntrackAttribute.Tuple.proto) {
                    $0.addU8(ConntrackAttribute.Proto.number, UInt8(IPPROTO_UDP))
                    $0.add(UInt16(CTA_PROTO_SRC_PORT.rawValue), [UInt8(sport >> 8), UInt8(sport & 0xFF)])
                    $0.add(ConntrackAttribute.Proto.destinationPort, [UInt8(dport >> 8), UInt8(dport & 0xFF)])
                }
            }
        }
        var message = NetlinkRequest(type: UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_NEW.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL),
                                     sequence: socket.nextSequence(), family: UInt8(source.family == .ipv4 ? AF_INET : AF_INET6))
        tuple(&message, ConntrackAttribute.originalTuple, from: source, to: destination, sport: port, dport: 9999)
        tuple(&message, ConntrackAttribute.replyTuple, from: destination, to: source, sport: 9999, dport: port)
        message.addBE32(UInt16(CTA_TIMEOUT.rawValue), 120)
        _ = try socket.netfilterExchange(message, operation: "inserting a conntrack entry", object: "from \(source)")
    }

    @Test(.enabled(if: getuid() == 0, "needs root: makes a private network namespace and writes its conntrack table"),
          arguments: [FlowCleanup.flush, .dumpAndDelete])
    func forgetFlowsRemovesThePodsFlowsOnly(cleanup: FlowCleanup) throws {
        let remaining = try NetworkNamespace.run(in: "") { () throws -> (before: Int, pod: Int, others: Int) in
            let socket = try NetlinkSocket.netfilterSocket()
            let conntrack = Conntrack(socket: socket)
            let destination = IPAddress("203.0.113.10")!
            for port in UInt16(40000)..<40020 { try Self.insert(socket, Self.pod, destination, port: port) }
            for port in UInt16(40000)..<40005 { try Self.insert(socket, Self.otherPod, destination, port: port) }
            for port in UInt16(40000)..<40003 { try Self.insert(socket, Self.podV6, IPAddress("2001:db8:1::10")!, port: port) }
            let before = try conntrack.entries(.ipv4, originalSource: Self.pod).count
            try conntrack.forgetFlows(from: Self.pod, cleanup: cleanup)
            let pod = try conntrack.entries(.ipv4, originalSource: Self.pod).count
            let others = try conntrack.entries(.ipv4).count + conntrack.entries(.ipv6).count
            return (before, pod, others)
        }
        #expect(remaining.before == 20, "the test's entries were not all made: \(remaining.before)")
        #expect(remaining.pod == 0, "\(cleanup): \(remaining.pod) of the pod's flows left")
        #expect(remaining.others == 8, "\(cleanup): another pod's or family's flows went too: \(remaining.others) of 8 left")
    }
}

/// Which way DEL forgets flows, decided from the kernel's answer to the filtered flush: a kernel
/// in memory (the transport's fake) refuses it as kernels before 6.3 do, and the pod's entries are
/// then listed and deleted one by one; any other refusal is DEL's error.
struct ConntrackFallbackTests {
    /// Answers each request with `answer`, recording the requests.
    final class Kernel: NetlinkTransport {
        let answer: (NetlinkReply) -> [UInt8]
        var requests: [NetlinkReply] = []
        private var pending: [[UInt8]] = []
        init(answer: @escaping (NetlinkReply) -> [UInt8]) { self.answer = answer }
        func send(_ bytes: [UInt8]) throws(Errno) {
            let request = NetlinkReply.parse(bytes[...])[0]
            requests.append(request)
            pending.append(answer(request))
        }
        func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
            guard !pending.isEmpty else { throw Errno(EAGAIN) }
            let datagram = pending.removeFirst()
            datagram.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(buffer.count))) }
            return datagram.count
        }
        static func message(type: UInt16, flags: UInt16 = 0, sequence: UInt32, body: [UInt8]) -> [UInt8] {
            func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32($0 * 8)) } }
            return le32(UInt32(16 + body.count)) + [UInt8(type & 0xFF), UInt8(type >> 8), UInt8(flags & 0xFF), UInt8(flags >> 8)]
                + le32(sequence) + le32(0) + body
        }
        /// NLMSG_ERROR with `errno` (0: an acknowledgement), the request's header capped.
        static func error(_ errno: Int32, to request: NetlinkReply) -> [UInt8] {
            let body = withUnsafeBytes(of: (-errno).littleEndian) { Array($0) }
                + message(type: request.type, flags: request.flags, sequence: request.sequence, body: [])
            return message(type: NetlinkReply.error, flags: UInt16(NLM_F_CAPPED), sequence: request.sequence, body: body)
        }
        static func done(_ request: NetlinkReply) -> [UInt8] {
            message(type: NetlinkReply.done, flags: UInt16(NLM_F_MULTI), sequence: request.sequence, body: [0, 0, 0, 0])
        }
    }

    static let delete = UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_DELETE.rawValue)
    static let get = UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_GET.rawValue)

    /// The kernel answers the flush with `flushErrno`, a dump with no entry.
    static func run(flushErrno: Int32) -> (kernel: Kernel, error: (any Error)?) {
        let kernel = Kernel { request in
            if request.type == delete { return Kernel.error(flushErrno, to: request) }
            return Kernel.done(request)
        }
        let conntrack = Conntrack(socket: NetlinkSocket(transport: kernel))
        do { try conntrack.forgetFlows(from: IPAddress("198.18.0.2")!) } catch { return (kernel, error) }
        return (kernel, nil)
    }

    @Test(arguments: [EINVAL, EOPNOTSUPP])
    func aKernelWithoutFilteredFlushGetsDumpAndDelete(refusal: Int32) {
        let (kernel, error) = Self.run(flushErrno: refusal)
        #expect(error == nil, "\(String(describing: error))")
        #expect(kernel.requests.map(\.type) == [Self.delete, Self.get], "the flush, then the pod's entries listed")
        #expect(kernel.requests.last.map { $0.flags & UInt16(NLM_F_DUMP) == UInt16(NLM_F_DUMP) } == true)
    }

    @Test func aFlushTheKernelDoesIsAllItTakes() {
        let (kernel, error) = Self.run(flushErrno: 0)
        #expect(error == nil)
        #expect(kernel.requests.map(\.type) == [Self.delete])
    }

    @Test func anotherRefusalIsTheVerbsError() {
        let (kernel, error) = Self.run(flushErrno: EPERM)
        #expect(error is NetfilterError, "\(String(describing: error))")
        #expect(kernel.requests.map(\.type) == [Self.delete], "no listing after a refusal that is not the old kernel's")
    }
}
