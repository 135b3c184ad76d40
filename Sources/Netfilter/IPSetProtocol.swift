internal import CNetfilterUAPI
internal import Glibc
import Netlink
import RandSNATCore
import SystemCalls

// The ipset protocol's numbers (linux/netfilter/ipset/ip_set.h), taken from the C header here and
// nowhere else: IPSet.swift speaks the protocol through these names and imports no C module.

/// `IPSET_ATTR_*` (linux/netfilter/ipset/ip_set.h), from the C header once. The numbering is shared
/// by the message's top level, its DATA/ADT nests and the address nest (IPADDR_*).
struct IPSetAttribute: NetlinkAttributeName {
    let type: UInt16
    static var protocolVersion: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_PROTOCOL)) }
    static var setName: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_SETNAME)) }
    static var typeName: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_TYPENAME)) }
    static var revision: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_REVISION)) }
    static var family: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_FAMILY)) }
    static var flags: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_FLAGS)) }
    static var data: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_DATA)) }
    static var adt: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_ADT)) }
    // Inside DATA:
    static var ip: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_IP)) }
    static var cidr: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_CIDR)) }
    static var comment: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_COMMENT)) }
    static var cadtFlags: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_CADT_FLAGS)) }
    static var references: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_REFERENCES)) }
    static var elements: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_ELEMENTS)) }
    // Inside IP:
    static var ipv4: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_IPADDR_IPV4)) }
    static var ipv6: IPSetAttribute { IPSetAttribute(type: cValue(IPSET_ATTR_IPADDR_IPV6)) }
}

/// An ipset command (`IPSET_CMD_*`), the ones randsnat sends.
struct IPSetCommand: Equatable {
    let value: UInt8
    init(_ command: ipset_cmd) { value = UInt8(command.rawValue) }
    static var type: IPSetCommand { IPSetCommand(IPSET_CMD_TYPE) }
    static var create: IPSetCommand { IPSetCommand(IPSET_CMD_CREATE) }
    static var destroy: IPSetCommand { IPSetCommand(IPSET_CMD_DESTROY) }
    static var list: IPSetCommand { IPSetCommand(IPSET_CMD_LIST) }
    static var add: IPSetCommand { IPSetCommand(IPSET_CMD_ADD) }
    static var delete: IPSetCommand { IPSetCommand(IPSET_CMD_DEL) }
}

extension NetfilterMessageType {
    /// An ipset command.
    static func ipset(_ command: IPSetCommand) -> NetfilterMessageType { NetfilterMessageType(.ipset, command: command.value) }
}

/// The rest of the ipset protocol randsnat uses: families and flags.
enum IPSetProtocol {
    /// The `nfgenmsg` family of a request about one family's sets.
    static func nfproto(_ family: Family) -> UInt8 { UInt8(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6) }
    /// The `nfgenmsg` family of a request about sets of any family.
    static var unspecifiedFamily: UInt8 { UInt8(NFPROTO_UNSPEC) }

    /// `IPSET_FLAG_*` (top-level FLAGS and the DATA nest's CADT_FLAGS).
    enum Flag {
        /// Accept an existing set or member (`-exist`).
        static var exist: UInt32 { UInt32(IPSET_FLAG_EXIST.rawValue) }
        /// The set keeps a comment per member.
        static var withComment: UInt32 { UInt32(IPSET_FLAG_WITH_COMMENT.rawValue) }
        /// A listing of the header only.
        static var listHeader: UInt32 { UInt32(IPSET_FLAG_LIST_HEADER.rawValue) }
        /// A listing of the names only.
        static var listSetName: UInt32 { UInt32(IPSET_FLAG_LIST_SETNAME.rawValue) }
    }
}

/// The parts of IPSet that use the C header's numbers and structs directly.
extension IPSet {
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

    /// The kernel's index of the set, which xt_set rules refer to (IP_SET_OP_GET_BYNAME over the
    /// ipset socket option, as iptables' set match does).
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
