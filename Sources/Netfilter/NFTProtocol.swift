internal import CNetfilterUAPI
import Netlink
import RandSNATCore

/// nf_tables' netlink names, in one place: its commands and the attribute names of each object
/// (linux/netfilter/nf_tables.h), each C constant cast once here. Requests and parsers name these,
/// never a number.
///
/// Wire layout of an nf_tables message (after the nlmsghdr; integers big-endian unless said):
/// ```
/// nfgenmsg   family:u8 version:u8 res_id:be16         (family NFPROTO_INET for randsnat's table)
/// table      NAME:str
/// chain      TABLE:str NAME:str [HOOK{HOOKNUM:be32 PRIORITY:be32} POLICY:be32 TYPE:str]
/// set        TABLE:str NAME:str FLAGS:be32 KEY_TYPE:be32 KEY_LEN:be32 ID:be32 USERDATA:udata
/// elements   TABLE:str SET:str ELEMENTS{ELEM{KEY{VALUE:bytes} FLAGS:be32 USERDATA:udata}...}
/// rule       TABLE:str CHAIN:str HANDLE:be64 EXPRESSIONS{ELEM{NAME:str DATA{...}}...} USERDATA:udata
/// udata      type:u8 len:u8 value (a comment: NUL-terminated, at most 128 bytes with the NUL)
/// ```
enum NFTCommand {
    static let newTable = message(NFT_MSG_NEWTABLE), getTable = message(NFT_MSG_GETTABLE), deleteTable = message(NFT_MSG_DELTABLE)
    static let newChain = message(NFT_MSG_NEWCHAIN), getChain = message(NFT_MSG_GETCHAIN), deleteChain = message(NFT_MSG_DELCHAIN)
    static let newRule = message(NFT_MSG_NEWRULE), getRule = message(NFT_MSG_GETRULE), deleteRule = message(NFT_MSG_DELRULE)
    static let newSet = message(NFT_MSG_NEWSET), getSet = message(NFT_MSG_GETSET), deleteSet = message(NFT_MSG_DELSET)
    static let newElements = message(NFT_MSG_NEWSETELEM), getElements = message(NFT_MSG_GETSETELEM)
    static let deleteElements = message(NFT_MSG_DELSETELEM)

    private static func message(_ command: nf_tables_msg_types) -> NetfilterMessageType { NetfilterMessageType(.nftables, command) }
}

/// nfgenmsg families (NFPROTO_*), cast once.
enum NFTFamily {
    static let unspecified = UInt8(NFPROTO_UNSPEC), inet = UInt8(NFPROTO_INET)
    static let ipv4 = UInt8(NFPROTO_IPV4), ipv6 = UInt8(NFPROTO_IPV6)
    /// nft's family keywords, by nfgenmsg family.
    static let names: [UInt8: String] = [ipv4: "ip", ipv6: "ip6", inet: "inet", UInt8(NFPROTO_BRIDGE): "bridge",
                                         UInt8(NFPROTO_ARP): "arp", UInt8(NFPROTO_NETDEV): "netdev"]
}

struct NFTTableAttribute: NetlinkAttributeName {
    let type: UInt16
    static let name = Self(type: cValue(NFTA_TABLE_NAME))
}

struct NFTChainAttribute: NetlinkAttributeName {
    let type: UInt16
    static let table = Self(type: cValue(NFTA_CHAIN_TABLE)), name = Self(type: cValue(NFTA_CHAIN_NAME))
    static let hook = Self(type: cValue(NFTA_CHAIN_HOOK)), policy = Self(type: cValue(NFTA_CHAIN_POLICY))
    static let chainType = Self(type: cValue(NFTA_CHAIN_TYPE))
    // Inside HOOK:
    static let hookNumber = Self(type: cValue(NFTA_HOOK_HOOKNUM)), hookPriority = Self(type: cValue(NFTA_HOOK_PRIORITY))
}

struct NFTSetAttribute: NetlinkAttributeName {
    let type: UInt16
    static let table = Self(type: cValue(NFTA_SET_TABLE)), name = Self(type: cValue(NFTA_SET_NAME))
    static let flags = Self(type: cValue(NFTA_SET_FLAGS)), keyType = Self(type: cValue(NFTA_SET_KEY_TYPE))
    static let keyLength = Self(type: cValue(NFTA_SET_KEY_LEN)), id = Self(type: cValue(NFTA_SET_ID))
    static let userData = Self(type: cValue(NFTA_SET_USERDATA))
}

