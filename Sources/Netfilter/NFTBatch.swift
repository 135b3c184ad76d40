internal import CNFTables
internal import CNetfilterUAPI
internal import Glibc
import RandSNATCore

/// One nf_tables transaction, built with libnftnl and sent with libmnl: the kernel applies all of its
/// messages or none (a batch between NFNL_MSG_BATCH_BEGIN and _END).
///
/// This is the only file that calls libnftnl and libmnl; it turns randsnat's plain descriptions
/// (`NFTRule`, `NFTInterval`) into libnftnl objects and those into netlink messages.
struct NFTBatch {
    private var messages: [[UInt8]] = []
    /// What each message does, by position, for error messages.
    private var purposes: [String] = []
    private var nextSetID: UInt32 = 1

    static let family = UInt16(NFPROTO_INET)

    /// Appends one message whose payload `fill` writes (from a libnftnl object).
    private mutating func append(_ type: UInt32, flags: UInt16, _ purpose: String, capacity: Int = 8192,
                                 _ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let header = nftnl_nlmsg_build_hdr(raw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt16(type), Self.family,
                                               flags | UInt16(NLM_F_ACK), 0)!
            fill(header)
            return Int(header.pointee.nlmsg_len)
        }
        messages.append(Array(buffer.prefix(length)))
        purposes.append(purpose)
    }

    // MARK: tables and chains

    mutating func addTable(_ name: String) {
        let table = Self.table(name)
        defer { nftnl_table_free(table) }
        append(NFT_MSG_NEWTABLE.rawValue, flags: UInt16(NLM_F_CREATE), "creating table inet \(name)") { nftnl_table_nlmsg_build_payload($0, table) }
    }

    mutating func deleteTable(_ name: String) {
        let table = Self.table(name)
        defer { nftnl_table_free(table) }
        append(NFT_MSG_DELTABLE.rawValue, flags: 0, "deleting table inet \(name)") { nftnl_table_nlmsg_build_payload($0, table) }
    }

    private static func table(_ name: String) -> OpaquePointer {
        let table = nftnl_table_alloc()!
        nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), name)
        nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue), UInt32(family))
        return table
    }

    private static func chain(_ table: String, _ name: String) -> OpaquePointer {
        let chain = nftnl_chain_alloc()!
        nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
        nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), name)
        nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_FAMILY.rawValue), UInt32(family))
        return chain
    }

    /// A regular chain, or with `natHook` the base chain `type nat hook postrouting priority srcnat`.
    mutating func addChain(_ table: String, _ name: String, natHook: Bool = false) {
        let chain = Self.chain(table, name)
        defer { nftnl_chain_free(chain) }
        if natHook {
            nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TYPE.rawValue), "nat")
            nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), UInt32(NF_INET_POST_ROUTING.rawValue))
            nftnl_chain_set_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue), 100)  // NF_IP_PRI_NAT_SRC: "srcnat"
            nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
        }
        append(NFT_MSG_NEWCHAIN.rawValue, flags: UInt16(NLM_F_CREATE), "creating chain \(name)") { nftnl_chain_nlmsg_build_payload($0, chain) }
    }

    mutating func deleteChain(_ table: String, _ name: String) {
        let chain = Self.chain(table, name)
        defer { nftnl_chain_free(chain) }
        append(NFT_MSG_DELCHAIN.rawValue, flags: 0, "deleting chain \(name)") { nftnl_chain_nlmsg_build_payload($0, chain) }
    }

    // MARK: rules

    /// Removes every rule of the chain.
    mutating func flushChain(_ table: String, _ chain: String) {
        let rule = Self.rule(table, chain)
        defer { nftnl_rule_free(rule) }
        append(NFT_MSG_DELRULE.rawValue, flags: 0, "flushing chain \(chain)") { nftnl_rule_nlmsg_build_payload($0, rule) }
    }

    mutating func deleteRule(_ table: String, _ chain: String, handle: UInt64) {
        let rule = Self.rule(table, chain)
        defer { nftnl_rule_free(rule) }
        nftnl_rule_set_u64(rule, UInt16(NFTNL_RULE_HANDLE.rawValue), handle)
        append(NFT_MSG_DELRULE.rawValue, flags: 0, "deleting rule \(handle) of chain \(chain)") { nftnl_rule_nlmsg_build_payload($0, rule) }
    }

    private static func rule(_ table: String, _ chain: String) -> OpaquePointer {
        let rule = nftnl_rule_alloc()!
        nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), table)
        nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
        nftnl_rule_set_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
        return rule
    }

    /// Appends `rule` to the end of `chain`.
    mutating func addRule(_ table: String, _ chain: String, _ rule: NFTRule) {
        let object = Self.rule(table, chain)
        defer { nftnl_rule_free(object) }
        for expression in rule.expressions { nftnl_rule_add_expr(object, Self.expression(expression)) }
        let comment = Self.userData(type: UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), rule.comment)
        defer { nftnl_udata_buf_free(comment) }
        nftnl_rule_set_data(object, UInt16(NFTNL_RULE_USERDATA.rawValue), nftnl_udata_buf_data(comment), nftnl_udata_buf_len(comment))
        append(NFT_MSG_NEWRULE.rawValue, flags: UInt16(NLM_F_CREATE | NLM_F_APPEND), "adding rule `\(rule.text)` to \(chain)") {
            nftnl_rule_nlmsg_build_payload($0, object)
        }
    }

    /// A libnftnl expression (owned by the rule it is added to).
    private static func expression(_ expression: NFTExpression) -> OpaquePointer {
        func make(_ name: String) -> OpaquePointer { nftnl_expr_alloc(name)! }
        func u32(_ e: OpaquePointer, _ attribute: Int, _ value: UInt32) { nftnl_expr_set_u32(e, UInt16(attribute), value) }
        func data(_ e: OpaquePointer, _ attribute: Int, _ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { nftnl_expr_set(e, UInt16(attribute), $0.baseAddress, UInt32(bytes.count)) }
        }
        switch expression {
        case .meta(let key, let register):
            let e = make("meta")
            u32(e, NFTNL_EXPR_META_KEY, key.rawValue)
            u32(e, NFTNL_EXPR_META_DREG, register.rawValue)
            return e
        case .equal(let register, let bytes):
            let e = make("cmp")
            u32(e, NFTNL_EXPR_CMP_SREG, register.rawValue)
            u32(e, NFTNL_EXPR_CMP_OP, UInt32(NFT_CMP_EQ.rawValue))
            data(e, NFTNL_EXPR_CMP_DATA, bytes)
            return e
        case .payload(let offset, let length, let register):
            let e = make("payload")
            u32(e, NFTNL_EXPR_PAYLOAD_BASE, UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue))
            u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset)
            u32(e, NFTNL_EXPR_PAYLOAD_LEN, length)
            u32(e, NFTNL_EXPR_PAYLOAD_DREG, register.rawValue)
            return e
        case .lookup(let set, let register):
            let e = make("lookup")
            u32(e, NFTNL_EXPR_LOOKUP_SREG, register.rawValue)
            nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOOKUP_SET), set)
            return e
        case .randomNumber(let modulus, let register):
            let e = make("numgen")
            u32(e, NFTNL_EXPR_NG_DREG, register.rawValue)
            u32(e, NFTNL_EXPR_NG_MODULUS, modulus)
            u32(e, NFTNL_EXPR_NG_TYPE, UInt32(NFT_NG_RANDOM.rawValue))
            return e
        case .immediate(let register, let bytes):
            let e = make("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, register.rawValue)
            data(e, NFTNL_EXPR_IMM_DATA, bytes)
            return e
        case .verdict(let verdict):
            let e = make("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, NFTRegister.verdict.rawValue)
            u32(e, NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: verdict.code))
            if case .jump(let chain) = verdict { nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_IMM_CHAIN), chain) }
            return e
        case .masquerade(let flags, let ports):
            let e = make("masq")
            u32(e, NFTNL_EXPR_MASQ_FLAGS, flags)
            if let (low, high) = ports {
                u32(e, NFTNL_EXPR_MASQ_REG_PROTO_MIN, low.rawValue)
                u32(e, NFTNL_EXPR_MASQ_REG_PROTO_MAX, high.rawValue)
            }
            return e
        case .snat(let family, let addresses, let ports, let flags):
            let e = make("nat")
            u32(e, NFTNL_EXPR_NAT_TYPE, UInt32(NFT_NAT_SNAT.rawValue))
            u32(e, NFTNL_EXPR_NAT_FAMILY, UInt32(family == .ipv4 ? NFPROTO_IPV4 : NFPROTO_IPV6))
            u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, addresses.0.rawValue)
            u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, addresses.1.rawValue)
            if let (low, high) = ports {
                u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, low.rawValue)
                u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, high.rawValue)
            }
            u32(e, NFTNL_EXPR_NAT_FLAGS, flags)
            return e
        }
    }

    // MARK: sets

    /// A set of addresses of `family`: with `interval`, of address ranges (CIDRs); with `expiring`,
    /// one whose elements can be given a timeout (`flags timeout`: see `expireElements`).
    mutating func addSet(_ table: String, _ name: String, family: Family, interval: Bool, expiring: Bool = false, comment: String) {
        let set = Self.set(table, name)
        defer { nftnl_set_free(set) }
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_TYPE.rawValue), family == .ipv4 ? 7 : 8)  // nft's ipv4_addr, ipv6_addr
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_LEN.rawValue), UInt32(family.bitCount / 8))
        let flags = (interval ? UInt32(NFT_SET_INTERVAL.rawValue) : 0) | (expiring ? Self.expiringSetFlag : 0)
        if flags != 0 { nftnl_set_set_u32(set, UInt16(NFTNL_SET_FLAGS.rawValue), flags) }
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_ID.rawValue), nextSetID)
        nextSetID += 1
        let data = Self.userData(type: UInt8(NFTNL_UDATA_SET_COMMENT.rawValue), comment)
        defer { nftnl_udata_buf_free(data) }
        nftnl_set_set_data(set, UInt16(NFTNL_SET_USERDATA.rawValue), nftnl_udata_buf_data(data), nftnl_udata_buf_len(data))
        append(NFT_MSG_NEWSET.rawValue, flags: UInt16(NLM_F_CREATE), "creating set \(name)") { nftnl_set_nlmsg_build_payload($0, set) }
    }

    mutating func deleteSet(_ table: String, _ name: String) {
        let set = Self.set(table, name)
        defer { nftnl_set_free(set) }
        append(NFT_MSG_DELSET.rawValue, flags: 0, "deleting set \(name)") { nftnl_set_nlmsg_build_payload($0, set) }
    }

    private static func set(_ table: String, _ name: String) -> OpaquePointer {
        let set = nftnl_set_alloc()!
        nftnl_set_set_str(set, UInt16(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(set, UInt16(NFTNL_SET_NAME.rawValue), name)
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(family))
        return set
    }

    /// One element of a set: a key, whether it closes an interval, a comment.
    struct Element {
        let key: IPAddress
        var isIntervalEnd = false
        var comment: String?
    }

    /// Elements of an interval set for `intervals`: each start (commented) and, unless it runs to
    /// the highest address, its end.
    static func elements(_ intervals: [NFTInterval]) -> [Element] {
        intervals.flatMap { interval -> [Element] in
            var elements = [Element(key: interval.first, comment: interval.comment)]
            if let end = interval.end { elements.append(Element(key: end, isIntervalEnd: true)) }
            return elements
        }
    }

    /// Adds elements; an identical element already there is fine unless `exclusive`.
    mutating func addElements(_ table: String, _ set: String, _ elements: [Element], exclusive: Bool = false) {
        guard !elements.isEmpty else { return }
        elementMessage(NFT_MSG_NEWSETELEM.rawValue, flags: UInt16(NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0)), table, set, elements,
                       "adding \(elements.map { "\($0.key)" }.joined(separator: ", ")) to set \(set)")
    }

    mutating func deleteElements(_ table: String, _ set: String, _ elements: [Element]) {
        guard !elements.isEmpty else { return }
        elementMessage(NFT_MSG_DELSETELEM.rawValue, flags: 0, table, set, elements,
                       "removing \(elements.map { "\($0.key)" }.joined(separator: ", ")) from set \(set)")
    }

    /// The set flag that lets elements carry a timeout (`NFT_SET_TIMEOUT`).
    static let expiringSetFlag = UInt32(NFT_SET_TIMEOUT.rawValue)

    /// Gives elements already in an expiring set a timeout and an expiration of `milliseconds`: an
    /// update of the element (kernels since 6.10; older ones answer success and change nothing),
    /// after which the kernel's lookups and listings skip it and its garbage collector frees it. No
    /// transaction object outlives the commit, unlike a delete's (see `NFTExpiry`). An element that is
    /// not there is created, already expiring.
    mutating func expireElements(_ table: String, _ set: String, _ elements: [Element], milliseconds: UInt64) {
        guard !elements.isEmpty else { return }
        elementMessage(NFT_MSG_NEWSETELEM.rawValue, flags: 0, table, set, elements, expiring: milliseconds,
                       "expiring \(elements.map { "\($0.key)" }.joined(separator: ", ")) in set \(set)")
    }

    private mutating func elementMessage(_ type: UInt32, flags: UInt16, _ table: String, _ name: String, _ elements: [Element],
                                         expiring milliseconds: UInt64? = nil, _ purpose: String) {
        let set = Self.set(table, name)
        defer { nftnl_set_free(set) }
        var buffers: [OpaquePointer] = []
        defer { for buffer in buffers { nftnl_udata_buf_free(buffer) } }
        for element in elements {
            let object = nftnl_set_elem_alloc()!
            _ = element.key.bytes.withUnsafeBytes {
                nftnl_set_elem_set(object, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
            }
            if element.isIntervalEnd {
                nftnl_set_elem_set_u32(object, UInt16(NFTNL_SET_ELEM_FLAGS), UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue))
            }
            if let milliseconds {
                nftnl_set_elem_set_u64(object, UInt16(NFTNL_SET_ELEM_TIMEOUT), milliseconds)
                nftnl_set_elem_set_u64(object, UInt16(NFTNL_SET_ELEM_EXPIRATION), milliseconds)
            }
            if let comment = element.comment, type == NFT_MSG_NEWSETELEM.rawValue {
                let data = Self.userData(type: UInt8(NFTNL_UDATA_SET_ELEM_COMMENT.rawValue), comment)
                buffers.append(data)
                nftnl_set_elem_set(object, UInt16(NFTNL_SET_ELEM_USERDATA), nftnl_udata_buf_data(data), nftnl_udata_buf_len(data))
            }
            nftnl_set_elem_add(set, object)
        }
        append(type, flags: flags, purpose, capacity: 4096 + elements.count * 512) { nftnl_set_elems_nlmsg_build_payload($0, set) }
    }

    /// The bytes a comment holds in nf_tables user data, as nft writes it (127 and a NUL).
    static let commentLimit = 127

    /// A user-data buffer with one string (a comment, cut to `commentLimit`).
    private static func userData(type: UInt8, _ text: String) -> OpaquePointer {
        let buffer = nftnl_udata_buf_alloc(256)!
        _ = nftnl_udata_put_strz(buffer, type, Attachment.clip(text, to: commentLimit))
        return buffer
    }

    // MARK: sending

    /// Sends the batch and reads the kernel's answers; the first refusal fails the whole batch
    /// (the kernel has then applied none of it).
    func commit() throws(NetfilterError) {
        guard !messages.isEmpty else { return }
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw .netlink(operation: "opening", object: "an nf_tables socket", errno: errno, reason: String(cString: strerror(errno)))
        }
        defer { mnl_socket_close(socket) }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            throw .netlink(operation: "binding", object: "an nf_tables socket", errno: errno, reason: String(cString: strerror(errno)))
        }
        let base = UInt32(truncatingIfNeeded: time(nil)) &* 1000
        var bytes: [UInt8] = []
        var page = [UInt8](repeating: 0, count: 64)
        page.withUnsafeMutableBytes { _ = nftnl_batch_begin($0.baseAddress!.assumingMemoryBound(to: CChar.self), base) }
        bytes += Self.message(page)
        for (index, message) in messages.enumerated() {
            var numbered = message
            Self.setSequence(&numbered, base &+ 1 &+ UInt32(index))
            bytes += numbered
        }
        page = [UInt8](repeating: 0, count: 64)
        page.withUnsafeMutableBytes { _ = nftnl_batch_end($0.baseAddress!.assumingMemoryBound(to: CChar.self), base &+ 1 &+ UInt32(messages.count)) }
        bytes += Self.message(page)
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == bytes.count else {
            throw .netlink(operation: "sending", object: "an nf_tables batch", errno: errno, reason: String(cString: strerror(errno)))
        }
        // The kernel handles a batch while sendto runs: its answers are queued already.
        var answers = [UInt8](repeating: 0, count: 1 << 16)
        var acknowledged = 0
        while acknowledged < messages.count {
            let received = answers.withUnsafeMutableBytes { recv(mnl_socket_get_fd(socket), $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if received < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                throw .netlink(operation: "reading", object: "the answers to an nf_tables batch", errno: errno, reason: String(cString: strerror(errno)))
            }
            var offset = 0
            while offset + 16 <= received {
                let length = Int(Self.u32(answers, offset))
                let type = UInt16(answers[offset + 4]) | UInt16(answers[offset + 5]) << 8
                let sequence = Self.u32(answers, offset + 8)
                if type == UInt16(NLMSG_ERROR), offset + 20 <= received {
                    let code = Int32(bitPattern: Self.u32(answers, offset + 16))
                    acknowledged += 1
                    if code != 0 {
                        let index = Int(sequence &- base &- 1)
                        let purpose = index >= 0 && index < purposes.count ? purposes[index] : "an nf_tables batch"
                        throw .netlink(operation: purpose, object: "(table inet \(NFTFamilyPlan.table))", errno: -code,
                                       reason: String(cString: strerror(-code)))
                    }
                }
                guard length >= 16 else { break }
                offset += (length + 3) & ~3
            }
        }
    }

    private static func message(_ page: [UInt8]) -> [UInt8] { Array(page.prefix(Int(u32(page, 0)))) }
    private static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
    private static func setSequence(_ message: inout [UInt8], _ sequence: UInt32) {
        for shift in 0..<4 { message[8 + shift] = UInt8(truncatingIfNeeded: sequence >> UInt32(shift * 8)) }
    }
}
