import Netlink
import SystemCalls
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

        /// The address, with its prefix length in a hash:net set.
        var text: String { "\(address)\(prefix.map { "/\($0)" } ?? "")" }
    }

    let socket: NetlinkSocket
    /// The bytes a member's comment holds (the kernel's IPSET_MAX_COMMENT_SIZE).
    static let commentLimit = 255
    /// ipset protocol 6 is understood by every kernel that has comments (3.x and later).
    static let protocolVersion: UInt8 = 6

    private func request(_ command: IPSetCommand, flags: NetlinkFlags = [.request, .ack], family: Family? = nil) -> NetlinkRequest {
        var request = NetlinkRequest(.ipset(command), flags: flags, sequence: socket.nextSequence(),
                                     header: NetfilterHeader(family: family.map(IPSetProtocol.nfproto) ?? IPSetProtocol.unspecifiedFamily))
        request.addU8(IPSetAttribute.protocolVersion, Self.protocolVersion)
        return request
    }

    private func exchange(_ message: NetlinkRequest, operation: String, object: String,
                          describe: (Int32) -> String = IPSet.describe) throws(NetfilterError) -> [NetlinkReply] {
        try socket.netfilterExchange(message, operation: operation, object: object, describe: describe)
    }

    /// The newest revision of `kind` this kernel has (every revision randsnat needs has comments).
    func newestRevision(_ kind: Kind, family: Family) throws(NetfilterError) -> UInt8 {
        var message = request(.type, family: family)
        message.addString(IPSetAttribute.typeName, kind.rawValue)
        message.addU8(IPSetAttribute.family, IPSetProtocol.nfproto(family))
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
        var message = request(.create, family: family)
        message.addString(IPSetAttribute.setName, name)
        message.addString(IPSetAttribute.typeName, kind.rawValue)
        message.addU8(IPSetAttribute.revision, revision)
        message.addU8(IPSetAttribute.family, IPSetProtocol.nfproto(family))
        // With EXIST the kernel accepts an existing set of the same type and options and answers
        // EEXIST only for a different one.
        message.addBE32(IPSetAttribute.flags, IPSetProtocol.Flag.exist)
        message.nested(IPSetAttribute.data) { $0.addBE32(IPSetAttribute.cadtFlags, IPSetProtocol.Flag.withComment) }
        _ = try exchange(message, operation: "creating ipset", object: name) { code in
            code == Errno.exists.code ? "a set of that name exists with another type or options; destroy it (ipset destroy \(name)) or rename the network" : IPSet.describe(code)
        }
    }

    /// Destroys the set; a set that does not exist counts as destroyed.
    func destroy(_ name: String) throws(NetfilterError) {
        var message = request(.destroy)
        message.addString(IPSetAttribute.setName, name)
        do {
            _ = try exchange(message, operation: "destroying ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == Errno.notFound.code {
        }
    }

    /// The set's header, or nil when it does not exist. One small netlink round trip.
    func header(_ name: String) throws(NetfilterError) -> Header? {
        var message = request(.list, flags: [.request, .ack, .dump])
        message.addString(IPSetAttribute.setName, name)
        message.addBE32(IPSetAttribute.flags, IPSetProtocol.Flag.listHeader)
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "listing the header of ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == Errno.notFound.code {
            return nil
        }
        guard let reply = replies.first else { return nil }
        let attributes = try Self.attributes(reply)
        let data = try Self.nested(attributes[IPSetAttribute.data])
        return Header(name: attributes[IPSetAttribute.setName]?.string ?? name,
                      type: attributes[IPSetAttribute.typeName]?.string ?? "",
                      family: attributes[IPSetAttribute.family]?.u8 == IPSetProtocol.nfproto(.ipv6) ? .ipv6 : .ipv4,
                      references: data[IPSetAttribute.references]?.be32 ?? 0,
                      elements: data[IPSetAttribute.elements]?.be32)
    }

    /// The names of all sets in this network namespace.
    func names() throws(NetfilterError) -> [String] {
        var message = request(.list, flags: [.request, .ack, .dump])
        message.addBE32(IPSetAttribute.flags, IPSetProtocol.Flag.listSetName)
        let replies = try exchange(message, operation: "listing ipsets", object: "(all of this network namespace)")
        var names: [String] = []
        for reply in replies {
            if let name = try Self.attributes(reply)[IPSetAttribute.setName]?.string, !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The set's members; nil when the set does not exist.
    func entries(_ name: String) throws(NetfilterError) -> [Entry]? {
        var message = request(.list, flags: [.request, .ack, .dump])
        message.addString(IPSetAttribute.setName, name)
        let replies: [NetlinkReply]
        do {
            replies = try exchange(message, operation: "listing the members of ipset", object: name)
        } catch NetfilterError.netlink(_, _, let code, _) where code == Errno.notFound.code {
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
        try modify(.add, name, entry, operation: "adding \(entry.text) to ipset")
    }

    /// Removes a member; a member that is not there counts as removed.
    func delete(_ name: String, _ entry: Entry) throws(NetfilterError) {
        do {
            try modify(.delete, name, entry, operation: "removing \(entry.text) from ipset")
        } catch NetfilterError.netlink(_, _, let code, _) where code == Errno.notFound.code {
        }
    }

    private func modify(_ command: IPSetCommand, _ name: String, _ entry: Entry, operation: String) throws(NetfilterError) {
        var message = request(command, family: entry.address.family)
        message.addString(IPSetAttribute.setName, name)
        message.addBE32(IPSetAttribute.flags, IPSetProtocol.Flag.exist)
        message.nested(IPSetAttribute.data) { data in
            Self.addAddress(&data, IPSetAttribute.ip, entry.address)
            if let prefix = entry.prefix { data.addU8(IPSetAttribute.cidr, UInt8(prefix)) }
            if command == .add, !entry.comment.isEmpty { data.addString(IPSetAttribute.comment, entry.comment) }
        }
        _ = try exchange(message, operation: operation, object: name)
    }

    static func addAddress(_ message: inout NetlinkRequest, _ name: IPSetAttribute, _ address: IPAddress) {
        message.nested(name) {
            $0.add(address.family == .ipv4 ? IPSetAttribute.ipv4 : IPSetAttribute.ipv6, address.bytes, flags: NetlinkAttribute.netByteOrderFlag)
        }
    }
}
