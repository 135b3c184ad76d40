import Netlink
import RandSNATCore

/// What the agent's metrics read from conntrack: the statistics (ctnetlink, /proc where that fails)
/// and one streaming dump of SNATed entries per scan. Reads only; one netlink socket per reader, so
/// a scrape and a scan never share one.
public struct ConntrackMetricsReader {
    let socket: NetlinkSocket

    public init() throws(NetfilterError) {
        socket = try NetlinkSocket.netfilterSocket()
    }

    /// The kernel's per-CPU counter attributes (CTA_STATS_*) by the names randsnat uses.
    static var counterAttributes: [UInt16: String] { ConntrackAttribute.Statistics.counterNames }

    /// Sums the per-CPU messages of IPCTNL_MSG_CT_GET_STATS_CPU (each CTA_STATS_* a big-endian u32).
    static func sumCounters(_ replies: [NetlinkReply]) -> [String: UInt64] {
        var totals: [String: UInt64] = [:]
        for reply in replies {
            for attribute in reply.nfAttributes {
                if let name = counterAttributes[attribute.type], let value = attribute.be32 { totals[name, default: 0] &+= UInt64(value) }
            }
        }
        return totals
    }

    /// The statistics through ctnetlink; where that fails (a kernel or namespace without it), from
    /// /proc. Returns nil and the reasons when neither can be read.
    public func statistics() -> (ConntrackStatistics?, String?) {
        do {
            let perCPU = try socket.netfilterExchange(
                NetlinkRequest(.ctnetlink(.getStatisticsPerCPU), flags: [.request, .dump], sequence: socket.nextSequence(),
                               header: NetfilterHeader(family: CtnetlinkProtocol.anyFamily)),
                operation: "reading conntrack statistics (IPCTNL_MSG_CT_GET_STATS_CPU)", object: "of this network namespace")
            let global = try socket.netfilterExchange(
                NetlinkRequest(.ctnetlink(.getStatistics), flags: [.request, .ack], sequence: socket.nextSequence(),
                               header: NetfilterHeader(family: CtnetlinkProtocol.anyFamily)),
                operation: "reading the conntrack table's size (IPCTNL_MSG_CT_GET_STATS)", object: "of this network namespace")
            let attributes = global.first?.nfAttributes ?? []
            return (ConntrackStatistics(counters: Self.sumCounters(perCPU),
                                        entries: attributes[ConntrackAttribute.Statistics.globalEntries]?.be32.map(UInt64.init),
                                        maxEntries: attributes[ConntrackAttribute.Statistics.globalMaxEntries]?.be32.map(UInt64.init),
                                        source: .netlink), nil)
        } catch {
            let netlinkFailure = "\(error)"
            guard let stat = try? HostFile.read("/proc/net/stat/nf_conntrack"),
                  let statistics = ConntrackStatistics.fromProc(stat: stat, max: try? HostFile.read("/proc/sys/net/netfilter/nf_conntrack_max"))
            else {
                return (nil, netlinkFailure + "; /proc/net/stat/nf_conntrack cannot be read either: is the nf_conntrack module loaded?")
            }
            return (statistics, nil)
        }
    }

    /// One dump of the conntrack table (both families), asking the kernel for SNATed entries only
    /// (CTA_STATUS/CTA_STATUS_MASK; a kernel without the filter sends all and `parseSNAT` skips the
    /// rest). Calls `each` per SNATed entry; returns how many entries came back.
    public func scanSNAT(_ each: (SNATDestination) -> Void) throws(NetfilterError) -> Int {
        var request = NetlinkRequest(.ctnetlink(.get), flags: [.request, .dump], sequence: socket.nextSequence(),
                                     header: NetfilterHeader(family: CtnetlinkProtocol.anyFamily))
        request.addBE32(ConntrackAttribute.status, Self.sourceNATBit)
        request.addBE32(ConntrackAttribute.statusMask, Self.sourceNATBit)
        var entries = 0
        do {
            try socket.dump(request, operation: "dumping conntrack entries", object: "of this network namespace") { body in
                entries += 1
                if let key = Self.parseSNAT(body) { each(key) }
            }
        } catch {
            throw NetfilterError(error)
        }
        return entries
    }

