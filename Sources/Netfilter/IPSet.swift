internal import CNetfilter
import Glibc
import Netlink
import RandSNATCore

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
    }

    let socket: NetlinkSocket
    /// The bytes a member's comment holds (the kernel's IPSET_MAX_COMMENT_SIZE).
    static let commentLimit = 255
    /// ipset protocol 6 is understood by every kernel that has comments (3.x and later).
    static let protocolVersion: UInt8 = 6

    private func request(_ command: ipset_cmd, flags: Int32 = NLM_F_REQUEST | NLM_F_ACK, family: Family? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(type: UInt16(NFNL_SUBSYS_IPSET << 8) | UInt16(command.rawValue),
                                     flags: UInt16(flags), sequence: socket.nextSequence(),
                                     family: family.map(Self.nfproto) ?? UInt8(NFPROTO_UNSPEC))
        request.addU8(UInt16(IPSET_ATTR_PROTOCOL), Self.protocolVersion)
        return request
    }

    private func exchange(_ message: NetlinkRequest, operation: String, object: String,
                          describe: (Int32) -> String = IPSet.describe) throws(NetfilterError) -> [NetlinkReply] {
        try socket.netfilterExchange(message, operation: operation, object: object, describe: describe)
    }

    static func nfproto(_ family: Family) -> UInt8 { UInt8(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6) }

    /// ipset's own error numbers (4096 and up) in words; the rest through strerror.
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
        case Int32(IPSET_ERR_TYPE_SPECIFIC.rawValue) + 1: "the set is full (maxelem reached)"
        default: String(cString: strerror(code))
        }
    }

    /// The newest revision of `kind` this kernel has (every revision randsnat needs has comments).
    func newestRevision(_ kind: Kind, family: Family) throws(NetfilterError) -> UInt8 {
        var message = request(IPSET_CMD_TYPE, family: family)
        message.addString(UInt16(IPSET_ATTR_TYPENAME), kind.rawValue)
        message.addU8(UInt16(IPSET_ATTR_FAMILY), Self.nfproto(family))
        let replies = try exchange(message, operation: "ipset type query", object: kind.rawValue)
        guard let revision = replies.first?.nfAttributes[type: UInt16(IPSET_ATTR_REVISION)]?.u8 else {
            throw .netlink(operation: "ipset type query", object: kind.rawValue, errno: 0, reason: "the kernel sent no revision")
        }
        return revision
    }

    /// Creates the set with comment support; an existing set of the same type is left as it is.
    func create(_ name: String, kind: Kind, family: Family) throws(NetfilterError) {
        let revision = try newestRevision(kind, family: family)
        var message = request(IPSET_CMD_CREATE, family: family)
        message.addString(UInt16(IPSET_ATTR_SETNAME), name)
        message.addString(UInt16(IPSET_ATTR_TYPENAME), kind.rawValue)
        message.addU8(UInt16(IPSET_ATTR_REVISION), revision)
        message.addU8(UInt16(IPSET_ATTR_FAMILY), Self.nfproto(family))
        // With EXIST the kernel accepts an existing set of the same type and options and answers
        // EEXIST only for a different one.
        message.addBE32(UInt16(IPSET_ATTR_FLAGS), UInt32(IPSET_FLAG_EXIST.rawValue))
        message.beginNested(UInt16(IPSET_ATTR_DATA))
        message.addBE32(UInt16(IPSET_ATTR_CADT_FLAGS), UInt32(IPSET_FLAG_WITH_COMMENT.rawValue))
        message.endNested()
        _ = try exchange(message, operation: "ipset create", object: name) { code in
            code == EEXIST ? "a set of that name exists with another type or options; destroy it (ipset destroy \(name)) or rename the network" : Self.describe(code)
        }
    }

    /// Destroys the set; a set that does not exist counts as destroyed.
    func destroy(_ name: String) throws(NetfilterError) {
        var message = request(IPSET_CMD_DESTROY)
        message.addString(UInt16(IPSET_ATTR_SETNAME), name)
        do {
            _ = try exchange(message, operation: "ipset destroy", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
        }
    }

    /// The set's header, or nil when it does not exist. One small netlink round trip.
    func header(_ name: String) throws(NetfilterError) -> Header? {
        var message = request(IPSET_CMD_LIST, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
        message.addString(UInt16(IPSET_ATTR_SETNAME), name)
        message.addBE32(UInt16(IPSET_ATTR_FLAGS), UInt32(IPSET_FLAG_LIST_HEADER.rawValue))
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "ipset list", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
            return nil
        }
        guard let attributes = replies.first?.nfAttributes else { return nil }
        let data = attributes[type: UInt16(IPSET_ATTR_DATA)]?.nested ?? []
        return Header(name: attributes[type: UInt16(IPSET_ATTR_SETNAME)]?.string ?? name,
                      type: attributes[type: UInt16(IPSET_ATTR_TYPENAME)]?.string ?? "",
                      family: attributes[type: UInt16(IPSET_ATTR_FAMILY)]?.u8 == UInt8(NFPROTO_IPV6) ? .ipv6 : .ipv4,
                      references: data[type: UInt16(IPSET_ATTR_REFERENCES)]?.be32 ?? 0,
                      elements: data[type: UInt16(IPSET_ATTR_ELEMENTS)]?.be32)
    }

    /// The names of all sets in this network namespace.
    func names() throws(NetfilterError) -> [String] {
        var message = request(IPSET_CMD_LIST, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
        message.addBE32(UInt16(IPSET_ATTR_FLAGS), UInt32(IPSET_FLAG_LIST_SETNAME.rawValue))
        let replies = try exchange(message, operation: "ipset list", object: "all sets")
        var names: [String] = []
        for reply in replies {
            if let name = reply.nfAttributes[type: UInt16(IPSET_ATTR_SETNAME)]?.string, !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The set's members; nil when the set does not exist.
    func entries(_ name: String) throws(NetfilterError) -> [Entry]? {
        var message = request(IPSET_CMD_LIST, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)
        message.addString(UInt16(IPSET_ATTR_SETNAME), name)
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "ipset list", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
            return nil
        }
        var entries: [Entry] = []
        for reply in replies {
            guard let adt = reply.nfAttributes[type: UInt16(IPSET_ATTR_ADT)] else { continue }
            for data in adt.nested where data.type == UInt16(IPSET_ATTR_DATA) {
                let fields = data.nested
                guard let address = fields[type: UInt16(IPSET_ATTR_IP)].flatMap(Self.address) else { continue }
                entries.append(Entry(address: address,
                                     prefix: fields[type: UInt16(IPSET_ATTR_CIDR)]?.u8.map(Int.init),
                                     comment: fields[type: UInt16(IPSET_ATTR_COMMENT)]?.string ?? ""))
            }
        }
        return entries
    }

    static func address(_ attribute: NetlinkAttribute) -> IPAddress? {
        for inner in attribute.nested {
            if inner.type == UInt16(IPSET_ATTR_IPADDR_IPV4) { return IPAddress(family: .ipv4, bytes: inner.payload) }
            if inner.type == UInt16(IPSET_ATTR_IPADDR_IPV6) { return IPAddress(family: .ipv6, bytes: inner.payload) }
        }
        return nil
    }

    /// Adds a member, or replaces the comment of an existing one (`-exist`), so that a pod that
    /// takes over an address also takes over its member.
    func add(_ name: String, _ entry: Entry) throws(NetfilterError) {
        try modify(IPSET_CMD_ADD, name, entry, operation: "ipset add")
    }

    /// Removes a member; a member that is not there counts as removed.
    func delete(_ name: String, _ entry: Entry) throws(NetfilterError) {
        do {
            try modify(IPSET_CMD_DEL, name, entry, operation: "ipset del")
        } catch NetfilterError.netlink(_, _, let code, _) where code == ENOENT {
        }
    }

    private func modify(_ command: ipset_cmd, _ name: String, _ entry: Entry, operation: String) throws(NetfilterError) {
        var message = request(command, family: entry.address.family)
        message.addString(UInt16(IPSET_ATTR_SETNAME), name)
        message.addBE32(UInt16(IPSET_ATTR_FLAGS), UInt32(IPSET_FLAG_EXIST.rawValue))
        message.beginNested(UInt16(IPSET_ATTR_DATA))
        Self.addAddress(&message, UInt16(IPSET_ATTR_IP), entry.address)
        if let prefix = entry.prefix { message.addU8(UInt16(IPSET_ATTR_CIDR), UInt8(prefix)) }
        if command == IPSET_CMD_ADD, !entry.comment.isEmpty { message.addString(UInt16(IPSET_ATTR_COMMENT), entry.comment) }
        message.endNested()
        let object = "\(entry.address)\(entry.prefix.map { "/\($0)" } ?? "") in \(name)"
        _ = try exchange(message, operation: operation, object: object)
    }

    static func addAddress(_ message: inout NetlinkRequest, _ type: UInt16, _ address: IPAddress) {
        message.beginNested(type)
        message.add(UInt16(address.family == .ipv4 ? IPSET_ATTR_IPADDR_IPV4 : IPSET_ATTR_IPADDR_IPV6), address.bytes,
                    flags: NetlinkAttribute.netByteOrderFlag)
        message.endNested()
    }

    /// The kernel's index of the set, which xt_set rules refer to (IP_SET_OP_GET_BYNAME, as
    /// iptables' set match does).
    static func index(of name: String) throws(NetfilterError) -> UInt16 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else {
            throw .netlink(operation: "open", object: "raw socket for the ipset index of \(name)", errno: errno, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var request = ip_set_req_get_set()
        request.op = UInt32(IP_SET_OP_GET_BYNAME)
        request.version = UInt32(protocolVersion)
        withUnsafeMutableBytes(of: &request.set.name) { buffer in
            for (offset, byte) in name.utf8.prefix(Int(IPSET_MAXNAMELEN) - 1).enumerated() { buffer[offset] = byte }
        }
        var length = socklen_t(MemoryLayout<ip_set_req_get_set>.size)
        guard getsockopt(fd, Int32(SOL_IP), SO_IP_SET, &request, &length) == 0 else {
            throw .netlink(operation: "getsockopt(SO_IP_SET)", object: name, errno: errno, reason: String(cString: strerror(errno)))
        }
        guard request.set.index != UInt16(IPSET_INVALID_ID) else { throw .setUnknown(name: name) }
        return request.set.index
    }
}
