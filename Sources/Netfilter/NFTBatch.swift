import Netlink
import RandSNATCore

/// One nf_tables transaction: the kernel applies all of its messages or none (one batch between
/// NFNL_MSG_BATCH_BEGIN and _END, sent by `NetlinkSocket.transaction`).
///
/// Turns randsnat's plain descriptions (`NFTRule`, `NFTInterval`) into nf_tables messages, with the
/// attribute names of `NFTProtocol` and the expressions of `NFTExpressionCodec` (the codec CHECK
/// reads back with); each message keeps what it does, for the error that names a refused one.
struct NFTBatch {
    private var messages: [NetlinkRequest] = []
    /// What each message does, by position, for error messages.
    private var purposes: [String] = []
    private var nextSetID: UInt32 = 1

    /// Appends one message of randsnat's table's family; `build` writes its attributes.
    private mutating func append(_ command: NetfilterMessageType, flags: NetlinkFlags = [], _ purpose: String,
                                 _ build: (inout NetlinkRequest) -> Void) {
        var message = NetlinkRequest(command, flags: flags.union([.request, .ack]), sequence: 0, header: NetfilterHeader(family: NFTFamily.inet))
        build(&message)
        messages.append(message)
        purposes.append(purpose)
    }

    // MARK: tables and chains

    mutating func addTable(_ name: String) {
        append(NFTCommand.newTable, flags: .create, "creating table inet \(name)") { $0.addString(NFTTableAttribute.name, name) }
    }

    mutating func deleteTable(_ name: String) {
        append(NFTCommand.deleteTable, "deleting table inet \(name)") { $0.addString(NFTTableAttribute.name, name) }
    }

    /// A regular chain, or a base chain on `hook` (see `NFTBaseChain`).
    mutating func addChain(_ table: String, _ name: String, hook: NFTBaseChain? = nil) {
        append(NFTCommand.newChain, flags: .create, "creating chain \(name)") {
            $0.addString(NFTChainAttribute.table, table)
            $0.addString(NFTChainAttribute.name, name)
            guard let hook else { return }
            $0.nested(NFTChainAttribute.hook) {
                $0.addNFT32(NFTChainAttribute.hookNumber, hook.hook)
                $0.addNFT32(NFTChainAttribute.hookPriority, UInt32(bitPattern: hook.priority))
            }
            $0.addNFT32(NFTChainAttribute.policy, NFTConstant.accept)
            $0.addString(NFTChainAttribute.chainType, hook.type)
        }
    }

    mutating func deleteChain(_ table: String, _ name: String) {
        append(NFTCommand.deleteChain, "deleting chain \(name)") {
            $0.addString(NFTChainAttribute.table, table)
            $0.addString(NFTChainAttribute.name, name)
        }
    }

    // MARK: rules

    /// Removes every rule of the chain.
    mutating func flushChain(_ table: String, _ chain: String) {
        append(NFTCommand.deleteRule, "flushing chain \(chain)") {
            $0.addString(NFTRuleAttribute.table, table)
            $0.addString(NFTRuleAttribute.chain, chain)
        }
    }

    mutating func deleteRule(_ table: String, _ chain: String, handle: UInt64) {
        append(NFTCommand.deleteRule, "deleting rule \(handle) of chain \(chain)") {
            $0.addString(NFTRuleAttribute.table, table)
            $0.addString(NFTRuleAttribute.chain, chain)
            $0.addNFT64(NFTRuleAttribute.handle, handle)
        }
    }

    /// Appends `rule` to the end of `chain`.
    mutating func addRule(_ table: String, _ chain: String, _ rule: NFTRule) {
        append(NFTCommand.newRule, flags: [.create, .append], "adding rule `\(rule.text)` to \(chain)") {
            $0.addString(NFTRuleAttribute.table, table)
            $0.addString(NFTRuleAttribute.chain, chain)
            $0.nested(NFTRuleAttribute.expressions) { list in
                for expression in rule.expressions { NFTExpressionCodec.encode(expression, into: &list) }
            }
            $0.add(NFTRuleAttribute.userData, NFTBytes.userData(type: NFTConstant.ruleComment, rule.comment, limit: Self.commentLimit))
        }
    }