/// A set's element list (the message) and one element in it.
struct NFTElementAttribute: NetlinkAttributeName {
    let type: UInt16
    static let listTable = Self(type: cValue(NFTA_SET_ELEM_LIST_TABLE)), listSet = Self(type: cValue(NFTA_SET_ELEM_LIST_SET))
    static let listElements = Self(type: cValue(NFTA_SET_ELEM_LIST_ELEMENTS))
    static let key = Self(type: cValue(NFTA_SET_ELEM_KEY)), flags = Self(type: cValue(NFTA_SET_ELEM_FLAGS))
    static let userData = Self(type: cValue(NFTA_SET_ELEM_USERDATA))
}

struct NFTRuleAttribute: NetlinkAttributeName {
    let type: UInt16
    static let table = Self(type: cValue(NFTA_RULE_TABLE)), chain = Self(type: cValue(NFTA_RULE_CHAIN))
    static let handle = Self(type: cValue(NFTA_RULE_HANDLE)), expressions = Self(type: cValue(NFTA_RULE_EXPRESSIONS))
    static let userData = Self(type: cValue(NFTA_RULE_USERDATA))
}

/// The names shared by every list and value: a list's element, an expression's name and data, data
/// values and verdicts.
struct NFTDataAttribute: NetlinkAttributeName {
    let type: UInt16
    static let listElement = Self(type: cValue(NFTA_LIST_ELEM))
    static let expressionName = Self(type: cValue(NFTA_EXPR_NAME)), expressionData = Self(type: cValue(NFTA_EXPR_DATA))
    static let value = Self(type: cValue(NFTA_DATA_VALUE)), verdict = Self(type: cValue(NFTA_DATA_VERDICT))
    // Inside VERDICT:
    static let verdictCode = Self(type: cValue(NFTA_VERDICT_CODE)), verdictChain = Self(type: cValue(NFTA_VERDICT_CHAIN))
}

/// The attribute names inside one expression's DATA, by expression (cast once here).
struct NFTExpressionAttribute: NetlinkAttributeName {
    let type: UInt16
    static let metaKey = Self(type: cValue(NFTA_META_KEY)), metaDestination = Self(type: cValue(NFTA_META_DREG))
    static let cmpSource = Self(type: cValue(NFTA_CMP_SREG)), cmpOperator = Self(type: cValue(NFTA_CMP_OP))
    static let cmpData = Self(type: cValue(NFTA_CMP_DATA))
    static let payloadBase = Self(type: cValue(NFTA_PAYLOAD_BASE)), payloadOffset = Self(type: cValue(NFTA_PAYLOAD_OFFSET))
    static let payloadLength = Self(type: cValue(NFTA_PAYLOAD_LEN)), payloadDestination = Self(type: cValue(NFTA_PAYLOAD_DREG))
    static let lookupSet = Self(type: cValue(NFTA_LOOKUP_SET)), lookupSource = Self(type: cValue(NFTA_LOOKUP_SREG))
    static let lookupFlags = Self(type: cValue(NFTA_LOOKUP_FLAGS))
    static let numgenDestination = Self(type: cValue(NFTA_NG_DREG)), numgenModulus = Self(type: cValue(NFTA_NG_MODULUS))
    static let numgenType = Self(type: cValue(NFTA_NG_TYPE))
    static let immediateDestination = Self(type: cValue(NFTA_IMMEDIATE_DREG)), immediateData = Self(type: cValue(NFTA_IMMEDIATE_DATA))
    static let masqFlags = Self(type: cValue(NFTA_MASQ_FLAGS))
    static let masqPortMin = Self(type: cValue(NFTA_MASQ_REG_PROTO_MIN)), masqPortMax = Self(type: cValue(NFTA_MASQ_REG_PROTO_MAX))
    static let natType = Self(type: cValue(NFTA_NAT_TYPE)), natFamily = Self(type: cValue(NFTA_NAT_FAMILY))
    static let natAddressMin = Self(type: cValue(NFTA_NAT_REG_ADDR_MIN)), natAddressMax = Self(type: cValue(NFTA_NAT_REG_ADDR_MAX))
    static let natPortMin = Self(type: cValue(NFTA_NAT_REG_PROTO_MIN)), natPortMax = Self(type: cValue(NFTA_NAT_REG_PROTO_MAX))
    static let natFlags = Self(type: cValue(NFTA_NAT_FLAGS))
    /// iptables-nft's `target` (an xtables target inside nf_tables).
    static let targetName = Self(type: cValue(NFTA_TARGET_NAME)), targetRevision = Self(type: cValue(NFTA_TARGET_REV))
    static let targetInfo = Self(type: cValue(NFTA_TARGET_INFO))
    /// iptables-nft's `match` (an xtables match inside nf_tables).
    static let matchName = Self(type: cValue(NFTA_MATCH_NAME)), matchRevision = Self(type: cValue(NFTA_MATCH_REV))
    static let matchInfo = Self(type: cValue(NFTA_MATCH_INFO))
    /// `bitwise` (read only: the shadowing check follows masks nft writes for prefixes and marks).
    static let bitwiseSource = Self(type: cValue(NFTA_BITWISE_SREG)), bitwiseDestination = Self(type: cValue(NFTA_BITWISE_DREG))
    static let bitwiseMask = Self(type: cValue(NFTA_BITWISE_MASK))
    // dynset: the datapath adding to or deleting from a set.
    static let dynsetSetName = Self(type: cValue(NFTA_DYNSET_SET_NAME)), dynsetOperation = Self(type: cValue(NFTA_DYNSET_OP))
    static let dynsetKeySource = Self(type: cValue(NFTA_DYNSET_SREG_KEY))
}

