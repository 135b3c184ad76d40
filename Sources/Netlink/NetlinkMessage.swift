/// Netlink messages as bytes: building requests and reading replies (netlink(7), attributes as in
/// libmnl). Pure, so tests check the exact bytes without a kernel.
///
/// Wire layout of one message (host byte order, every part padded to 4 bytes):
/// ```
/// nlmsghdr   len:u32 type:u16 flags:u16 seq:u32 pid:u32      16 bytes
/// family hdr nfgenmsg (4), ifinfomsg (16), ifaddrmsg (8), rtmsg (12), ...
/// attribute  len:u16 type:u16 (NESTED 0x8000, NET_BYTEORDER 0x4000) payload, padded
/// ```

/// The name of an attribute in one subsystem's numbering: each subsystem has a type of its own
/// (`IPSetAttribute`, `ConntrackAttribute`, `LinkAttribute`, ...) whose values come from the C
/// headers once, so no request or parser spells a number or a cast.
public protocol NetlinkAttributeName {
    var type: UInt16 { get }
}

extension NetlinkAttributeName {
    /// A C header's enum constant, such as `CTA_TUPLE_ORIG` (the one place such casts are made).
    @inline(__always)
    public static func cValue<E: RawRepresentable>(_ value: E) -> UInt16 where E.RawValue: BinaryInteger { UInt16(value.rawValue) }
    /// A C header's macro or anonymous-enum constant, such as `IPSET_ATTR_SETNAME` or `IFLA_IFNAME`.
    @inline(__always)
    public static func cValue<T: BinaryInteger>(_ value: T) -> UInt16 { UInt16(value) }
}

/// One attribute as read from a message.
public struct NetlinkAttribute: Equatable, Sendable {
    /// The attribute's type without the NESTED / NET_BYTEORDER flags.
    public let type: UInt16
    public let payload: [UInt8]

    public init(type: UInt16, payload: [UInt8]) {
        self.type = type
        self.payload = payload
    }

    public static let nestedFlag: UInt16 = 1 << 15
    public static let netByteOrderFlag: UInt16 = 1 << 14
    static let headerSize = 4

    /// True when this attribute is `name`.
    public func `is`<Name: NetlinkAttributeName>(_ name: Name) -> Bool { type == name.type }

    /// The payload's attributes, for a nested attribute (as many as are whole: see `nestedAttributes`).
    public var nested: [NetlinkAttribute] { NetlinkAttribute.parse(payload[...]) }
    /// The payload's attributes; throws when the payload is not a sequence of whole attributes.
    public func nestedAttributes() throws(NetlinkError) -> [NetlinkAttribute] { try NetlinkAttribute.attributes(in: payload[...]) }
    public var u8: UInt8? { payload.first }
    /// A big-endian (NET_BYTEORDER) u16.
    public var be16: UInt16? { payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
    /// A big-endian (NET_BYTEORDER) u32.
    public var be32: UInt32? {
        payload.count >= 4 ? payload[0..<4].reduce(0) { $0 << 8 | UInt32($1) } : nil
    }
    /// A NUL-terminated string.
    public var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }

    /// A host-order u32 (rtnetlink's convention).
    public var u32: UInt32? {
        payload.count >= 4 ? (0..<4).reduce(0) { $0 | UInt32(payload[$1]) << UInt32($1 * 8) } : nil
    }

    /// The attributes in `bytes`, every one whole: a length below the header's, or past the end of
    /// `bytes`, throws (a reply cut short, or bytes that are not attributes), and nothing is read
    /// past the end.
    public static func attributes(in bytes: ArraySlice<UInt8>) throws(NetlinkError) -> [NetlinkAttribute] {
        var reader = AttributeReader(bytes)
        var attributes: [NetlinkAttribute] = []
        while let attribute = try reader.next() { attributes.append(attribute) }
        return attributes
    }

    /// The whole attributes at the start of `bytes`; stops at the first one that is not whole.
    public static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkAttribute] {
        var reader = AttributeReader(bytes)
        var attributes: [NetlinkAttribute] = []
        while let attribute = try? reader.next() { attributes.append(attribute) }
        return attributes
    }
}

/// Netlink's framing constants and alignment, in one place.
public enum Netlink {
    /// `NLMSG_ALIGN` / `NLA_ALIGN`: every header, payload and attribute is padded to 4 bytes.
    @inline(__always)
    public static func aligned(_ length: Int) -> Int { (length + 3) & ~3 }
    static let messageHeaderSize = 16
    /// nfnetlink's batch delimiters, NFNL_MSG_BATCH_BEGIN and _END (NLMSG_MIN_TYPE and the next).
    static let batchBegin: UInt16 = 0x10, batchEnd: UInt16 = 0x11
}

extension Array where Element == NetlinkAttribute {
    public subscript(type type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }
    /// The first attribute named `name`.
    public subscript<Name: NetlinkAttributeName>(_ name: Name) -> NetlinkAttribute? { first { $0.type == name.type } }
}

/// Builds one netlink request: `nlmsghdr`, a family header (`nfgenmsg`, `ifinfomsg`, ...), attributes.
/// An attribute longer than netlink's 16-bit length is not written; the request records it and the
/// socket refuses to send it (`overflow`), instead of trapping or sending a wrong length.
public struct NetlinkRequest {
    private(set) var bytes: [UInt8] = []
    private var nestStarts: [Int] = []
    /// What made this request unsendable, if anything.
    public private(set) var overflow: String?

