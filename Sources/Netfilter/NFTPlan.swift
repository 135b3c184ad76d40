import RandSNATCore

/// randsnat's nf_tables objects for one family of one network generation, as plain data: what the
/// nftables backend writes (its own netlink batches) and what CHECK compares the kernel's rules with.
///
///     table inet randsnat
///       chain postrouting   type nat hook postrouting priority srcnat; policy accept
///         ip saddr @RANDSNAT-<net>-<gen>-P4 jump RANDSNAT-<net>-<gen>-4 comment "randsnat: name: ..."
///       chain RANDSNAT-<net>-<gen>-4
///         ip daddr @RANDSNAT-<net>-<gen>-S4 return        pod subnets (interval set)
///         ip daddr @RANDSNAT-<net>-<gen>-B4 return        multicast, link-local, nonMasqueradeCIDRs (interval set)
///         [oifname "eth0"] masquerade fully-random          (or snat ip to ... fully-random)
///       set RANDSNAT-<net>-<gen>-P4  ipv4_addr           one element per pod, comment "<net>/<container>/<ifname>"
///                                                         (added by ADD, deleted by DEL: one batch each)
///       set RANDSNAT-<net>-<gen>-S4  ipv4_addr interval  the pods' subnets
///       set RANDSNAT-<net>-<gen>-B4  ipv4_addr interval  the bypass destinations
struct NFTFamilyPlan: Equatable {
    static let table = "randsnat"
    static let baseChain = "postrouting"

    let names: ObjectNames
    let chain: String
    let bypassSet: String
    let jump: NFTRule
    let rules: [NFTRule]
    /// The bypass set's elements: merged destination ranges, each with the comments of what it covers.
    let bypass: [NFTInterval]

    var family: Family { names.family }

    /// The chain of a generation and family: the iptables chain name with the family digit, because
    /// one inet table holds both families.
    static func chain(_ names: ObjectNames) -> String { names.chain + "-" + names.family.digit }
    static func bypassSet(_ names: ObjectNames) -> String { names.chain + "-B" + names.family.digit }
    /// The output-hook chain an earlier build kept in the table (its rules deleted pods' elements
    /// from the datapath); install, the agent and the removal of a generation delete it.
    static let earlierDeparturesChain = "departures"

    /// Translates the backend-neutral plan: consecutive destination RETURN rules become one lookup in
    /// the bypass set; everything else maps one to one.
    init(_ plan: FamilyPlan) {
        names = plan.names
        chain = Self.chain(plan.names)
        bypassSet = Self.bypassSet(plan.names)
        let family = plan.family
        var rules: [NFTRule] = []
        var bypassed: [(CIDR, String)] = []
        for rule in plan.rules {
            if rule.target == .return, let destination = rule.destination, rule.setMatch == nil, rule.proto == nil,
               rule.outInterface == nil, rule.probability == nil {
                if bypassed.isEmpty {
                    rules.append(NFTRule(expressions: NFTRule.addressLookup(family, .destination, set: Self.bypassSet(plan.names))
                                            + [.verdict(.return)],
                                         comment: Self.tag(rule.comment) + ": bypass"))
                }
                bypassed.append((destination, Self.what(rule.comment)))
                continue
            }
            rules.append(NFTRule(rule, family: family))
        }
        self.rules = rules
        bypass = NFTInterval.merge(bypassed)
        jump = NFTRule(plan.jump, family: family, jumpChain: Self.chain(plan.names))
    }

    /// `randsnat: name: "x": multicast` → `randsnat: name: "x"`.
    static func tag(_ comment: String) -> String { split(comment)?.tag ?? comment }

    /// `randsnat: name: "x": multicast` → `multicast`.
    static func what(_ comment: String) -> String { split(comment)?.what ?? comment }

    /// The comment split at its last `": `.
    private static func split(_ comment: String) -> (tag: String, what: String)? {
        let bytes = Array(comment.utf8)
        guard bytes.count >= 3 else { return nil }
        for index in stride(from: bytes.count - 3, through: 0, by: -1)
        where bytes[index] == UInt8(ascii: "\"") && bytes[index + 1] == UInt8(ascii: ":") && bytes[index + 2] == UInt8(ascii: " ") {
            return (String(decoding: bytes[...index], as: UTF8.self), String(decoding: bytes[(index + 3)...], as: UTF8.self))
        }
        return nil
    }
}