/// A verdict's code (NFTA_VERDICT_CODE, a be32 of a signed number): netfilter's NF_ACCEPT and
/// NF_DROP, or nf_tables' own (enum nft_verdicts), cast once. `NFTExpressionCodec` writes and reads
/// them, `NFTRuleDecoder` reads them.
struct NFTVerdictCode: Equatable {
    let code: Int32
    static let accept = Self(code: Int32(NF_ACCEPT)), drop = Self(code: Int32(NF_DROP))
    static let jump = Self(code: NFT_JUMP.rawValue), goto = Self(code: NFT_GOTO.rawValue), `return` = Self(code: NFT_RETURN.rawValue)

    private init(code: Int32) { self.code = code }
    /// The code as its attribute carries it.
    init(_ wire: UInt32) { code = Int32(bitPattern: wire) }
    var wire: UInt32 { UInt32(bitPattern: code) }
}

/// A `cmp` expression's operator (NFTA_CMP_OP, enum nft_cmp_ops), cast once.
struct NFTCmpOperator: Equatable {
    let wire: UInt32
    static let equal = Self(NFT_CMP_EQ.rawValue), notEqual = Self(NFT_CMP_NEQ.rawValue)

    init(_ wire: UInt32) { self.wire = wire }
}

/// A `meta` expression's key (NFTA_META_KEY, enum nft_meta_keys), cast once.
struct NFTMetaKey: Hashable, CustomStringConvertible {
    let wire: UInt32
    static let outInterface = Self(NFT_META_OIF.rawValue), outInterfaceName = Self(NFT_META_OIFNAME.rawValue)
    static let mark = Self(NFT_META_MARK.rawValue), nfproto = Self(NFT_META_NFPROTO.rawValue), l4proto = Self(NFT_META_L4PROTO.rawValue)

    init(_ wire: UInt32) { self.wire = wire }
    var description: String { "\(wire)" }
}

extension NFTExpression.MetaKey {
    /// The keys randsnat writes, as numbered on the wire.
    var key: NFTMetaKey {
        switch self {
        case .oifname: .outInterfaceName
        case .nfproto: .nfproto
        case .l4proto: .l4proto
        }
    }

    init?(_ key: NFTMetaKey) {
        guard let known = [Self.oifname, .nfproto, .l4proto].first(where: { $0.key == key }) else { return nil }
        self = known
    }
}