    /// A request whose family header is `header` (its bytes as the kernel's struct lays them out).
    public init(type: UInt16, flags: UInt16, sequence: UInt32, header: [UInt8]) {
        append32(0)  // length, patched in `finished`
        append16(type)
        append16(flags)
        append32(sequence)
        append32(0)  // port id: the kernel fills it in
        bytes += header
        pad()
    }

    /// An nfnetlink request: `type` is `(subsystem << 8) | command`, `family` the nfgenmsg family,
    /// `version` NFNETLINK_V0 unless a command reads it (ctnetlink's flush: 1 = only `family`).
    public init(type: UInt16, flags: UInt16, sequence: UInt32, family: UInt8, version: UInt8 = 0, resourceID: UInt16 = 0) {
        self.init(type: type, flags: flags, sequence: sequence, header: NetfilterHeader(family: family, version: version, resourceID: resourceID).bytes)
    }

    /// An nfnetlink request for `message` (a subsystem's command), with the nfgenmsg built here.
    public init(_ message: NetfilterMessageType, flags: NetlinkFlags, sequence: UInt32, header: NetfilterHeader) {
        self.init(type: message.rawValue, flags: flags.rawValue, sequence: sequence, header: header.bytes)
    }

    /// The bytes of a nested attribute's content only (no nlmsghdr): for attributes that hold a
    /// family header and attributes, such as a veth's VETH_INFO_PEER.
    public static func attributes(header: [UInt8] = [], _ build: (inout NetlinkRequest) -> Void) -> [UInt8] {
        var inner = NetlinkRequest(type: 0, flags: 0, sequence: 0, header: header)
        build(&inner)
        return Array(inner.bytes.dropFirst(Netlink.messageHeaderSize))
    }

    private mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }
    private mutating func append16(_ value: UInt16) { bytes += [UInt8(value & 0xFF), UInt8(value >> 8)] }
    private mutating func append32(_ value: UInt32) { for shift in [0, 8, 16, 24] { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }

    public mutating func add(_ type: UInt16, _ payload: [UInt8], flags: UInt16 = 0) {
        guard payload.count <= Int(UInt16.max) - NetlinkAttribute.headerSize else {
            overflow = overflow ?? "attribute \(type) holds \(payload.count) bytes, more than netlink's 16-bit length allows"
            return
        }
        append16(UInt16(NetlinkAttribute.headerSize + payload.count))
        append16(type | flags)
        bytes += payload
        pad()
    }

    public mutating func addU8(_ type: UInt16, _ value: UInt8) { add(type, [value]) }
    /// A u32 in network byte order, flagged NET_BYTEORDER as ipset requires.
    public mutating func addBE32(_ type: UInt16, _ value: UInt32) {
        add(type, [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) }, flags: NetlinkAttribute.netByteOrderFlag)
    }
    /// A host-order u32 (rtnetlink's convention).
    public mutating func addU32(_ type: UInt16, _ value: UInt32) {
        add(type, [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) })
    }
    /// A NUL-terminated string.
    public mutating func addString(_ type: UInt16, _ value: String) { add(type, Array(value.utf8) + [0]) }

    public mutating func beginNested(_ type: UInt16) {
        nestStarts.append(bytes.count)
        append16(0)
        append16(type | NetlinkAttribute.nestedFlag)
    }

    public mutating func endNested() {
        let start = nestStarts.removeLast()
        guard bytes.count - start <= Int(UInt16.max) else {
            overflow = overflow ?? "nested attribute holds \(bytes.count - start) bytes, more than netlink's 16-bit length allows"
            return
        }
        let length = UInt16(bytes.count - start)
        bytes[start] = UInt8(length & 0xFF)
        bytes[start + 1] = UInt8(length >> 8)
    }

    // Typed attributes: the same, named by a subsystem's attribute type.

    public mutating func add<Name: NetlinkAttributeName>(_ name: Name, _ payload: [UInt8], flags: UInt16 = 0) { add(name.type, payload, flags: flags) }
    public mutating func addU8<Name: NetlinkAttributeName>(_ name: Name, _ value: UInt8) { addU8(name.type, value) }
    public mutating func addBE32<Name: NetlinkAttributeName>(_ name: Name, _ value: UInt32) { addBE32(name.type, value) }
    public mutating func addU32<Name: NetlinkAttributeName>(_ name: Name, _ value: UInt32) { addU32(name.type, value) }
    public mutating func addString<Name: NetlinkAttributeName>(_ name: Name, _ value: String) { addString(name.type, value) }
    /// A nested attribute holding what `build` adds.
    public mutating func nested<Name: NetlinkAttributeName>(_ name: Name, _ build: (inout NetlinkRequest) -> Void) {
        beginNested(name.type)
        build(&self)
        endNested()
    }

    /// The message with its length filled in.
    public var finished: [UInt8] {
        var out = bytes
        let length = UInt32(out.count)
        for index in 0..<4 { out[index] = UInt8(truncatingIfNeeded: length >> UInt32(index * 8)) }
        return out
    }

    /// The sequence number written in the header.
    var sequence: UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[8 + $1]) << UInt32($1 * 8) } }
    /// The flags written in the header.
    var flags: NetlinkFlags { NetlinkFlags(rawValue: UInt16(bytes[6]) | UInt16(bytes[7]) << 8) }
}