/// An nf_tables register (the 16-byte ones, as nft uses them for addresses).
enum NFTRegister: UInt32, Equatable {
    case verdict = 0, r1 = 1, r2 = 2, r3 = 3, r4 = 4
}

/// The expressions randsnat puts into rules. Numbers on the wire: NFTProtocol.swift.
enum NFTExpression: Equatable {
    /// The keys randsnat writes (their numbers: `NFTMetaKey`).
    enum MetaKey { case oifname, nfproto, l4proto }
    enum Verdict: Equatable {
        case `return`
        case jump(String)
        case drop
        case accept
    }

    case meta(MetaKey, NFTRegister)
    /// `cmp eq`.
    case equal(NFTRegister, [UInt8])
    /// `cmp neq`.
    case notEqual(NFTRegister, [UInt8])
    /// Loads from the network header.
    case payload(offset: UInt32, length: UInt32, NFTRegister)
    /// Loads from the transport header (what follows the IP header, whatever the protocol).
    case transportPayload(offset: UInt32, length: UInt32, NFTRegister)
    /// `delete @set { <register> }`: the datapath takes the key out of the set (a dynset).
    case deleteFromSet(set: String, key: NFTRegister)
    case lookup(set: String, NFTRegister)
    /// Loads `numgen random mod N` (0 ... N-1).
    case randomNumber(modulus: UInt32, NFTRegister)
    case immediate(NFTRegister, [UInt8])
    case verdict(Verdict)
    /// `masquerade fully-random`, ports from two registers when given.
    case masquerade(flags: UInt32, ports: (NFTRegister, NFTRegister)?)
    /// `snat <family> to <registers> fully-random`.
    case snat(family: Family, addresses: (NFTRegister, NFTRegister), ports: (NFTRegister, NFTRegister)?, flags: UInt32)

    static func == (lhs: NFTExpression, rhs: NFTExpression) -> Bool {
        switch (lhs, rhs) {
        case let (.meta(a, b), .meta(c, d)): a == c && b == d
        case let (.equal(a, b), .equal(c, d)): a == c && b == d
        case let (.notEqual(a, b), .notEqual(c, d)): a == c && b == d
        case let (.payload(a, b, c), .payload(d, e, f)): a == d && b == e && c == f
        case let (.transportPayload(a, b, c), .transportPayload(d, e, f)): a == d && b == e && c == f
        case let (.deleteFromSet(a, b), .deleteFromSet(c, d)): a == c && b == d
        case let (.lookup(a, b), .lookup(c, d)): a == c && b == d
        case let (.randomNumber(a, b), .randomNumber(c, d)): a == c && b == d
        case let (.immediate(a, b), .immediate(c, d)): a == c && b == d
        case let (.verdict(a), .verdict(b)): a == b
        case let (.masquerade(a, b), .masquerade(c, d)): a == c && b?.0 == d?.0 && b?.1 == d?.1
        case let (.snat(a, b, c, d), .snat(e, f, g, h)):
            a == e && b.0 == f.0 && b.1 == f.1 && c?.0 == g?.0 && c?.1 == g?.1 && d == h
        default: false
        }
    }
}

/// One rule: its expressions and its comment (the rule's user data, as nft writes `comment "..."`).
struct NFTRule: Equatable {
    let expressions: [NFTExpression]
    let comment: String

    /// nft keeps at most 128 bytes of comment (NFTNL_UDATA_COMMENT_MAXLEN, with the NUL), and prints
    /// it between double quotes without escaping: randsnat's comments lose theirs.
    init(expressions: [NFTExpression], comment: String) {
        self.expressions = expressions
        self.comment = Self.comment(comment)
    }

    static func comment(_ text: String) -> String {
        Attachment.clip(String(text.unicodeScalars.filter { $0 != "\"" }.map(Character.init)), to: NFTBatch.commentLimit)
    }