    static var sourceNATBit: UInt32 { Conntrack.sourceNATBit }

    /// The SNAT tuple of one ctnetlink entry (nfgenmsg + attributes), without allocating: the original
    /// destination, port and protocol, and the reply's destination (the SNAT address). Nil for an
    /// entry whose source was not NATed or that lacks a part.
    static func parseSNAT(_ body: UnsafeRawBufferPointer) -> SNATDestination? {
        guard body.count >= 4 else { return nil }
        guard let family = CtnetlinkProtocol.family(of: body[0]) else { return nil }
        // The attribute numbers, read once per entry (not once per attribute).
        let statusType = ConntrackAttribute.status.type, originalType = ConntrackAttribute.originalTuple.type
        let replyType = ConntrackAttribute.replyTuple.type, ipType = ConntrackAttribute.Tuple.ip.type
        let protoType = ConntrackAttribute.Tuple.proto.type, numberType = ConntrackAttribute.Proto.number.type
        let portType = ConntrackAttribute.Proto.destinationPort.type
        let v4Destination = ConntrackAttribute.IP.v4Destination.type, v6Destination = ConntrackAttribute.IP.v6Destination.type
        var status: UInt32?
        var destination: (UInt64, UInt64)?, port: UInt16?, proto: UInt8?, snat: (UInt64, UInt64)?
        forEachAttribute(body, from: 4, to: body.count) { type, start, end in
            switch type {
            case statusType where end - start >= 4:
                status = bigEndian32(body, start)
            case originalType:
                forEachAttribute(body, from: start, to: end) { inner, innerStart, innerEnd in
                    if inner == ipType {
                        forEachAttribute(body, from: innerStart, to: innerEnd) { ip, ipStart, ipEnd in
                            if ip == v4Destination || ip == v6Destination { destination = words(body, ipStart, ipEnd) }
                        }
                    } else if inner == protoType {
                        forEachAttribute(body, from: innerStart, to: innerEnd) { field, fieldStart, fieldEnd in
                            if field == numberType, fieldEnd > fieldStart { proto = body[fieldStart] }
                            if field == portType, fieldEnd - fieldStart >= 2 {
                                port = UInt16(body[fieldStart]) << 8 | UInt16(body[fieldStart + 1])
                            }
                        }
                    }
                }
            case replyType:
                forEachAttribute(body, from: start, to: end) { inner, innerStart, innerEnd in
                    guard inner == ipType else { return }
                    forEachAttribute(body, from: innerStart, to: innerEnd) { ip, ipStart, ipEnd in
                        if ip == v4Destination || ip == v6Destination { snat = words(body, ipStart, ipEnd) }
                    }
                }
            default: break
            }
        }
        guard let status, status & sourceNATBit != 0, let destination, let snat, let proto else { return nil }
        // ICMP has no destination port (an id instead): its tuples are per address pair.
        return SNATDestination(family: family, proto: proto, port: port ?? 0, snat: snat, destination: destination)
    }

    /// Calls `visit(type, payloadStart, payloadEnd)` for each attribute in `bytes[from..<to]` (type
    /// without the NESTED/NET_BYTEORDER flags); stops at a malformed length.
    static func forEachAttribute(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int, _ visit: (UInt16, Int, Int) -> Void) {
        var offset = from
        while offset + 4 <= to {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3FFF
            guard length >= 4, offset + length <= to else { return }
            visit(type, offset + 4, offset + length)
            offset += (length + 3) & ~3
        }
    }

    static func bigEndian32(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }

    /// An address of 4 or 16 bytes as SNATDestination's two big-endian words.
    static func words(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (UInt64, UInt64)? {
        switch end - start {
        case 4: return (UInt64(bigEndian32(bytes, start)) << 32, 0)
        case 16: return (UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: start, as: UInt64.self)),
                         UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self)))
        default: return nil
        }
    }
}
