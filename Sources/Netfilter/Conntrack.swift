import Netlink
import RandSNATCore
import SystemCalls

/// Conntrack entries through ctnetlink, in process (no exec of `conntrack`).
/// How DEL deletes a departed pod's conntrack flows.
public enum FlowCleanup: Sendable {
    /// One filtered flush where the kernel has it, else `dumpAndDelete`.
    case flush
    /// Always list the pod's entries and delete them one by one: what a kernel without filtered
    /// flushes gets (Tests/NetfilterTests' ConntrackKernelTests run it against the kernel).
    case dumpAndDelete
}

struct Conntrack {
    /// One entry, with what randsnat reads of it.
    struct Entry: Equatable {
        let family: Family
        let proto: UInt8
        let originalSource: IPAddress
        let originalDestination: IPAddress
        let originalDestinationPort: UInt16?
        /// The reply's destination: after SNAT, the node's address.
        let replyDestination: IPAddress
        let replyDestinationPort: UInt16?
        let status: UInt32
        /// The CTA_TUPLE_ORIG attribute as the kernel sent it, to name the entry in a DELETE.
        let originalTuple: [UInt8]
        let id: UInt32?

        /// IPS_SRC_NAT: the entry's source was translated.
        var isSourceNATed: Bool { status & Conntrack.sourceNATBit != 0 }
    }

    let socket: NetlinkSocket

    /// IPS_SRC_NAT in an entry's CTA_STATUS.
    static var sourceNATBit: UInt32 { CtnetlinkProtocol.sourceNATBit }

    private func exchange(_ message: NetlinkRequest, _ operation: String, _ object: String) throws(NetfilterError) -> [NetlinkReply] {
        try socket.netfilterExchange(message, operation: operation, object: object)
    }

    private func request(_ command: ConntrackCommand, flags: NetlinkFlags = [.request, .ack], family: Family, version: UInt8 = 0) -> NetlinkRequest {
        NetlinkRequest(.ctnetlink(command), flags: flags, sequence: socket.nextSequence(),
                       header: NetfilterHeader(family: CtnetlinkProtocol.family(family), version: version))
    }

    /// The entries of `family`; with `originalSource`, only those whose original source it is (the
    /// kernel filters the dump where it can, and randsnat checks again).
    func entries(_ family: Family, originalSource: IPAddress? = nil) throws(NetfilterError) -> [Entry] {
        var message = request(.get, flags: [.request, .ack, .dump], family: family)
        if let source = originalSource { Self.addSourceFilter(&message, source) }
        let replies = try exchange(message, "listing conntrack entries", originalSource.map { "from \($0)" } ?? "of \(family)")
        var entries: [Entry] = []
        for reply in replies {
            do {
                if let entry = try Self.parse(reply, family: family), originalSource == nil || entry.originalSource == originalSource { entries.append(entry) }
            } catch {
                throw NetfilterError(error)
            }
        }
        return entries
    }

    /// One entry of a listing; nil when it lacks a part randsnat reads; throws when malformed.
    static func parse(_ reply: NetlinkReply, family: Family) throws(NetlinkError) -> Entry? {
        let attributes = try reply.netfilterAttributes()
        guard let original = attributes[ConntrackAttribute.originalTuple], let answer = attributes[ConntrackAttribute.replyTuple]
        else { return nil }
        func addresses(_ tuple: NetlinkAttribute) throws(NetlinkError) -> (IPAddress?, IPAddress?) {
            let ip = try tuple.nestedAttributes()[ConntrackAttribute.Tuple.ip]?.nestedAttributes() ?? []
            return (ip[ConntrackAttribute.IP.source(family)].flatMap { IPAddress(family: family, bytes: $0.payload) },
                    ip[ConntrackAttribute.IP.destination(family)].flatMap { IPAddress(family: family, bytes: $0.payload) })
        }
        func proto(_ tuple: NetlinkAttribute) throws(NetlinkError) -> [NetlinkAttribute] {
            try tuple.nestedAttributes()[ConntrackAttribute.Tuple.proto]?.nestedAttributes() ?? []
        }
        let (originalSource, originalDestination) = try addresses(original)
        let (_, replyDestination) = try addresses(answer)
        guard let originalSource, let originalDestination, let replyDestination else { return nil }
        let originalProto = try proto(original)
        return Entry(family: family, proto: originalProto[ConntrackAttribute.Proto.number]?.u8 ?? 0,
                     originalSource: originalSource, originalDestination: originalDestination,
                     originalDestinationPort: originalProto[ConntrackAttribute.Proto.destinationPort]?.be16,
                     replyDestination: replyDestination,
                     replyDestinationPort: try proto(answer)[ConntrackAttribute.Proto.destinationPort]?.be16,
                     status: attributes[ConntrackAttribute.status]?.be32 ?? 0,
                     originalTuple: original.payload, id: attributes[ConntrackAttribute.id]?.be32)
    }

    /// Deletes one entry; one that is gone already counts as deleted.
    func delete(_ entry: Entry) throws(NetfilterError) {
        var message = request(.delete, family: entry.family)
        message.add(ConntrackAttribute.originalTuple, entry.originalTuple, flags: NetlinkAttribute.nestedFlag)
        if let id = entry.id { message.addBE32(ConntrackAttribute.id, id) }
        do {
            _ = try exchange(message, "deleting conntrack entry", "\(entry.originalSource) → \(entry.originalDestination)")
        } catch NetfilterError.netlink(_, _, let code, _) where code == Errno.notFound.code {
        }
    }

    /// Forgets every flow a (departed) pod started, so a new pod given its address does not receive
    /// the old flows' replies.
    ///
    /// First as one filtered flush (IPCTNL_MSG_CT_DELETE with CTA_FILTER, on kernels whose flush takes a
    /// filter, such as 6.18; the kernel skips
    /// empty buckets and sends nothing back per entry); a kernel without it refuses the request (it
    /// reads the partial tuple as one entry's and finds it incomplete), and then randsnat lists the
    /// pod's entries and deletes them one by one.
    func forgetFlows(from address: IPAddress, cleanup: FlowCleanup = .flush) throws(NetfilterError) {
        if cleanup == .flush {
            do {
                return try flush(originalSource: address)
            } catch NetfilterError.netlink(_, _, let code, _) where CtnetlinkProtocol.refusesFilteredFlush(code) {
            }
        }
        for entry in try entries(address.family, originalSource: address) { try delete(entry) }
    }

    /// Deletes, in the kernel, every entry of the address's family whose original source it is.
    func flush(originalSource address: IPAddress) throws(NetfilterError) {
        // nfgenmsg version 1: the flush keeps to `family` (version 0 would mean every family).
        var message = request(.delete, family: address.family, version: 1)
        Self.addSourceFilter(&message, address)
        _ = try exchange(message, "flushing conntrack entries", "from \(address)")
    }

    /// CTA_TUPLE_ORIG with only the source address, and CTA_FILTER saying that is all to compare.
    private static func addSourceFilter(_ message: inout NetlinkRequest, _ source: IPAddress) {
        message.nested(ConntrackAttribute.originalTuple) { tuple in
            tuple.nested(ConntrackAttribute.Tuple.ip) { $0.add(ConntrackAttribute.IP.source(source.family), source.bytes) }
        }
        message.nested(ConntrackAttribute.filter) {
            $0.addU32(ConntrackAttribute.Filter.originalFlags, CtnetlinkProtocol.filterOriginalSourceAddress)
        }
    }
}
