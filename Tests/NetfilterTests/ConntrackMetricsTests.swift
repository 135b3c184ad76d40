import CNetfilterUAPI
import Glibc
import Testing
@testable import Netfilter
@testable import Netlink
@testable import RandSNATCore

/// The in-place parse of ctnetlink entries and the per-CPU sum, on messages built as the kernel lays
/// them out (nfgenmsg + attributes), without root.
struct ConntrackMetricsTests {
    /// One entry's body: ORIG (src → dst:dport, proto), REPLY (dst → snat), STATUS.
    static func entry(family: Int32 = AF_INET, source: [UInt8], destination: [UInt8], port: UInt16, proto: UInt8, snat: [UInt8], status: UInt32) -> [UInt8] {
        var message = NetlinkRequest(type: 0, flags: 0, sequence: 1, family: UInt8(family))
        let (src, dst) = source.count == 4 ? (CTA_IP_V4_SRC, CTA_IP_V4_DST) : (CTA_IP_V6_SRC, CTA_IP_V6_DST)
        func tuple(_ type: ctattr_type, _ from: [UInt8], _ to: [UInt8], _ dport: UInt16) {
            message.beginNested(UInt16(type.rawValue))
            message.beginNested(UInt16(CTA_TUPLE_IP.rawValue))
            message.add(UInt16(src.rawValue), from)
            message.add(UInt16(dst.rawValue), to)
            message.endNested()
            message.beginNested(UInt16(CTA_TUPLE_PROTO.rawValue))
            message.addU8(UInt16(CTA_PROTO_NUM.rawValue), proto)
            message.add(UInt16(CTA_PROTO_SRC_PORT.rawValue), [0x9c, 0x40])
            message.add(UInt16(CTA_PROTO_DST_PORT.rawValue), [UInt8(dport >> 8), UInt8(dport & 0xFF)])
            message.endNested()
            message.endNested()
        }
        tuple(CTA_TUPLE_ORIG, source, destination, port)
        tuple(CTA_TUPLE_REPLY, destination, snat, 40000)
        message.addBE32(UInt16(CTA_STATUS.rawValue), status)
        return Array(message.finished.dropFirst(16))
    }

    static func parse(_ body: [UInt8]) -> SNATDestination? {
        body.withUnsafeBytes { ConntrackMetricsReader.parseSNAT($0) }
    }

    @Test func readsTheSNATTupleOfAnEntry() {
        let body = Self.entry(source: [198, 18, 0, 2], destination: [203, 0, 113, 10], port: 9999, proto: 17, snat: [203, 0, 113, 1], status: 0x1B0)
        #expect(Self.parse(body) == SNATDestination(family: .ipv4, proto: 17, port: 9999, snat: IPAddress("203.0.113.1")!,
                                                    destination: IPAddress("203.0.113.10")!))
    }

    @Test func readsIPv6() {
        let body = Self.entry(family: AF_INET6, source: IPAddress("2001:db8:18::2")!.bytes, destination: IPAddress("2001:db8:ee::10")!.bytes,
                              port: 443, proto: 6, snat: IPAddress("2001:db8:ee::1")!.bytes, status: 1 << 4)
        #expect(Self.parse(body)?.snatAddress == IPAddress("2001:db8:ee::1"))
        #expect(Self.parse(body)?.destination == IPAddress("2001:db8:ee::10"))
    }

    @Test func skipsEntriesWithoutSourceNATAndTruncatedOnes() {
        let plain = Self.entry(source: [198, 18, 0, 2], destination: [198, 19, 0, 10], port: 80, proto: 6, snat: [198, 18, 0, 2], status: 0x188)
        #expect(Self.parse(plain) == nil)
        let body = Self.entry(source: [198, 18, 0, 2], destination: [203, 0, 113, 10], port: 9999, proto: 17, snat: [203, 0, 113, 1], status: 0x1B0)
        for cut in [0, 3, 4, 20, body.count - 8] { #expect(Self.parse(Array(body.prefix(cut))) == nil, "cut at \(cut)") }
    }

    @Test func sumsPerCPUCounters() {
        func cpu(_ values: [(ctattr_stats_cpu, UInt32)]) -> NetlinkReply {
            var message = NetlinkRequest(type: 0, flags: 0, sequence: 1, family: 0)
            for (type, value) in values { message.addBE32(UInt16(type.rawValue), value) }
            return NetlinkReply.parse(message.finished[...])[0]
        }
        let totals = ConntrackMetricsReader.sumCounters([cpu([(CTA_STATS_INSERT_FAILED, 3), (CTA_STATS_CLASH_RESOLVE, 1)]),
                                                         cpu([(CTA_STATS_INSERT_FAILED, 10), (CTA_STATS_DROP, 2)])])
        #expect(totals == ["insert_failed": 13, "clash_resolve": 1, "drop": 2])
    }
}
