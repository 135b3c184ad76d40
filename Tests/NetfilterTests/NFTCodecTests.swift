import Glibc
import Testing
@testable import Netfilter
@testable import Netlink
import RandSNATCore
import SystemCalls

/// A kernel in memory for nf_tables batches: records each datagram's messages and answers every
/// message that asks for an ack, refusing the one at `refuse` (its position in the batch) with `errno`.
final class FakeBatchKernel: NetlinkTransport {
    let refuse: (index: Int, errno: Int32)?
    private(set) var datagrams: [[NetlinkReply]] = []
    private var pending: [[UInt8]] = []

    init(refuse: (index: Int, errno: Int32)? = nil) { self.refuse = refuse }

    func send(_ bytes: [UInt8]) throws(Errno) {
        let messages = NetlinkReply.parse(bytes[...])
        datagrams.append(messages)
        // Between begin and end; the kernel answers in order, an error for the refused one.
        for (index, message) in messages.dropFirst().dropLast().enumerated() where message.flags & NetlinkFlags.ack.rawValue != 0 {
            let code: Int32 = index == refuse?.index ? -refuse!.errno : 0
            var body = withUnsafeBytes(of: code.littleEndian) { Array($0) }
            body += Self.header(message)
            pending.append(Self.header(NetlinkReply(type: 2, flags: 0x100 /* NLM_F_CAPPED */, sequence: message.sequence, body: body)) + body)
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        guard !pending.isEmpty else { throw Errno(EAGAIN) }  // a real socket would block: fail instead
        let datagram = pending.removeFirst()
        datagram.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(buffer.count))) }
        return datagram.count
    }

    /// An nlmsghdr for `message` (its length counting the body).
    static func header(_ message: NetlinkReply) -> [UInt8] {
        func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32($0 * 8)) } }
        return le32(UInt32(16 + message.body.count)) + [UInt8(message.type & 0xFF), UInt8(message.type >> 8),
                                                        UInt8(message.flags & 0xFF), UInt8(message.flags >> 8)] + le32(message.sequence) + le32(0)
    }
}

struct NFTBatchExchangeTests {
    static func batch() -> NFTBatch {
        var batch = NFTBatch()
        batch.addTable("randsnat")
        batch.addElements("randsnat", "RS-P4", [NFTBatch.Element(key: IPAddress("198.18.0.5")!, comment: "pod a")], exclusive: true)
        batch.addElements("randsnat", "RS-S4", NFTBatch.elements([NFTInterval(CIDR("198.18.0.0/16")!, comment: "subnet")]))
        return batch
    }

    /// An error names a few elements whole and many by the first three and a count, not every key.
    @Test func errorsNameAFewElementsAndCountTheRest() {
        let elements = (1...5).map { NFTBatch.Element(key: IPAddress("198.18.0.\($0)")!) }
        #expect(NFTBatch.listed(Array(elements.prefix(1))) == "198.18.0.1")
        #expect(NFTBatch.listed(Array(elements.prefix(3))) == "198.18.0.1, 198.18.0.2, 198.18.0.3")
        #expect(NFTBatch.listed(elements) == "198.18.0.1, 198.18.0.2, 198.18.0.3 and 2 more")
    }

