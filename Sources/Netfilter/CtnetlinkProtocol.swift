internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore

// The ctnetlink protocol's numbers (linux/netfilter/nfnetlink_conntrack.h), taken from the C header
// here and nowhere else: Conntrack.swift and ConntrackMetrics.swift speak it through these names and
// import no C module.

/// `CTA_*` (linux/netfilter/nfnetlink_conntrack.h), from the C header once; each nest has its own
/// numbering (tuple, tuple IP, tuple protocol, filter), so each is a type of its own.
struct ConntrackAttribute: NetlinkAttributeName {
    let type: UInt16
    static var originalTuple: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_TUPLE_ORIG)) }
    static var replyTuple: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_TUPLE_REPLY)) }
    static var status: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_STATUS)) }
    static var id: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_ID)) }
    static var filter: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_FILTER)) }
    /// A dump's filter on the status bits (with `status`: the bits to compare).
    static var statusMask: ConntrackAttribute { ConntrackAttribute(type: cValue(CTA_STATUS_MASK)) }

    /// In a statistics reply: `CTA_STATS_*` (per CPU) and `CTA_STATS_GLOBAL_*` (the table).
    struct Statistics: NetlinkAttributeName {
        let type: UInt16
        static var globalEntries: Statistics { Statistics(type: cValue(CTA_STATS_GLOBAL_ENTRIES)) }
        static var globalMaxEntries: Statistics { Statistics(type: cValue(CTA_STATS_GLOBAL_MAX_ENTRIES)) }
        /// The per-CPU counters by the names randsnat's metrics give them.
        static let counterNames: [UInt16: String] = [
            cValue(CTA_STATS_FOUND): "found", cValue(CTA_STATS_INVALID): "invalid",
            cValue(CTA_STATS_INSERT): "insert", cValue(CTA_STATS_INSERT_FAILED): "insert_failed",
            cValue(CTA_STATS_DROP): "drop", cValue(CTA_STATS_EARLY_DROP): "early_drop",
            cValue(CTA_STATS_ERROR): "error", cValue(CTA_STATS_SEARCH_RESTART): "search_restart",
            cValue(CTA_STATS_CLASH_RESOLVE): "clash_resolve", cValue(CTA_STATS_CHAIN_TOOLONG): "chain_toolong",
        ]
    }

    /// Inside a tuple: `CTA_TUPLE_*`.
    struct Tuple: NetlinkAttributeName {
        let type: UInt16
        static var ip: Tuple { Tuple(type: cValue(CTA_TUPLE_IP)) }
        static var proto: Tuple { Tuple(type: cValue(CTA_TUPLE_PROTO)) }
    }

    /// Inside a tuple's IP: `CTA_IP_*`.
    struct IP: NetlinkAttributeName {
        let type: UInt16
        static var v4Source: IP { IP(type: cValue(CTA_IP_V4_SRC)) }
        static var v4Destination: IP { IP(type: cValue(CTA_IP_V4_DST)) }
        static var v6Source: IP { IP(type: cValue(CTA_IP_V6_SRC)) }
        static var v6Destination: IP { IP(type: cValue(CTA_IP_V6_DST)) }
        static func source(_ family: Family) -> IP { family == .ipv4 ? v4Source : v6Source }
        static func destination(_ family: Family) -> IP { family == .ipv4 ? v4Destination : v6Destination }
    }

    /// Inside a tuple's protocol: `CTA_PROTO_*`.
    struct Proto: NetlinkAttributeName {
        let type: UInt16
        static var number: Proto { Proto(type: cValue(CTA_PROTO_NUM)) }
        static var destinationPort: Proto { Proto(type: cValue(CTA_PROTO_DST_PORT)) }
    }

    /// Inside the filter: `CTA_FILTER_*`.
    struct Filter: NetlinkAttributeName {
        let type: UInt16
        static var originalFlags: Filter { Filter(type: cValue(CTA_FILTER_ORIG_FLAGS)) }
    }
}

/// A ctnetlink command (`IPCTNL_MSG_CT_*`), the ones randsnat sends.
struct ConntrackCommand: Equatable {
    let value: UInt8
    init(_ command: cntl_msg_types) { value = UInt8(command.rawValue) }
    static var get: ConntrackCommand { ConntrackCommand(IPCTNL_MSG_CT_GET) }
    static var delete: ConntrackCommand { ConntrackCommand(IPCTNL_MSG_CT_DELETE) }
    static var getStatistics: ConntrackCommand { ConntrackCommand(IPCTNL_MSG_CT_GET_STATS) }
    static var getStatisticsPerCPU: ConntrackCommand { ConntrackCommand(IPCTNL_MSG_CT_GET_STATS_CPU) }
}

extension NetfilterMessageType {
    /// A ctnetlink command.
    static func ctnetlink(_ command: ConntrackCommand) -> NetfilterMessageType { NetfilterMessageType(.ctnetlink, command: command.value) }
}

/// The rest of ctnetlink that randsnat uses: the header's family, status bits, filter flags, errors.
enum CtnetlinkProtocol {
    /// The `nfgenmsg` family of a request about one family's entries.
    static func family(_ family: Family) -> UInt8 { UInt8(family == .ipv4 ? AF_INET : AF_INET6) }
    /// The family of an entry's `nfgenmsg`, nil for one randsnat does not read.
    static func family(of byte: UInt8) -> Family? {
        switch Int32(byte) {
        case AF_INET: .ipv4
        case AF_INET6: .ipv6
        default: nil
        }
    }
    /// The `nfgenmsg` family of a request about every family.
    static var anyFamily: UInt8 { UInt8(AF_UNSPEC) }
    /// IPS_SRC_NAT in an entry's CTA_STATUS (the kernel's enum ip_conntrack_status).
    static var sourceNATBit: UInt32 { UInt32(IPS_SRC_NAT.rawValue) }
    /// CTA_FILTER_F_CTA_IP_SRC in CTA_FILTER_ORIG_FLAGS: compare the original source address only
    /// (defined in the kernel's nf_conntrack_netlink.c, not in a UAPI header).
    static let filterOriginalSourceAddress: UInt32 = 1 << 0
    /// How a kernel whose flush takes no filter refuses a filtered flush.
    static func refusesFilteredFlush(_ code: Int32) -> Bool { code == EINVAL || code == EOPNOTSUPP }
}
