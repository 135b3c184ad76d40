/// Netlink messages as bytes: building requests and reading replies (netlink(7), attributes as in
/// libmnl). Pure, so tests check the exact bytes without a kernel.
struct NetlinkAttribute: Equatable {
    /// The attribute's type without the NESTED / NET_BYTEORDER flags.
    let type: UInt16
    let payload: [UInt8]

    static let nestedFlag: UInt16 = 1 << 15
    static let netByteOrderFlag: UInt16 = 1 << 14

    /// The payload's attributes, for a nested attribute.
    var nested: [NetlinkAttribute] { NetlinkAttribute.parse(payload[...]) }
    var u8: UInt8? { payload.first }
    /// A big-endian (NET_BYTEORDER) u16.
    var be16: UInt16? { payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
    /// A big-endian (NET_BYTEORDER) u32.
    var be32: UInt32? {
        payload.count >= 4 ? payload[0..<4].reduce(0) { $0 << 8 | UInt32($1) } : nil
    }
    /// A NUL-terminated string.
    var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }

    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkAttribute] {
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
    subscript(type type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }
}

/// Builds one netlink request: `nlmsghdr`, the 4-byte `nfgenmsg`, then attributes.
struct NetlinkRequest {
    private(set) var bytes: [UInt8] = []
    private var nestStarts: [Int] = []

    /// - Parameters:
    ///   - type: `(subsystem << 8) | command` for nfnetlink.
    ///   - flags: NLM_F_* flags.
    ///   - family: the nfgenmsg family (NFPROTO_*).
    init(type: UInt16, flags: UInt16, sequence: UInt32, family: UInt8, resourceID: UInt16 = 0) {
        append32(0)  // length, patched in `finished`
        append16(type)
        append16(flags)
        append32(sequence)
        append32(0)  // port id: the kernel fills it in
        bytes += [family, 0 /* NFNETLINK_V0 */, UInt8(resourceID >> 8), UInt8(resourceID & 0xFF)]
    }

    private mutating func append16(_ value: UInt16) { bytes += [UInt8(value & 0xFF), UInt8(value >> 8)] }
    private mutating func append32(_ value: UInt32) { for shift in [0, 8, 16, 24] { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }

    mutating func add(_ type: UInt16, _ payload: [UInt8], flags: UInt16 = 0) {
        append16(UInt16(4 + payload.count))
        append16(type | flags)
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    mutating func addU8(_ type: UInt16, _ value: UInt8) { add(type, [value]) }
    /// A u32 in network byte order, flagged NET_BYTEORDER as ipset requires.
    mutating func addBE32(_ type: UInt16, _ value: UInt32) {
        add(type, [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) }, flags: NetlinkAttribute.netByteOrderFlag)
    }
    /// A NUL-terminated string.
    mutating func addString(_ type: UInt16, _ value: String) { add(type, Array(value.utf8) + [0]) }

    mutating func beginNested(_ type: UInt16) {
        nestStarts.append(bytes.count)
        append16(0)
        append16(type | NetlinkAttribute.nestedFlag)
    }

    mutating func endNested() {
        let start = nestStarts.removeLast()
        let length = UInt16(bytes.count - start)
        bytes[start] = UInt8(length & 0xFF)
        bytes[start + 1] = UInt8(length >> 8)
    }

    /// The message with its length filled in.
    var finished: [UInt8] {
        var out = bytes
        let length = UInt32(out.count)
        for index in 0..<4 { out[index] = UInt8(truncatingIfNeeded: length >> UInt32(index * 8)) }
        return out
    }
}

/// One message of a netlink reply.
struct NetlinkReply: Equatable {
    let type: UInt16
    let flags: UInt16
    let sequence: UInt32
    /// After the nlmsghdr.
    let body: [UInt8]

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
    var nfAttributes: [NetlinkAttribute] { body.count > 4 ? NetlinkAttribute.parse(body[4...]) : [] }
    /// The nfgenmsg family.
    var family: UInt8? { body.first }

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