    /// One datagram: begin, the messages (each asking for an ack, numbered apart), end; every ack read.
    @Test func aBatchIsOneDatagramBetweenBeginAndEnd() throws {
        let kernel = FakeBatchKernel()
        try Self.batch().commit(on: NetlinkSocket(transport: kernel, firstSequence: 1000))
        try #require(kernel.datagrams.count == 1)
        let messages = kernel.datagrams[0]
        #expect(messages.map(\.type) == [0x10, NFTCommand.newTable.rawValue, NFTCommand.newElements.rawValue,
                                         NFTCommand.newElements.rawValue, 0x11])
        #expect(messages.first?.body == [0, 0, 0, 10], "begin names the nf_tables subsystem (res_id 10, big-endian)")
        #expect(Set(messages.map(\.sequence)).count == 5)
        #expect(messages.dropFirst().dropLast().allSatisfy { $0.flags & NetlinkFlags.ack.rawValue != 0 && $0.body.first == NFTFamily.inet })
        #expect(try messages[1].netfilterAttributes()[NFTTableAttribute.name]?.string == "randsnat")
    }

    /// The kernel refuses the Nth message: the error names that message's object and the errno.
    @Test(arguments: [(0, EEXIST, "creating table inet randsnat"), (1, EEXIST, "adding 198.18.0.5 to set RS-P4"),
                      (2, ENOENT, "adding 198.18.0.0, 198.19.0.0 to set RS-S4")])
    func aRefusalNamesTheRefusedMessage(index: Int, errno: Int32, operation: String) throws {
        let kernel = FakeBatchKernel(refuse: (index, errno))
        #expect {
            try Self.batch().commit(on: NetlinkSocket(transport: kernel))
        } throws: { error in
            guard case .netlink(let failed, let object, let code, _) = error as? NetfilterError else { return false }
            return failed == operation && object == "(table inet randsnat)" && code == errno
        }
    }

    /// A message that cannot be built (an attribute past netlink's 16-bit length) is not sent.
    @Test func anUnbuildableMessageIsNotSent() {
        var batch = NFTBatch()
        batch.addElements("randsnat", "RS-P4", (0..<3000).map { NFTBatch.Element(key: IPAddress("198.18.\($0 / 250).\($0 % 250)")!, comment: "pod") })
        let kernel = FakeBatchKernel()
        #expect(throws: NetfilterError.self) { try batch.commit(on: NetlinkSocket(transport: kernel)) }
        #expect(kernel.datagrams.isEmpty)
    }
}

/// The decoder against what a real kernel lists: a fresh network namespace (root only) gets a
/// table written with `NFTBatch`, whose dump is decoded back to what was written; the captured dump,
/// cut or garbled, throws.
struct NFTDecoderTests {

    static func plans() -> [NFTFamilyPlan] {
        var snat = PluginConfig()
        snat.toSource = [AddressRange("203.0.113.2-203.0.113.4")!]
        snat.portRange = PortRange("40000-40999")
        snat.nonMasqueradeCIDRs = [CIDR("10.0.0.0/8")!]
        var masquerade = PluginConfig()
        masquerade.portRange = PortRange("40000-40999")
        return [NFTFamilyPlan(Planner.family(.ipv4, network: "net", config: snat)),
                NFTFamilyPlan(Planner.family(.ipv6, network: "six", config: masquerade))]
    }

    /// What the kernel answers, in a namespace of this test's own, after writing `plans`.
    static func captured() throws -> (rules: [String: [NFTablesBackend.InstalledRule]], ruleReplies: [NetlinkReply],
                                      elements: [String: [(key: IPAddress, isEnd: Bool, comment: String)]], sets: [String], chains: [String]) {
        let namespace = NetworkNamespaceFixture.make()
        defer { close(namespace) }
        return try NetworkNamespace.run(in: "/proc/self/fd/\(namespace)") {
            let socket = try NetlinkSocket(.netfilter)
            let table = NFTFamilyPlan.table
            var batch = NFTBatch()
            batch.addTable(table)
            batch.addChain(table, NFTFamilyPlan.baseChain, hook: .snat)
            for plan in plans() {
                batch.addSet(table, plan.names.memberSet, family: plan.family, interval: false, comment: "pods")
                batch.addSet(table, plan.names.subnetSet, family: plan.family, interval: true, comment: "subnets")
                batch.addSet(table, plan.bypassSet, family: plan.family, interval: true, comment: "bypass")
                batch.addElements(table, plan.bypassSet, NFTBatch.elements(plan.bypass))
                batch.addChain(table, plan.chain)
                for rule in plan.rules { batch.addRule(table, plan.chain, rule) }
                batch.addRule(table, NFTFamilyPlan.baseChain, plan.jump)
            }
            let pod = plans()[0]
            batch.addElements(table, pod.names.memberSet, [NFTBatch.Element(key: IPAddress("198.18.0.5")!, comment: "pod a")])
            try batch.commit(on: socket)
            let reader = try NFTablesBackend(reader: socket)
            var rules: [String: [NFTablesBackend.InstalledRule]] = [:]
            var elements: [String: [(key: IPAddress, isEnd: Bool, comment: String)]] = [:]
            for plan in plans() {
                rules[plan.chain] = try reader.rules(of: plan.chain)
                elements[plan.bypassSet] = try reader.elements(of: plan.bypassSet, family: plan.family)
            }
            rules[NFTFamilyPlan.baseChain] = try reader.rules(of: NFTFamilyPlan.baseChain)
            elements[pod.names.memberSet] = try reader.elements(of: pod.names.memberSet, family: .ipv4)
            var request = NetlinkRequest(NFTCommand.getRule, flags: [.request, .ack, .dump], sequence: socket.nextSequence(),
                                         header: NetfilterHeader(family: NFTFamily.inet))
            request.addString(NFTRuleAttribute.table, table)
            let replies = try socket.exchange(request, operation: "dumping", object: "rules")
            return (rules, replies, elements, try reader.setNames(), try reader.chainNames())
        }
    }

