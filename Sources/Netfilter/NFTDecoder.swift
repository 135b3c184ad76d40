import Netlink
import RandSNATCore

/// One rule as the kernel lists it.
struct NFTRuleDump {
    let family: UInt8
    let table: String
    let chain: String
    let handle: UInt64
    /// The rule's comment (nft's user data); "" without one.
    let comment: String
    let expressions: [NFTExpressionDump]
}

/// One chain as the kernel lists it.
struct NFTChainDump {
    let family: UInt8
    let table: String
    let name: String
    /// `nat`, `filter`, `route` for a base chain.
    let type: String?
    /// A base chain's hook number and priority.
    let hook: (number: UInt32, priority: Int32)?
}

/// One set as the kernel lists it.
struct NFTSetDump {
    let table: String
    let name: String
    let flags: UInt32
}

/// One set element as the kernel lists it.
struct NFTElementDump {
    let key: [UInt8]
    let flags: UInt32
    let comment: String
}

/// The one reader of nf_tables replies: every table, chain, set, element and rule message goes
/// through here, through the bounds-checked `AttributeReader` (a message cut short, or bytes that
/// are not attributes, throw, naming the object), with the attribute names of `NFTProtocol`.
enum NFTDecoder {
    static func chain(_ reply: NetlinkReply) throws(NetfilterError) -> NFTChainDump {
        try checked("an nf_tables chain") { () throws(NetlinkError) in
            let a = try reply.netfilterAttributes()
            let hook = try a[NFTChainAttribute.hook]?.nestedAttributes()
            let number = hook?[NFTChainAttribute.hookNumber]?.be32, priority = hook?[NFTChainAttribute.hookPriority]?.be32
            return NFTChainDump(family: reply.family ?? 0, table: a[NFTChainAttribute.table]?.string ?? "?",
                                name: a[NFTChainAttribute.name]?.string ?? "?", type: a[NFTChainAttribute.chainType]?.string,
                                hook: number.flatMap { n in priority.map { (n, Int32(bitPattern: $0)) } })
        }
    }

    static func set(_ reply: NetlinkReply) throws(NetfilterError) -> NFTSetDump {
        try checked("an nf_tables set") { () throws(NetlinkError) in
            let a = try reply.netfilterAttributes()
            return NFTSetDump(table: a[NFTSetAttribute.table]?.string ?? "?", name: a[NFTSetAttribute.name]?.string ?? "?",
                              flags: a[NFTSetAttribute.flags]?.be32 ?? 0)
        }
    }

    /// The elements of one NEWSETELEM message (a dump's part, or a GET's answer).
    static func elements(_ reply: NetlinkReply) throws(NetfilterError) -> [NFTElementDump] {
        try checked("nf_tables set elements") { () throws(NetlinkError) in
            let list = try reply.netfilterAttributes()[NFTElementAttribute.listElements]?.nestedAttributes() ?? []
            return try list.map { (item) throws(NetlinkError) in try element(item.nestedAttributes()) }
        }
    }

    /// How many elements one reply of an element dump carries, counted without decoding them: the
    /// entries of its NFTA_SET_ELEM_LIST_ELEMENTS (a DEL or the agent asking how many pods a set
    /// still has need no key or comment; at 1,000 pods decoding them doubled an nftables DEL's cost).
    static func elementCount(_ reply: NetlinkReply) throws(NetfilterError) -> Int {
        try checked("nf_tables set elements") { () throws(NetlinkError) in
            guard let list = try reply.netfilterAttributes()[NFTElementAttribute.listElements] else { return 0 }
            var entries = AttributeReader(list.payload[...])
            var count = 0
            while try entries.nextInPlace() != nil { count += 1 }
            return count
        }
    }

    /// One element from its attributes.
    static func element(_ a: [NetlinkAttribute]) throws(NetlinkError) -> NFTElementDump {
        let key = try a[NFTElementAttribute.key]?.nestedAttributes()[NFTDataAttribute.value]?.payload ?? []
        return NFTElementDump(key: key, flags: a[NFTElementAttribute.flags]?.be32 ?? 0,
                              comment: NFTBytes.userDataString(a[NFTElementAttribute.userData]?.payload ?? [], type: NFTConstant.elementComment))
    }

    static func rule(_ reply: NetlinkReply) throws(NetfilterError) -> NFTRuleDump {
        try checked("an nf_tables rule") { () throws(NetlinkError) in
            let a = try reply.netfilterAttributes()
            let expressions = try (a[NFTRuleAttribute.expressions]?.nestedAttributes() ?? []).map { (item) throws(NetlinkError) in
                let e = try item.nestedAttributes()
                return NFTExpressionDump(name: e[NFTDataAttribute.expressionName]?.string ?? "",
                                         data: try e[NFTDataAttribute.expressionData]?.nestedAttributes() ?? [])
            }
            return NFTRuleDump(family: reply.family ?? 0, table: a[NFTRuleAttribute.table]?.string ?? "?",
                               chain: a[NFTRuleAttribute.chain]?.string ?? "?",
                               handle: NFTBytes.be64(a[NFTRuleAttribute.handle]?.payload) ?? 0,
                               comment: NFTBytes.userDataString(a[NFTRuleAttribute.userData]?.payload ?? [], type: NFTConstant.ruleComment),
                               expressions: expressions)
        }
    }

    /// randsnat's view of a rule: its handle, comment and expressions (nil for kinds it does not write).
    static func installedRule(_ reply: NetlinkReply) throws(NetfilterError) -> NFTablesBackend.InstalledRule {
        let dump = try rule(reply)
        let expressions = try checked("an nf_tables rule's expressions") { () throws(NetlinkError) in
            try dump.expressions.map { (e) throws(NetlinkError) in try NFTExpressionCodec.decode(e) }
        }
        return NFTablesBackend.InstalledRule(table: dump.table, chain: dump.chain, handle: dump.handle, comment: dump.comment,
                                             expressions: expressions)
    }

    /// The kernel's rule is randsnat's `rule`: same expressions and comment.
    static func same(_ installed: NFTablesBackend.InstalledRule, _ rule: NFTRule) -> Bool {
        installed.comment.utf8Equals(rule.comment) && installed.expressions.count == rule.expressions.count
            && zip(installed.expressions, rule.expressions).allSatisfy { $0 == $1 }
    }

    private static func checked<T>(_ what: String, _ body: () throws(NetlinkError) -> T) throws(NetfilterError) -> T {
        do {
            return try body()
        } catch {
            throw NetfilterError.netlink(operation: "reading", object: what, errno: 0, reason: error.reason)
        }
    }
}
