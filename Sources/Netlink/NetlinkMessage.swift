/// Netlink messages as bytes: building requests and reading replies (netlink(7), attributes as in
/// libmnl). Pure, so tests check the exact bytes without a kernel.
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

    /// The payload's attributes, for a nested attribute.
    public var nested: [NetlinkAttribute] { NetlinkAttribute.parse(payload[...]) }
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

    public static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkAttribute] {
        var attributes: [NetlinkAttribute] = []
        var offset = bytes.startIndex
        while offset + 4 <= bytes.endIndex {
            let length = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & ~(nestedFlag | netByteOrderFlag)
            guard length >= 4, offset + length <= bytes.endIndex else { break }
            attributes.append(NetlinkAttribute(type: type, payload: Array(bytes[(offset + 4)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return attributes
    }
}

extension Array where Element == NetlinkAttribute {
    public subscript(type type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }
}

/// Builds one netlink request: `nlmsghdr`, a family header (`nfgenmsg`, `ifinfomsg`, ...), attributes.
public struct NetlinkRequest {
    private(set) var bytes: [UInt8] = []
    private var nestStarts: [Int] = []

    /// A request whose family header is `header` (its bytes as the kernel's struct lays them out).
    public init(type: UInt16, flags: UInt16, sequence: UInt32, header: [UInt8]) {
        append32(0)  // length, patched in `finished`
        append16(type)
        append16(flags)
        append32(sequence)
        append32(0)  // port id: the kernel fills it in
        bytes += header
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// An nfnetlink request: `type` is `(subsystem << 8) | command`, `family` the nfgenmsg family,
    /// `version` NFNETLINK_V0 unless a command reads it (ctnetlink's flush: 1 = only `family`).
    public init(type: UInt16, flags: UInt16, sequence: UInt32, family: UInt8, version: UInt8 = 0, resourceID: UInt16 = 0) {
        self.init(type: type, flags: flags, sequence: sequence,
                  header: [family, version, UInt8(resourceID >> 8), UInt8(resourceID & 0xFF)])
    }

    private mutating func append16(_ value: UInt16) { bytes += [UInt8(value & 0xFF), UInt8(value >> 8)] }
    private mutating func append32(_ value: UInt32) { for shift in [0, 8, 16, 24] { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }

    public mutating func add(_ type: UInt16, _ payload: [UInt8], flags: UInt16 = 0) {
        append16(UInt16(4 + payload.count))
        append16(type | flags)
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
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
        let length = UInt16(bytes.count - start)
        bytes[start] = UInt8(length & 0xFF)
        bytes[start + 1] = UInt8(length >> 8)
    }

    /// The message with its length filled in.
    public var finished: [UInt8] {
        var out = bytes
        let length = UInt32(out.count)
        for index in 0..<4 { out[index] = UInt8(truncatingIfNeeded: length >> UInt32(index * 8)) }
        return out
    }
}

/// One message of a netlink reply.
public struct NetlinkReply: Equatable, Sendable {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    /// After the nlmsghdr.
    public let body: [UInt8]

    static let error: UInt16 = 2     // NLMSG_ERROR
    static let done: UInt16 = 3      // NLMSG_DONE
    static let multiFlag: UInt16 = 2 // NLM_F_MULTI

    /// For NLMSG_ERROR: the (positive) errno, 0 for an acknowledgement.
    var errorCode: Int32? {
        guard type == Self.error, body.count >= 4 else { return nil }
        let raw = UInt32(body[0]) | UInt32(body[1]) << 8 | UInt32(body[2]) << 16 | UInt32(body[3]) << 24
        return -Int32(bitPattern: raw)
    }

    /// The attributes after the 4-byte nfgenmsg.
    public var nfAttributes: [NetlinkAttribute] { attributes(afterHeader: 4) }
    /// The attributes after a family header of `size` bytes (16 for ifinfomsg, 8 for ifaddrmsg, 12 for rtmsg).
    public func attributes(afterHeader size: Int) -> [NetlinkAttribute] {
        body.count > size ? NetlinkAttribute.parse(body[size...]) : []
    }
    /// The nfgenmsg family.
    public var family: UInt8? { body.first }

    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        var offset = bytes.startIndex
        while offset + 16 <= bytes.endIndex {
            func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << UInt32($1 * 8) } }
            let length = Int(u32(offset))
            guard length >= 16, offset + length <= bytes.endIndex else { break }
            let type = UInt16(bytes[offset + 4]) | UInt16(bytes[offset + 5]) << 8
            let flags = UInt16(bytes[offset + 6]) | UInt16(bytes[offset + 7]) << 8
            replies.append(NetlinkReply(type: type, flags: flags, sequence: u32(offset + 8),
                                        body: Array(bytes[(offset + 16)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return replies
    }
}