    @Test(.enabled(if: getuid() == 0, "making a network namespace needs root"))
    func whatIsWrittenIsReadBack() throws {
        let dump = try Self.captured()
        for plan in Self.plans() {
            let rules = try #require(dump.rules[plan.chain])
            #expect(rules.count == plan.rules.count)
            for (installed, written) in zip(rules, plan.rules) {
                #expect(NFTDecoder.same(installed, written), "\(written.text)")
                #expect(installed.expressions.allSatisfy { $0 != nil }, "every expression randsnat writes is read back")
            }
            let bypass = NFTInterval.pair(dump.elements[plan.bypassSet] ?? []).map { "\($0.first)-\($0.last)" }
            #expect(bypass == plan.bypass.map { "\($0.first)-\($0.last)" })
            #expect(Set(dump.sets).isSuperset(of: [plan.names.memberSet, plan.names.subnetSet, plan.bypassSet]))
            #expect(dump.chains.contains(plan.chain))
        }
        let jumps = try #require(dump.rules[NFTFamilyPlan.baseChain])
        #expect(zip(jumps, Self.plans()).allSatisfy { NFTDecoder.same($0, $1.jump) } && jumps.count == 2)
        #expect(dump.elements[Self.plans()[0].names.memberSet]?.map { "\($0.key) \($0.comment)" } == ["198.18.0.5 pod a"])
    }

    /// Every cut of a real rule message inside an attribute throws; a cut between attributes reads
    /// fewer attributes (netlink has no total count), never garbage.
    @Test(.enabled(if: getuid() == 0, "making a network namespace needs root"))
    func aCutOrGarbledRuleThrows() throws {
        let replies = try Self.captured().ruleReplies
        try #require(!replies.isEmpty)
        for reply in replies {
            #expect(throws: Never.self) { try NFTDecoder.rule(reply) }
            // Where each top-level attribute ends, without and with its padding.
            // (AttributeReader takes fewer than 4 zero bytes after the last attribute for padding, so
            // a cut leaving only an attribute length's zero low byte reads as the end too.)
            var ends: Set<Int> = [4]
            var offset = 4
            while offset + 4 <= reply.body.count {
                let length = Int(reply.body[offset]) | Int(reply.body[offset + 1]) << 8
                for cut in (offset + 1)..<(offset + 4) where reply.body[offset..<cut].allSatisfy({ $0 == 0 }) { ends.insert(cut) }
                ends.formUnion((offset + length)...(Netlink.aligned(offset + length)))
                offset = Netlink.aligned(offset + length)
            }
            var thrown = 0
            for cut in 5..<reply.body.count where !ends.contains(cut) {
                let short = NetlinkReply(type: reply.type, flags: reply.flags, sequence: reply.sequence, body: Array(reply.body.prefix(cut)))
                do {
                    _ = try NFTDecoder.rule(short)
                    Issue.record("a rule cut at \(cut) of \(reply.body.count) bytes was read")
                } catch {
                    thrown += 1
                }
            }
            #expect(thrown > 0)
        }
    }