    // MARK: sets

    /// A set of addresses of `family`: with `interval`, of address ranges (CIDRs); `flags` are
    /// further `NFT_SET_*` flags (a set an earlier build made keeps its own: see `install`).
    mutating func addSet(_ table: String, _ name: String, family: Family, interval: Bool, flags extra: UInt32 = 0, comment: String) {
        let id = nextSetID
        nextSetID += 1
        append(NFTCommand.newSet, flags: .create, "creating set \(name)") {
            $0.addString(NFTSetAttribute.table, table)
            $0.addString(NFTSetAttribute.name, name)
            let flags = (interval ? NFTConstant.setInterval : 0) | extra
            if flags != 0 { $0.addNFT32(NFTSetAttribute.flags, flags) }
            $0.addNFT32(NFTSetAttribute.keyType, family == .ipv4 ? 7 : 8)  // nft's ipv4_addr, ipv6_addr
            $0.addNFT32(NFTSetAttribute.keyLength, UInt32(family.bitCount / 8))
            $0.addNFT32(NFTSetAttribute.id, id)
            $0.add(NFTSetAttribute.userData, NFTBytes.userData(type: NFTConstant.setComment, comment, limit: Self.commentLimit))
        }
    }

    mutating func deleteSet(_ table: String, _ name: String) {
        append(NFTCommand.deleteSet, "deleting set \(name)") {
            $0.addString(NFTSetAttribute.table, table)
            $0.addString(NFTSetAttribute.name, name)
        }
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
        elementMessage(NFTCommand.newElements, flags: exclusive ? [.create, .exclusive] : .create, table, set, elements,
                       "adding \(Self.listed(elements)) to set \(set)")
    }

    mutating func deleteElements(_ table: String, _ set: String, _ elements: [Element]) {
        guard !elements.isEmpty else { return }
        elementMessage(NFTCommand.deleteElements, flags: [], table, set, elements,
                       "removing \(Self.listed(elements)) from set \(set)")
    }

    /// Elements as an error names them: every key of a few, the first three and the count of many
    /// (the agent's moves send hundreds in one message).
    static func listed(_ elements: [Element]) -> String {
        let shown = elements.prefix(3).map { "\($0.key)" }.joined(separator: ", ")
        return elements.count <= 3 ? shown : "\(shown) and \(elements.count - 3) more"
    }

    private mutating func elementMessage(_ command: NetfilterMessageType, flags: NetlinkFlags, _ table: String, _ set: String, _ elements: [Element],
                                         _ purpose: String) {
        let adding = command == NFTCommand.newElements
        append(command, flags: flags, purpose) {
            $0.addString(NFTElementAttribute.listTable, table)
            $0.addString(NFTElementAttribute.listSet, set)
            $0.nested(NFTElementAttribute.listElements) { list in
                for element in elements {
                    list.nested(NFTDataAttribute.listElement) {
                        $0.addValue(NFTElementAttribute.key, element.key.bytes)
                        if element.isIntervalEnd { $0.addNFT32(NFTElementAttribute.flags, NFTConstant.elementIntervalEnd) }
                        if let comment = element.comment, adding {
                            $0.add(NFTElementAttribute.userData, NFTBytes.userData(type: NFTConstant.elementComment, comment, limit: Self.commentLimit))
                        }
                    }
                }
            }
        }
    }

    /// The bytes a comment holds in nf_tables user data, as nft writes it (127 and a NUL).
    static let commentLimit = 127

    // MARK: sending

    /// Sends the batch on `socket` and reads the kernel's answers; the first refusal fails the whole
    /// batch (the kernel has then applied none of it), naming the message it refused.
    func commit(on socket: NetlinkSocket) throws(NetfilterError) {
        do {
            try socket.transaction(.nftables, messages) { (purposes[$0], "(table inet \(NFTFamilyPlan.table))") }
        } catch {
            throw NetfilterError(error)
        }
    }

    /// True when nothing was added to the batch.
    var isEmpty: Bool { messages.isEmpty }

    /// The messages as built (for tests).
    var requests: [NetlinkRequest] { messages }
}