    static let randomFully: UInt32 = 1 << 4  // NF_NAT_RANGE_PROTO_RANDOM_FULLY
    /// NF_NAT_RANGE_PROTO_SPECIFIED: without it the kernel's masq ignores the port registers (nft sets
    /// it itself for `to :PORTS`; the kernel adds it only for `nat`).
    static let protoSpecified: UInt32 = 1 << 1

    /// `meta nfproto ipv4` then the address loaded into r1 (an inet table serves both families).
    static func addressLoad(_ family: Family, _ direction: NATRule.Direction) -> [NFTExpression] {
        let v4 = family == .ipv4
        let offset: UInt32 = v4 ? (direction == .source ? 12 : 16) : (direction == .source ? 8 : 24)
        return [.meta(.nfproto, .r1), .equal(.r1, [v4 ? NFTFamily.ipv4 : NFTFamily.ipv6]), .payload(offset: offset, length: v4 ? 4 : 16, .r1)]
    }

    static func addressLookup(_ family: Family, _ direction: NATRule.Direction, set: String) -> [NFTExpression] {
        addressLoad(family, direction) + [.lookup(set: set, .r1)]
    }

    /// The same rule as the iptables backend writes, in nf_tables expressions.
    init(_ rule: NATRule, family: Family, jumpChain: String? = nil) {
        var expressions: [NFTExpression] = []
        if let outInterface = rule.outInterface {
            var name = Array(outInterface.utf8)
            name += [UInt8](repeating: 0, count: max(0, 16 - name.count))
            expressions += [.meta(.oifname, .r1), .equal(.r1, name)]
        }
        // The planner gives destinations only to bypass RETURN rules, which NFTFamilyPlan turns into
        // the bypass set's lookup before it gets here.
        if let setMatch = rule.setMatch, let direction = setMatch.directions.first {
            expressions += Self.addressLookup(family, direction, set: setMatch.set)
        }
        if let proto = rule.proto {
            expressions += [.meta(.l4proto, .r1), .equal(.r1, [UInt8(proto.number)])]
        }
        if let probability = rule.probability, probability > 0, probability < 1 {
            // Rule i of n takes 1/(n-i): `numgen random mod (n-i) == 0`.
            expressions += [.randomNumber(modulus: UInt32((1 / probability).rounded()), .r1), .equal(.r1, [0, 0, 0, 0])]
        }
        func ports(_ range: PortRange?) -> [NFTExpression] {
            guard let range else { return [] }
            return [.immediate(.r3, [UInt8(range.first >> 8), UInt8(range.first & 0xFF)]),
                    .immediate(.r4, [UInt8(range.last >> 8), UInt8(range.last & 0xFF)])]
        }
        switch rule.target {
        case .jump(let chain):
            expressions.append(.verdict(.jump(jumpChain ?? chain)))
        case .return:
            expressions.append(.verdict(.return))
        case .masquerade(let range):
            expressions += ports(range)
            expressions.append(.masquerade(flags: Self.randomFully | (range == nil ? 0 : Self.protoSpecified),
                                           ports: range == nil ? nil : (.r3, .r4)))
        case .snat(let addresses, let range):
            expressions += [.immediate(.r1, addresses.first.bytes), .immediate(.r2, addresses.last.bytes)] + ports(range)
            expressions.append(.snat(family: family, addresses: (.r1, .r2), ports: range == nil ? nil : (.r3, .r4), flags: Self.randomFully))
        }
        self.init(expressions: expressions, comment: rule.comment)
    }