    @Test(arguments: [
        [0, 0, 0, 0, 0xFF, 0xFF, 1, 0],                  // an attribute longer than the message
        [1, 0, 0, 0, 2, 0, 1, 0],                        // an attribute shorter than its header
        [1, 0],                                          // shorter than nfgenmsg
    ] as [[UInt8]])
    func garbageThrows(body: [UInt8]) {
        #expect(throws: NetfilterError.self) { try NFTDecoder.rule(NetlinkReply(type: 0, flags: 0, sequence: 1, body: body)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.elements(NetlinkReply(type: 0, flags: 0, sequence: 1, body: body)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.elementCount(NetlinkReply(type: 0, flags: 0, sequence: 1, body: body)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.chain(NetlinkReply(type: 0, flags: 0, sequence: 1, body: body)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.set(NetlinkReply(type: 0, flags: 0, sequence: 1, body: body)) }
    }

    /// A list (EXPRESSIONS, ELEMENTS) that holds a cut attribute throws, though the list is whole.
    @Test func aCutAttributeInsideAListThrows() {
        let expressions = NFTRuleAttribute.expressions.type, elements = NFTElementAttribute.listElements.type
        let rule: [UInt8] = [1, 0, 0, 0, 8, 0, UInt8(expressions), 0x80, 7, 0, 1, 0]
        let list: [UInt8] = [1, 0, 0, 0, 8, 0, UInt8(elements), 0x80, 7, 0, 1, 0]
        #expect(throws: NetfilterError.self) { try NFTDecoder.rule(NetlinkReply(type: 0, flags: 0, sequence: 1, body: rule)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.elements(NetlinkReply(type: 0, flags: 0, sequence: 1, body: list)) }
        #expect(throws: NetfilterError.self) { try NFTDecoder.elementCount(NetlinkReply(type: 0, flags: 0, sequence: 1, body: list)) }
    }

    /// The count DEL and the agent use (no element decoded) agrees with the decoded listing, over a
    /// dump of several receive buffers, and says nil for a set that does not exist.
    @Test(.enabled(if: getuid() == 0, "making a network namespace needs root"))
    func theElementCountAgreesWithTheListing() throws {
        let namespace = NetworkNamespaceFixture.make()
        defer { close(namespace) }
        try NetworkNamespace.run(in: "/proc/self/fd/\(namespace)") {
            let socket = try NetlinkSocket(.netfilter)
            let table = NFTFamilyPlan.table, set = "count-me"
            var batch = NFTBatch()
            batch.addTable(table)
            batch.addSet(table, set, family: .ipv4, interval: false, comment: "pods")
            let count = 3_000  // ~40 elements to a kilobyte: several 32 KiB dump datagrams
            for first in stride(from: 0, to: count, by: 500) {  // a message holds 64 KiB at most
                batch.addElements(table, set, (first..<(first + 500)).map {
                    NFTBatch.Element(key: IPAddress("198.18.\($0 / 250).\($0 % 250 + 1)")!, comment: "pod \($0) of the count")
                })
            }
            try batch.commit(on: socket)
            let reader = try NFTablesBackend(reader: socket)
            #expect(try reader.elementCount(of: set) == count)
            #expect(try reader.elements(of: set, family: .ipv4)?.count == count)
            #expect(try reader.elementCount(of: "no-such-set") == nil)
        }
    }
}

/// A new network namespace, made by a thread that leaves it at once; the descriptor keeps it.
enum NetworkNamespaceFixture {
    typealias Unshare = @convention(c) (Int32) -> Int32

    static func make() -> Int32 {
        final class Box { var fd: Int32 = -1 }
        let box = Box()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            let unshare = unsafeBitCast(dlsym(nil, "unshare"), to: Unshare.self)
            if unshare(0x4000_0000 /* CLONE_NEWNET */) == 0 { box.fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
            return nil
        }, Unmanaged.passRetained(box).toOpaque())
        pthread_join(thread, nil)
        return box.fd
    }
}
