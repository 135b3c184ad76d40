internal import CNetfilter
import Glibc
import Netlink
import SystemCalls
import RandSNATCore

/// `IPSET_ATTR_*` (linux/netfilter/ipset/ip_set.h), from the C header once. The numbering is shared
/// by the message's top level, its DATA/ADT nests and the address nest (IPADDR_*).
struct IPSetAttribute: NetlinkAttributeName {
    let type: UInt16
    static let protocolVersion = IPSetAttribute(type: cValue(IPSET_ATTR_PROTOCOL))
    static let setName = IPSetAttribute(type: cValue(IPSET_ATTR_SETNAME))
    static let typeName = IPSetAttribute(type: cValue(IPSET_ATTR_TYPENAME))
    static let revision = IPSetAttribute(type: cValue(IPSET_ATTR_REVISION))
    static let family = IPSetAttribute(type: cValue(IPSET_ATTR_FAMILY))
    static let flags = IPSetAttribute(type: cValue(IPSET_ATTR_FLAGS))
    static let data = IPSetAttribute(type: cValue(IPSET_ATTR_DATA))
    static let adt = IPSetAttribute(type: cValue(IPSET_ATTR_ADT))
    // Inside DATA:
    static let ip = IPSetAttribute(type: cValue(IPSET_ATTR_IP))
    static let cidr = IPSetAttribute(type: cValue(IPSET_ATTR_CIDR))
    static let comment = IPSetAttribute(type: cValue(IPSET_ATTR_COMMENT))
    static let cadtFlags = IPSetAttribute(type: cValue(IPSET_ATTR_CADT_FLAGS))
    static let references = IPSetAttribute(type: cValue(IPSET_ATTR_REFERENCES))
    static let elements = IPSetAttribute(type: cValue(IPSET_ATTR_ELEMENTS))
    // Inside IP:
    static let ipv4 = IPSetAttribute(type: cValue(IPSET_ATTR_IPADDR_IPV4))
    static let ipv6 = IPSetAttribute(type: cValue(IPSET_ATTR_IPADDR_IPV6))
}

extension NetfilterMessageType {
    /// An ipset command (`IPSET_CMD_*`).
    static func ipset(_ command: ipset_cmd) -> NetfilterMessageType { NetfilterMessageType(.ipset, command) }
}

/// ipset through its netlink protocol (nfnetlink subsystem IPSET), in process: no exec of `ipset`,
/// no libipset. Sets are per network namespace, like the nat table.
struct IPSet {
    enum Kind: String {
        /// The pods of a network: one address per member.
        case hashIP = "hash:ip"
        /// The pods' subnets, matched as `dst`.
        case hashNet = "hash:net"
    }

    /// The header of a set: enough to tell whether rules use it.
    struct Header: Equatable {
        let name: String
        let type: String
        let family: Family
        let references: UInt32
        /// The number of members (IPSET_ATTR_ELEMENTS; kernels before 4.17 do not send it).
        let elements: UInt32?
    }

    /// One member: an address (with a prefix length in a hash:net set) and its comment.
    struct Entry: Equatable {
        let address: IPAddress
        let prefix: Int?
        let comment: String

        /// The address, with its prefix length in a hash:net set.
        var text: String { "\(address)\(prefix.map { "/\($0)" } ?? "")" }
    }

    let socket: NetlinkSocket
    /// The bytes a member's comment holds (the kernel's IPSET_MAX_COMMENT_SIZE).
    static let commentLimit = 255
    /// ipset protocol 6 is understood by every kernel that has comments (3.x and later).
    static let protocolVersion: UInt8 = 6

    private func request(_ command: ipset_cmd, flags: NetlinkFlags = [.request, .ack], family: Family? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(.ipset(command), flags: flags, sequence: socket.nextSequence(),
                                     header: NetfilterHeader(family: family.map(Self.nfproto) ?? UInt8(NFPROTO_UNSPEC)))
        request.addU8(IPSetAttribute.protocolVersion, Self.protocolVersion)
        return request
    }

    private func exchange(_ message: NetlinkRequest, operation: String, object: String,
                          describe: (Int32) -> String = IPSet.describe) throws(NetfilterError) -> [NetlinkReply] {
        try socket.netfilterExchange(message, operation: operation, object: object, describe: describe)
    }

    static func nfproto(_ family: Family) -> UInt8 { UInt8(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6) }