extension NFTExpression.Verdict {
    var code: NFTVerdictCode {
        switch self {
        case .return: .return
        case .jump: .jump
        case .drop: .drop
        case .accept: .accept
        }
    }
}

/// A `lookup` expression's flags (NFTA_LOOKUP_FLAGS, enum nft_lookup_flags), cast once.
struct NFTLookupFlags: OptionSet {
    let rawValue: UInt32
    static let inverted = Self(rawValue: NFT_LOOKUP_F_INV.rawValue)

    init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ wire: UInt32) { rawValue = wire }
}

/// Numbers nf_tables gives meaning to, cast once.
enum NFTConstant {
    static let setInterval = UInt32(NFT_SET_INTERVAL.rawValue), setTimeout = UInt32(NFT_SET_TIMEOUT.rawValue)
    /// `flags dynamic`: the datapath may add to or delete from the set (nft sets it for a set a
    /// dynset uses, so a listing reloaded with `nft -f` keeps it).
    static let setDynamic = UInt32(NFT_SET_EVAL.rawValue)
    static let elementIntervalEnd = UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue)
    /// A base chain's hook, and its policy (a verdict code).
    static let postrouting = UInt32(NF_INET_POST_ROUTING.rawValue), output = UInt32(NF_INET_LOCAL_OUT.rawValue)
    static let accept = NFTVerdictCode.accept.wire
    static let randomFully = UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY)
    /// `payload`'s base (NFTA_PAYLOAD_BASE), `numgen`'s type (NFTA_NG_TYPE), `nat`'s type (NFTA_NAT_TYPE).
    static let networkHeader = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue), numgenRandom = UInt32(NFT_NG_RANDOM.rawValue)
    static let transportHeader = UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)
    static let dynsetDelete = UInt32(NFT_DYNSET_OP_DELETE.rawValue)
    static let natSource = UInt32(NFT_NAT_SNAT.rawValue)
    /// User-data types of comments (libnftnl's NFTNL_UDATA_RULE_COMMENT, _SET_ELEM_COMMENT: 0;
    /// NFTNL_UDATA_SET_COMMENT: 7), as nft writes and reads them.
    static let ruleComment: UInt8 = 0, elementComment: UInt8 = 0, setComment: UInt8 = 7
}

/// Big-endian integers, as nf_tables' attributes carry them.
enum NFTBytes {
    static func be32(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) } }
    static func be64(_ value: UInt64) -> [UInt8] { stride(from: 56, through: 0, by: -8).map { UInt8(truncatingIfNeeded: value >> UInt64($0)) } }
    /// A big-endian u64 of exactly 8 bytes.
    static func be64(_ bytes: [UInt8]?) -> UInt64? {
        guard let bytes, bytes.count == 8 else { return nil }
        return bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// A user-data TLV list with one string (NUL-terminated), cut to `limit` bytes before the NUL.
    static func userData(type: UInt8, _ text: String, limit: Int) -> [UInt8] {
        let value = Array(Attachment.clip(text, to: limit).utf8) + [0]
        return [type, UInt8(value.count)] + value
    }

    /// The string of type `type` in user-data TLVs (type byte, length byte, value); "" when absent.
    static func userDataString(_ bytes: [UInt8], type: UInt8) -> String {
        var offset = 0
        while offset + 2 <= bytes.count {
            let length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { break }
            if bytes[offset] == type { return String(decoding: bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }, as: UTF8.self) }
            offset += 2 + length
        }
        return ""
    }
}

extension NetlinkRequest {
    /// A big-endian u32, as nf_tables reads it (without the NET_BYTEORDER flag, as nft writes it).
    mutating func addNFT32<Name: NetlinkAttributeName>(_ name: Name, _ value: UInt32) { add(name, NFTBytes.be32(value)) }
    mutating func addNFT64<Name: NetlinkAttributeName>(_ name: Name, _ value: UInt64) { add(name, NFTBytes.be64(value)) }
    /// A data attribute holding `NFTA_DATA_VALUE`.
    mutating func addValue<Name: NetlinkAttributeName>(_ name: Name, _ bytes: [UInt8]) {
        nested(name) { $0.add(NFTDataAttribute.value, bytes) }
    }
}