    /// The rule as `nft list ruleset` prints it (for logs, CHECK messages and tests).
    var text: String {
        var parts: [String] = []
        var index = 0
        let list = expressions
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0) }.joined(separator: ".") }
        while index < list.count {
            switch list[index] {
            case .meta(.nfproto, _):
                index += 1  // implied by the address match that follows
            case .meta(.oifname, _):
                if index + 1 < list.count, case .equal(_, let name) = list[index + 1] {
                    parts.append("oifname \"\(String(decoding: name.prefix { $0 != 0 }, as: UTF8.self))\"")
                    index += 1
                }
            case .meta(.l4proto, _):
                func name(_ proto: [UInt8]) -> String { [6: "tcp", 17: "udp", 132: "sctp"][proto.first ?? 0] ?? "\(proto.first ?? 0)" }
                if index + 1 < list.count, case .equal(_, let proto) = list[index + 1] {
                    parts.append("meta l4proto " + name(proto))
                    index += 1
                } else if index + 1 < list.count, case .notEqual(_, let proto) = list[index + 1] {
                    parts.append("meta l4proto != " + name(proto))
                    index += 1
                }
            case .equal, .notEqual:
                break
            case .payload(let offset, let length, _):
                let family = length == 4 ? "ip" : "ip6"
                let field = (offset == 12 || offset == 8) ? "saddr" : "daddr"
                if index + 1 < list.count, case .lookup(let set, _) = list[index + 1] {
                    parts.append("\(family) \(field) @\(set)")
                    index += 1
                } else if index + 1 < list.count, case .equal(_, let bytes) = list[index + 1] {
                    parts.append("\(family) \(field) \(IPAddress(family: length == 4 ? .ipv4 : .ipv6, bytes: bytes).map { "\($0)" } ?? hex(bytes))")
                    index += 1
                } else if index + 1 < list.count, case .deleteFromSet(let set, _) = list[index + 1] {
                    parts.append("delete @\(set) { \(family) \(field) }")
                    index += 1
                }
            case .transportPayload(let offset, let length, _):
                // The value compared is not shown (an earlier build's departure rules compared a secret).
                parts.append("@th,\(offset * 8),\(length * 8) <value>")
                if index + 1 < list.count, case .equal = list[index + 1] { index += 1 }
            case .deleteFromSet(let set, _):
                parts.append("delete @\(set)")
            case .lookup(let set, _):
                parts.append("@\(set)")
            case .randomNumber(let modulus, _):
                parts.append("numgen random mod \(modulus) 0")
                index += 1
            case .immediate:
                break
            case .verdict(.return):
                parts.append("return")
            case .verdict(.jump(let chain)):
                parts.append("jump \(chain)")
            case .verdict(.drop):
                parts.append("drop")
            case .verdict(.accept):
                parts.append("accept")
            case .masquerade(_, let ports):
                parts.append("masquerade" + (ports == nil ? "" : " to :\(portText(list))") + " fully-random")
            case .snat(let family, _, let ports, _):
                let addresses = list.compactMap { expression -> [UInt8]? in
                    if case .immediate(let register, let bytes) = expression, register == .r1 || register == .r2 { return bytes }
                    return nil
                }.compactMap { IPAddress(family: family, bytes: $0) }
                var to = addresses.first.map { "\($0)" } ?? "?"
                if addresses.count == 2 && addresses[0] != addresses[1] { to += "-\(addresses[1])" }
                if family == .ipv6 && ports != nil { to = "[\(to)]" }
                parts.append("snat \(family == .ipv4 ? "ip" : "ip6") to \(to)" + (ports == nil ? "" : ":\(portText(list))") + " fully-random")
            }
            index += 1
        }
        parts.append("comment \"\(comment)\"")
        return parts.joined(separator: " ")
    }

    private func portText(_ list: [NFTExpression]) -> String {
        let ports = list.compactMap { expression -> UInt16? in
            if case .immediate(let register, let bytes) = expression, register == .r3 || register == .r4, bytes.count == 2 {
                return UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            }
            return nil
        }
        guard ports.count == 2 else { return "?" }
        return ports[0] == ports[1] ? "\(ports[0])" : "\(ports[0])-\(ports[1])"
    }
}

/// One element of an interval set: addresses `first` through `last`, with a comment.
struct NFTInterval: Equatable {
    let first: IPAddress
    let last: IPAddress
    let comment: String

    /// The element the kernel keeps after the interval: `last` + 1 (nil when `last` is the highest
    /// address, where the interval runs to the end).
    var end: IPAddress? { Self.next(last) }

    init(first: IPAddress, last: IPAddress, comment: String) {
        self.first = first
        self.last = last
        self.comment = comment
    }