    /// ipset's own error numbers (4096 and up) in words; the rest as the C library says them.
    static func describe(_ code: Int32) -> String {
        switch code {
        case Int32(ENOENT): "the set does not exist"
        case Int32(IPSET_ERR_PROTOCOL.rawValue): "the kernel does not speak ipset protocol \(protocolVersion)"
        case Int32(IPSET_ERR_FIND_TYPE.rawValue): "the kernel lacks this set type (is ip_set_hash_* available?)"
        case Int32(IPSET_ERR_MAX_SETS.rawValue): "the kernel's limit of sets (max_sets) is reached"
        case Int32(IPSET_ERR_BUSY.rawValue): "the set is in use by a rule"
        case Int32(IPSET_ERR_EXIST_SETNAME2.rawValue), Int32(IPSET_ERR_TYPE_MISMATCH.rawValue):
            "a set of that name exists with another type; remove it or rename the network"
        case Int32(IPSET_ERR_EXIST.rawValue): "the element already exists"
        case Int32(IPSET_ERR_INVALID_CIDR.rawValue): "invalid prefix length"
        case Int32(IPSET_ERR_INVALID_FAMILY.rawValue): "address family does not match the set"
        case Int32(IPSET_ERR_REFERENCED.rawValue): "the set is referenced by a rule and cannot be destroyed"
        case Int32(IPSET_ERR_COMMENT.rawValue): "the set was created without comment support"
        // IPSET_ERR_HASH_FULL (ip_set_hash.h) is the first type-specific number, IPSET_ERR_TYPE_SPECIFIC itself.
        case Int32(IPSET_ERR_TYPE_SPECIFIC.rawValue): "the set is full (maxelem reached)"
        default: Errno(code).message
        }
    }

    /// The newest revision of `kind` this kernel has (every revision randsnat needs has comments).
    func newestRevision(_ kind: Kind, family: Family) throws(NetfilterError) -> UInt8 {
        var message = request(IPSET_CMD_TYPE, family: family)
        message.addString(IPSetAttribute.typeName, kind.rawValue)
        message.addU8(IPSetAttribute.family, Self.nfproto(family))
        let operation = "asking the kernel for the newest revision of ipset type"
        let replies = try exchange(message, operation: operation, object: kind.rawValue)
        guard let reply = replies.first, let revision = try Self.attributes(reply)[IPSetAttribute.revision]?.u8 else {
            throw .netlink(operation: operation, object: kind.rawValue, errno: 0, reason: "the kernel sent no revision")
        }
        return revision
    }

    /// Creates the set with comment support; an existing set of the same type is left as it is.
    func create(_ name: String, kind: Kind, family: Family) throws(NetfilterError) {
        let revision = try newestRevision(kind, family: family)
        var message = request(IPSET_CMD_CREATE, family: family)
        message.addString(IPSetAttribute.setName, name)
        message.addString(IPSetAttribute.typeName, kind.rawValue)
        message.addU8(IPSetAttribute.revision, revision)
        message.addU8(IPSetAttribute.family, Self.nfproto(family))
        // With EXIST the kernel accepts an existing set of the same type and options and answers
        // EEXIST only for a different one.
        message.addBE32(IPSetAttribute.flags, UInt32(IPSET_FLAG_EXIST.rawValue))
        message.nested(IPSetAttribute.data) { $0.addBE32(IPSetAttribute.cadtFlags, UInt32(IPSET_FLAG_WITH_COMMENT.rawValue)) }
        _ = try exchange(message, operation: "creating ipset", object: name) { code in
            code == EEXIST ? "a set of that name exists with another type or options; destroy it (ipset destroy \(name)) or rename the network" : Self.describe(code)
        }
    }

    /// Destroys the set; a set that does not exist counts as destroyed.
    func destroy(_ name: String) throws(NetfilterError) {
        var message = request(IPSET_CMD_DESTROY)
        message.addString(IPSetAttribute.setName, name)
        do {
            _ = try exchange(message, operation: "destroying ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
        }
    }

    /// The set's header, or nil when it does not exist. One small netlink round trip.
    func header(_ name: String) throws(NetfilterError) -> Header? {
        var message = request(IPSET_CMD_LIST, flags: [.request, .ack, .dump])
        message.addString(IPSetAttribute.setName, name)
        message.addBE32(IPSetAttribute.flags, UInt32(IPSET_FLAG_LIST_HEADER.rawValue))
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "listing the header of ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
            return nil
        }
        guard let reply = replies.first else { return nil }
        let attributes = try Self.attributes(reply)
        let data = try Self.nested(attributes[IPSetAttribute.data])
        return Header(name: attributes[IPSetAttribute.setName]?.string ?? name,
                      type: attributes[IPSetAttribute.typeName]?.string ?? "",
                      family: attributes[IPSetAttribute.family]?.u8 == UInt8(NFPROTO_IPV6) ? .ipv6 : .ipv4,
                      references: data[IPSetAttribute.references]?.be32 ?? 0,
                      elements: data[IPSetAttribute.elements]?.be32)
    }

