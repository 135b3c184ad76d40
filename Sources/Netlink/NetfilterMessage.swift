internal import CNetlink

/// The flags of a request's nlmsghdr.
public struct NetlinkFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The corresponding C constant is `NLM_F_REQUEST`.
    public static let request = NetlinkFlags(rawValue: UInt16(NLM_F_REQUEST))
    /// Ask for an acknowledgement (an NLMSG_ERROR with errno 0). `NLM_F_ACK`.
    public static let ack = NetlinkFlags(rawValue: UInt16(NLM_F_ACK))
    /// Every object, as a multi-part reply ended by NLMSG_DONE. `NLM_F_DUMP`.
    public static let dump = NetlinkFlags(rawValue: UInt16(NLM_F_DUMP))
    /// `NLM_F_CREATE`.
    public static let create = NetlinkFlags(rawValue: UInt16(NLM_F_CREATE))
    /// Fail with EEXIST when the object exists. `NLM_F_EXCL`.
    public static let exclusive = NetlinkFlags(rawValue: UInt16(NLM_F_EXCL))
    /// Add at the end (a rule after the chain's last). `NLM_F_APPEND`.
    public static let append = NetlinkFlags(rawValue: UInt16(NLM_F_APPEND))
    /// `NLM_F_MULTI`: a part of a multi-part reply.
    public static let multi = NetlinkFlags(rawValue: UInt16(NLM_F_MULTI))
}

/// An nfnetlink subsystem: the high byte of an nfnetlink message type.
public struct NetfilterSubsystem: Hashable, Sendable {
    public let rawValue: UInt8
    init(_ value: Int32) { rawValue = UInt8(value) }

    /// The subsystem as a 16-bit field holds it: an nlmsghdr type's high byte, and the res_id of
    /// nf_tables' batch messages.
    var number: UInt16 { UInt16(rawValue) }

    /// Connection tracking. The corresponding C constant is `NFNL_SUBSYS_CTNETLINK`.
    public static let ctnetlink = NetfilterSubsystem(NFNL_SUBSYS_CTNETLINK)
    /// `NFNL_SUBSYS_IPSET`.
    public static let ipset = NetfilterSubsystem(NFNL_SUBSYS_IPSET)
    /// `NFNL_SUBSYS_NFTABLES`.
    public static let nftables = NetfilterSubsystem(NFNL_SUBSYS_NFTABLES)
}

/// An nfnetlink message type: a subsystem's command, `(subsystem << 8) | command`.
public struct NetfilterMessageType: Hashable, Sendable {
    public let subsystem: NetfilterSubsystem
    public let command: UInt8

    public init(_ subsystem: NetfilterSubsystem, command: UInt8) {
        self.subsystem = subsystem
        self.command = command
    }

    /// A command from a C header's enum, such as `IPCTNL_MSG_CT_GET` (the one place such casts are made).
    public init<E: RawRepresentable>(_ subsystem: NetfilterSubsystem, _ command: E) where E.RawValue: BinaryInteger {
        self.init(subsystem, command: UInt8(command.rawValue))
    }

    /// The message type of an nlmsghdr (any subsystem's, whether randsnat names it or not).
    public init(type: UInt16) {
        self.init(NetfilterSubsystem(Int32(type >> 8)), command: UInt8(truncatingIfNeeded: type))
    }

    /// The nlmsghdr type.
    public var rawValue: UInt16 { subsystem.number << 8 | UInt16(command) }
}

/// `struct nfgenmsg`, the family header of every nfnetlink message: family, version, resource id
/// (big-endian). Built here only.
public struct NetfilterHeader: Hashable, Sendable {
    public let family: UInt8
    public let version: UInt8
    public let resourceID: UInt16

    static let size = 4

    /// - Parameters:
    ///   - version: NFNETLINK_V0 (0) unless a command reads it (ctnetlink's flush: 1 = only `family`).
    ///   - resourceID: nf_tables' batch messages carry the subsystem here.
    public init(family: UInt8, version: UInt8 = 0, resourceID: UInt16 = 0) {
        self.family = family
        self.version = version
        self.resourceID = resourceID
    }

    /// An unspecified family (`AF_UNSPEC`, `NFPROTO_UNSPEC`).
    public static var unspecified: NetfilterHeader { NetfilterHeader(family: UInt8(AF_UNSPEC)) }

    var bytes: [UInt8] { [family, version, UInt8(resourceID >> 8), UInt8(resourceID & 0xFF)] }
}