    init(_ cidr: CIDR, comment: String) {
        self.init(first: cidr.address, last: Self.last(of: cidr), comment: comment)
    }

    static func last(of cidr: CIDR) -> IPAddress {
        var bytes = cidr.address.bytes
        for bit in cidr.prefix..<(bytes.count * 8) { bytes[bit / 8] |= 0x80 >> UInt8(bit % 8) }
        return IPAddress(family: cidr.family, bytes: bytes)!
    }

    static func next(_ address: IPAddress) -> IPAddress? {
        var bytes = address.bytes
        var index = bytes.count - 1
        while index >= 0 {
            if bytes[index] == 0xFF {
                bytes[index] = 0
                index -= 1
            } else {
                bytes[index] += 1
                return IPAddress(family: address.family, bytes: bytes)
            }
        }
        return nil
    }

    static func less(_ a: IPAddress, _ b: IPAddress) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    /// The CIDR this interval is exactly, if it is one.
    var cidr: CIDR? {
        for prefix in 0...first.family.bitCount {
            let candidate = CIDR(address: first, prefix: prefix)
            if candidate.address == first && Self.last(of: candidate) == last { return candidate }
        }
        return nil
    }

    /// Overlapping or adjacent CIDRs merged into disjoint intervals, in address order (the kernel
    /// refuses overlapping elements in an interval set).
    static func merge(_ items: [(CIDR, String)]) -> [NFTInterval] {
        let sorted = items.map { NFTInterval($0.0, comment: $0.1) }.sorted { less($0.first, $1.first) }
        var merged: [NFTInterval] = []
        for item in sorted {
            if let previous = merged.last, !less(previous.last, item.first) || next(previous.last) == item.first {
                let last = less(previous.last, item.last) ? item.last : previous.last
                let comment = previous.comment.split(separator: ",").contains(Substring(item.comment))
                    ? previous.comment : previous.comment + "," + item.comment
                merged[merged.count - 1] = NFTInterval(first: previous.first, last: last, comment: comment)
            } else {
                merged.append(item)
            }
        }
        return merged
    }

    /// Intervals from an interval set's dump: start elements, each followed (in address order) by
    /// an end element (flagged NFT_SET_ELEM_INTERVAL_END), unless it runs to the highest address.
    static func pair(_ elements: [(key: IPAddress, isEnd: Bool, comment: String)]) -> [NFTInterval] {
        let sorted = elements.sorted { less($0.key, $1.key) || ($0.key == $1.key && $0.isEnd && !$1.isEnd) }
        var intervals: [NFTInterval] = []
        var open: (IPAddress, String)?
        for element in sorted {
            if element.isEnd {
                if let (first, comment) = open, less(first, element.key) {
                    var bytes = element.key.bytes  // end - 1
                    var index = bytes.count - 1
                    while index >= 0 {
                        if bytes[index] == 0 { bytes[index] = 0xFF; index -= 1 } else { bytes[index] -= 1; break }
                    }
                    intervals.append(NFTInterval(first: first, last: IPAddress(family: first.family, bytes: bytes)!, comment: comment))
                }
                open = nil
            } else {
                if let (first, comment) = open {  // a start without an end: runs to the top
                    intervals.append(NFTInterval(first: first, last: highest(first.family), comment: comment))
                }
                open = (element.key, element.comment)
            }
        }
        if let (first, comment) = open { intervals.append(NFTInterval(first: first, last: highest(first.family), comment: comment)) }
        return intervals
    }

    static func highest(_ family: Family) -> IPAddress {
        IPAddress(family: family, bytes: [UInt8](repeating: 0xFF, count: family.bitCount / 8))!
    }
}

/// A base chain's type, hook and priority.
struct NFTBaseChain: Equatable {
    let type: String
    let hook: UInt32
    let priority: Int32

    /// `type nat hook postrouting priority srcnat` (NF_IP_PRI_NAT_SRC): where pods' packets are SNATed.
    static let snat = Self(type: "nat", hook: NFTConstant.postrouting, priority: 100)
}