    /// The names of all sets in this network namespace.
    func names() throws(NetfilterError) -> [String] {
        var message = request(IPSET_CMD_LIST, flags: [.request, .ack, .dump])
        message.addBE32(IPSetAttribute.flags, UInt32(IPSET_FLAG_LIST_SETNAME.rawValue))
        let replies = try exchange(message, operation: "listing ipsets", object: "(all of this network namespace)")
        var names: [String] = []
        for reply in replies {
            if let name = try Self.attributes(reply)[IPSetAttribute.setName]?.string, !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The set's members; nil when the set does not exist.
    func entries(_ name: String) throws(NetfilterError) -> [Entry]? {
        var message = request(IPSET_CMD_LIST, flags: [.request, .ack, .dump])
        message.addString(IPSetAttribute.setName, name)
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "listing the members of ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
            return nil
        }
        var entries: [Entry] = []
        for reply in replies { entries += try Self.entries(in: reply) }
        return entries
    }

    /// The members in one message of a set's listing (IPSET_ATTR_ADT holding one DATA per member).
    static func entries(in reply: NetlinkReply) throws(NetfilterError) -> [Entry] {
        var entries: [Entry] = []
        for data in try nested(attributes(reply)[IPSetAttribute.adt]) where data.is(IPSetAttribute.data) {
            let fields = try nested(data)
            guard let address = try address(fields[IPSetAttribute.ip]) else { continue }
            entries.append(Entry(address: address,
                                 prefix: fields[IPSetAttribute.cidr]?.u8.map(Int.init),
                                 comment: fields[IPSetAttribute.comment]?.string ?? ""))
        }
        return entries
    }

    static func address(_ attribute: NetlinkAttribute?) throws(NetfilterError) -> IPAddress? {
        for inner in try nested(attribute) {
            if inner.is(IPSetAttribute.ipv4) { return IPAddress(family: .ipv4, bytes: inner.payload) }
            if inner.is(IPSetAttribute.ipv6) { return IPAddress(family: .ipv6, bytes: inner.payload) }
        }
        return nil
    }

    /// A reply's attributes, checked: a malformed reply fails instead of reading as "no member".
    static func attributes(_ reply: NetlinkReply) throws(NetfilterError) -> [NetlinkAttribute] {
        do { return try reply.netfilterAttributes() } catch { throw NetfilterError(error) }
    }

    /// A nested attribute's attributes, checked; none when it is absent.
    static func nested(_ attribute: NetlinkAttribute?) throws(NetfilterError) -> [NetlinkAttribute] {
        do { return try attribute?.nestedAttributes() ?? [] } catch { throw NetfilterError(error) }
    }

    /// Adds a member, or replaces the comment of an existing one (`-exist`), so that a pod that
    /// takes over an address also takes over its member.
    func add(_ name: String, _ entry: Entry) throws(NetfilterError) {
        try modify(IPSET_CMD_ADD, name, entry, operation: "adding \(entry.text) to ipset")
    }

    /// Removes a member; a member that is not there counts as removed.
    func delete(_ name: String, _ entry: Entry) throws(NetfilterError) {
        do {
            try modify(IPSET_CMD_DEL, name, entry, operation: "removing \(entry.text) from ipset")
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
        }
    }

    private func modify(_ command: ipset_cmd, _ name: String, _ entry: Entry, operation: String) throws(NetfilterError) {
        var message = request(command, family: entry.address.family)
        message.addString(IPSetAttribute.setName, name)
        message.addBE32(IPSetAttribute.flags, UInt32(IPSET_FLAG_EXIST.rawValue))
        message.nested(IPSetAttribute.data) { data in
            Self.addAddress(&data, IPSetAttribute.ip, entry.address)
            if let prefix = entry.prefix { data.addU8(IPSetAttribute.cidr, UInt8(prefix)) }
            if command == IPSET_CMD_ADD, !entry.comment.isEmpty { data.addString(IPSetAttribute.comment, entry.comment) }
        }
        _ = try exchange(message, operation: operation, object: name)
    }

    static func addAddress(_ message: inout NetlinkRequest, _ name: IPSetAttribute, _ address: IPAddress) {
        message.nested(name) {
            $0.add(address.family == .ipv4 ? IPSetAttribute.ipv4 : IPSetAttribute.ipv6, address.bytes, flags: NetlinkAttribute.netByteOrderFlag)
        }
    }

    /// The kernel's index of the set, which xt_set rules refer to (IP_SET_OP_GET_BYNAME, as
    /// iptables' set match does).
    static func index(of name: String) throws(NetfilterError) -> UInt16 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else { throw NetfilterError(SystemCallError("opening", "a raw socket for the ipset index of \(name)")) }
        defer { close(fd) }
        var request = ip_set_req_get_set()
        request.op = UInt32(IP_SET_OP_GET_BYNAME)
        request.version = UInt32(protocolVersion)
        withUnsafeMutableBytes(of: &request.set.name) { buffer in
            for (offset, byte) in name.utf8.prefix(Int(IPSET_MAXNAMELEN) - 1).enumerated() { buffer[offset] = byte }
        }
        var length = socklen_t(MemoryLayout<ip_set_req_get_set>.size)
        guard retryingOnInterrupt({ getsockopt(fd, Int32(SOL_IP), SO_IP_SET, &request, &length) }) == 0 else {
            throw NetfilterError(SystemCallError("asking the kernel (getsockopt SO_IP_SET) for the index of ipset", name))
        }
        guard request.set.index != UInt16(IPSET_INVALID_ID) else { throw .setUnknown(name: name) }
        return request.set.index
    }
}
