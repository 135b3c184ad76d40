/// Reading what the kernel sends: messages out of a datagram and attributes out of a payload, each
/// checked against the bytes there are (a length below its header's, or past the end, throws).

/// One message of a netlink reply.
public struct NetlinkReply: Equatable, Sendable {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    /// After the nlmsghdr.
    public let body: [UInt8]

    public init(type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.body = body
    }

    static let noop: UInt16 = 1      // NLMSG_NOOP
    static let error: UInt16 = 2     // NLMSG_ERROR
    static let done: UInt16 = 3      // NLMSG_DONE
    static let overrun: UInt16 = 4   // NLMSG_OVERRUN
    static let multiFlag: UInt16 = 2 // NLM_F_MULTI

    /// For NLMSG_ERROR: the (positive) errno, 0 for an acknowledgement.
    var errorCode: Int32? {
        guard type == Self.error, body.count >= 4 else { return nil }
        let raw = UInt32(body[0]) | UInt32(body[1]) << 8 | UInt32(body[2]) << 16 | UInt32(body[3]) << 24
        return -Int32(bitPattern: raw)
    }

    /// The attributes after the 4-byte nfgenmsg.
    public var nfAttributes: [NetlinkAttribute] { attributes(afterHeader: NetfilterHeader.size) }
    /// The attributes after the 4-byte nfgenmsg; throws when they are not whole.
    public func netfilterAttributes() throws(NetlinkError) -> [NetlinkAttribute] {
        try checkedAttributes(afterHeader: NetfilterHeader.size)
    }
    /// The attributes after a family header of `size` bytes; throws when the body is shorter than the
    /// header or the attributes are not whole.
    public func checkedAttributes(afterHeader size: Int) throws(NetlinkError) -> [NetlinkAttribute] {
        guard body.count >= size else {
            throw AttributeReader.malformed("a message of type \(type) has \(body.count) bytes, fewer than its \(size)-byte header")
        }
        return try NetlinkAttribute.attributes(in: body[size...])
    }
    /// The attributes after a family header of `size` bytes (16 for ifinfomsg, 8 for ifaddrmsg, 12 for rtmsg).
    public func attributes(afterHeader size: Int) -> [NetlinkAttribute] {
        body.count > size ? NetlinkAttribute.parse(body[size...]) : []
    }
    /// The nfgenmsg family.
    public var family: UInt8? { body.first }

    /// The whole messages at the start of `bytes` (see `NetlinkFrame` for the checked reading).
    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkReply] {
        bytes.withUnsafeBytes { raw in
            var replies: [NetlinkReply] = []
            var frames = NetlinkFrames(raw)
            while let frame = try? frames.next() {
                replies.append(NetlinkReply(type: frame.type, flags: frame.flags, sequence: frame.sequence, body: Array(frame.body)))
            }
            return replies
        }
    }
}

/// One message inside a receive buffer, valid while the buffer is.
struct NetlinkFrame {
    let type: UInt16
    let flags: UInt16
    let sequence: UInt32
    let body: UnsafeRawBufferPointer
}

/// The messages of one datagram, one at a time, never past its end.
struct NetlinkFrames {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() throws(NetlinkError) -> NetlinkFrame? {
        let remaining = bytes.count - offset
        guard remaining > 0 else { return nil }
        guard remaining >= Netlink.messageHeaderSize else {
            throw AttributeReader.malformed("\(remaining) bytes at offset \(offset) are too few for a message header")
        }
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard length >= Netlink.messageHeaderSize, length <= remaining else {
            throw AttributeReader.malformed("the message at offset \(offset) says \(length) bytes, \(remaining) remain")
        }
        let frame = NetlinkFrame(type: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
                                 flags: bytes.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self),
                                 sequence: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
                                 body: UnsafeRawBufferPointer(rebasing: bytes[(offset + Netlink.messageHeaderSize)..<(offset + length)]))
        offset += min(Netlink.aligned(length), remaining)
        return frame
    }
}

/// Reads the attributes of a payload one at a time, never past its end.
public struct AttributeReader {
    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    /// The next attribute; nil at the end (trailing padding of fewer than 4 bytes counts as the end).
    public mutating func next() throws(NetlinkError) -> NetlinkAttribute? {
        guard let (type, payload) = try nextInPlace() else { return nil }
        return NetlinkAttribute(type: type, payload: Array(bytes[payload]))
    }

    /// The next attribute's type and where its payload lies in the bytes, without copying it (for a
    /// reader that only counts or skips); nil at the end, as `next`.
    public mutating func nextInPlace() throws(NetlinkError) -> (type: UInt16, payload: Range<Int>)? {
        let remaining = bytes.endIndex - offset
        guard remaining >= NetlinkAttribute.headerSize else {
            if remaining == 0 || bytes[offset...].allSatisfy({ $0 == 0 }) { return nil }
            throw Self.malformed("\(remaining) bytes at offset \(offset - bytes.startIndex) are too few for an attribute header")
        }
        let length = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
        let rawType = UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8
        guard length >= NetlinkAttribute.headerSize, length <= remaining else {
            throw Self.malformed("the attribute at offset \(offset - bytes.startIndex) says \(length) bytes, \(remaining) remain")
        }
        let payload = (offset + NetlinkAttribute.headerSize)..<(offset + length)
        offset += min(Netlink.aligned(length), remaining)
        return (rawType & ~(NetlinkAttribute.nestedFlag | NetlinkAttribute.netByteOrderFlag), payload)
    }

    static func malformed(_ why: String) -> NetlinkError {
        NetlinkError(operation: "reading", object: "netlink attributes", errno: nil, reason: "malformed reply: \(why)")
    }
}
