internal import CNetfilter
import Glibc
import Netlink
import RandSNATCore

/// Conntrack entries through ctnetlink, in process (no exec of `conntrack`).
/// How DEL deletes a departed pod's conntrack flows.
public enum FlowCleanup: Sendable {
    /// One filtered flush where the kernel has it, else `dumpAndDelete`.
    case flush
    /// Always list the pod's entries and delete them one by one: what a kernel without filtered
    /// flushes gets (`RANDSNAT_CONNTRACK_CLEANUP=dump` forces it, so the tests reach this path too).
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

    /// IPS_SRC_NAT in an entry's CTA_STATUS (the kernel's enum ip_conntrack_status, bit 4).
    static let sourceNATBit: UInt32 = 1 << 4

    private func exchange(_ message: NetlinkRequest, _ operation: String, _ object: String) throws(NetfilterError) -> [NetlinkReply] {
        try socket.netfilterExchange(message, operation: operation, object: object)
    }

    private static func family(_ family: Family) -> UInt8 { UInt8(family == .ipv4 ? AF_INET : AF_INET6) }

    /// The entries of `family`; with `originalSource`, only those whose original source it is (the
    /// kernel filters the dump where it can, and randsnat checks again).
    func entries(_ family: Family, originalSource: IPAddress? = nil) throws(NetfilterError) -> [Entry] {
        var message = NetlinkRequest(type: UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_GET.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP), sequence: socket.nextSequence(),
                                     family: Self.family(family))
        if let source = originalSource { Self.addSourceFilter(&message, source) }
        let replies = try exchange(message, "listing conntrack entries", originalSource.map { "from \($0)" } ?? "of \(family)")
        return replies.compactMap { Self.parse($0, family: family) }.filter { originalSource == nil || $0.originalSource == originalSource }
    }

    static func parse(_ reply: NetlinkReply, family: Family) -> Entry? {
        let attributes = reply.nfAttributes
        guard let original = attributes[type: UInt16(CTA_TUPLE_ORIG.rawValue)], let answer = attributes[type: UInt16(CTA_TUPLE_REPLY.rawValue)]
        else { return nil }
        func addresses(_ tuple: NetlinkAttribute) -> (IPAddress?, IPAddress?) {
            let ip = tuple.nested[type: UInt16(CTA_TUPLE_IP.rawValue)]?.nested ?? []
            let (source, destination) = family == .ipv4 ? (CTA_IP_V4_SRC.rawValue, CTA_IP_V4_DST.rawValue) : (CTA_IP_V6_SRC.rawValue, CTA_IP_V6_DST.rawValue)
            return (ip[type: UInt16(source)].flatMap { IPAddress(family: family, bytes: $0.payload) },
                    ip[type: UInt16(destination)].flatMap { IPAddress(family: family, bytes: $0.payload) })
        }
        func proto(_ tuple: NetlinkAttribute) -> [NetlinkAttribute] { tuple.nested[type: UInt16(CTA_TUPLE_PROTO.rawValue)]?.nested ?? [] }
        let (originalSource, originalDestination) = addresses(original)
        let (_, replyDestination) = addresses(answer)
        guard let originalSource, let originalDestination, let replyDestination else { return nil }
        return Entry(family: family, proto: proto(original)[type: UInt16(CTA_PROTO_NUM.rawValue)]?.u8 ?? 0,
                     originalSource: originalSource, originalDestination: originalDestination,
                     originalDestinationPort: proto(original)[type: UInt16(CTA_PROTO_DST_PORT.rawValue)]?.be16,
                     replyDestination: replyDestination,
                     replyDestinationPort: proto(answer)[type: UInt16(CTA_PROTO_DST_PORT.rawValue)]?.be16,
                     status: attributes[type: UInt16(CTA_STATUS.rawValue)]?.be32 ?? 0,
                     originalTuple: original.payload, id: attributes[type: UInt16(CTA_ID.rawValue)]?.be32)
    }

    /// Deletes one entry; one that is gone already counts as deleted.
    func delete(_ entry: Entry) throws(NetfilterError) {
        var message = NetlinkRequest(type: UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_DELETE.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), sequence: socket.nextSequence(),
                                     family: Self.family(entry.family))
        message.add(UInt16(CTA_TUPLE_ORIG.rawValue), entry.originalTuple, flags: NetlinkAttribute.nestedFlag)
        if let id = entry.id { message.addBE32(UInt16(CTA_ID.rawValue), id) }
        do {
            _ = try exchange(message, "deleting conntrack entry", "\(entry.originalSource) → \(entry.originalDestination)")
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
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
            } catch NetfilterError.netlink(_, _, let code, _) where code == EINVAL || code == EOPNOTSUPP {
            }
        }
        for entry in try entries(address.family, originalSource: address) { try delete(entry) }
    }

    /// Deletes, in the kernel, every entry of the address's family whose original source it is.
    func flush(originalSource address: IPAddress) throws(NetfilterError) {
        // nfgenmsg version 1: the flush keeps to `family` (version 0 would mean every family).
        var message = NetlinkRequest(type: UInt16(NFNL_SUBSYS_CTNETLINK << 8) | UInt16(IPCTNL_MSG_CT_DELETE.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), sequence: socket.nextSequence(),
                                     family: Self.family(address.family), version: 1)
        Self.addSourceFilter(&message, address)
        _ = try exchange(message, "flushing conntrack entries", "from \(address)")
    }

    /// CTA_TUPLE_ORIG with only the source address, and CTA_FILTER saying that is all to compare.
    private static func addSourceFilter(_ message: inout NetlinkRequest, _ source: IPAddress) {
        message.beginNested(UInt16(CTA_TUPLE_ORIG.rawValue))
        message.beginNested(UInt16(CTA_TUPLE_IP.rawValue))
        message.add(UInt16(source.family == .ipv4 ? CTA_IP_V4_SRC.rawValue : CTA_IP_V6_SRC.rawValue), source.bytes)
        message.endNested()
        message.endNested()
        message.beginNested(UInt16(CTA_FILTER.rawValue))
        message.addU32(UInt16(CTA_FILTER_ORIG_FLAGS.rawValue), 1)  // the kernel's CTA_FILTER_F_CTA_IP_SRC
        message.endNested()
    }
}
