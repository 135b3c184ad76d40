import RandSNATCore

/// randsnat's nf_tables objects for one family of one network generation, as plain data: what the
/// nftables backend writes (through libnftnl) and what CHECK compares the kernel's rules with.
///
///     table inet randsnat
///       chain postrouting   type nat hook postrouting priority srcnat; policy accept
///         ip saddr @RANDSNAT-<net>-<gen>-P4 jump RANDSNAT-<net>-<gen>-4 comment "randsnat: name: ..."
///       chain RANDSNAT-<net>-<gen>-4
///         ip daddr @RANDSNAT-<net>-<gen>-S4 return        pod subnets (interval set)
///         ip daddr @RANDSNAT-<net>-<gen>-B4 return        multicast, link-local, nonMasqueradeCIDRs (interval set)
///         [oifname "eth0"] masquerade fully-random          (or snat ip to ... fully-random)
///       set RANDSNAT-<net>-<gen>-P4  ipv4_addr timeout   one element per pod, comment "<net>/<container>/<ifname>"
///                                                         (no timeout of its own: DEL gives it one, see NFTExpiry)
///       set RANDSNAT-<net>-<gen>-S4  ipv4_addr interval  the pods' subnets
///       set RANDSNAT-<net>-<gen>-B4  ipv4_addr interval  the bypass destinations
///       chain departures   type filter hook output priority raw; policy accept    (one for the table)
///         meta l4proto != 253 accept                     every other packet leaves after one comparison
///         meta l4proto 253 ip daddr 127.0.0.1 @th,0,64 <secret> delete @RANDSNAT-<net>-<gen>-P4 { ip saddr } drop
///                                                         one per generation and family: how DEL takes a
///                                                         pod's element out (see `NFTDeparture`)
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
    /// The table's one chain of departure rules, on the output hook.
    static let departuresChain = "departures"

    /// The departures chain's first rule: every packet that cannot be a departure packet leaves the
    /// chain after one comparison, whatever the number of generations on the node.
    static let departureGuard = NFTRule(expressions: [.meta(.l4proto, .r1), .notEqual(.r1, [NFTDeparture.protocolNumber]), .verdict(.accept)],
                                        comment: "randsnat: every packet but a departing pod's goes on")

    /// A generation's departure rule: a packet of `NFTDeparture`'s form carrying `secret` takes its
    /// source address out of the generation's member set, and goes no further.
    static func departure(_ names: ObjectNames, secret: [UInt8], comment: String) -> NFTRule {
        let v4 = names.family == .ipv4
        let (source, destination): (UInt32, UInt32) = v4 ? (12, 16) : (8, 24)
        let length: UInt32 = v4 ? 4 : 16
        return NFTRule(expressions: [
            .meta(.l4proto, .r1), .equal(.r1, [NFTDeparture.protocolNumber]),
            .meta(.nfproto, .r1), .equal(.r1, [v4 ? NFTFamily.ipv4 : NFTFamily.ipv6]),
            .payload(offset: destination, length: length, .r1), .equal(.r1, NFTDeparture.destination(names.family).bytes),
            .transportPayload(offset: 0, length: UInt32(NFTDeparture.secretLength), .r1), .equal(.r1, secret),
            .payload(offset: source, length: length, .r1), .deleteFromSet(set: names.memberSet, key: .r1),
            .verdict(.drop),
        ], comment: comment)
    }

    /// The member set a departure rule deletes from (nil for any other rule).
    static func departedSet(of expressions: [NFTExpression?]) -> String? {
        for case .deleteFromSet(let set, _)? in expressions { return set }
        return nil
    }

    /// The secret a departure rule compares with (nil for any other rule).
    static func departureSecret(of expressions: [NFTExpression?]) -> [UInt8]? {
        for (index, expression) in expressions.enumerated() where index + 1 < expressions.count {
            if case .transportPayload(0, UInt32(NFTDeparture.secretLength), let register)? = expression,
               case .equal(register, let secret)? = expressions[index + 1], secret.count == NFTDeparture.secretLength {
                return secret
            }
        }
        return nil
    }

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
                // The value compared is a secret (see `NFTDeparture`): named, not shown.
                parts.append("@th,\(offset * 8),\(length * 8) <secret>")
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

/// How a pod's element leaves a member set when the datapath did not take it (no departure chain,
/// see `NFTDeparture`): it expires instead of being deleted.
///
/// A commit that deletes anything leaves the deleted objects on nf_tables' destroy list, freed by a
/// work item after an RCU grace period; and whenever a process closes a NETLINK_NETFILTER socket
/// (nf_tables' or ctnetlink's), the kernel's release handler (`nft_rcv_nl_event`) waits for that work
/// (`flush_work`). A DEL that deleted the pod's element therefore spent a grace period, 14–30 ms
/// here, in `close()`. An element update commits nothing for later: so the pod's element is given a
/// timeout of `milliseconds` (the member set has `flags timeout`), the kernel stops matching and
/// listing it at the next jiffy, and its set's garbage collector frees it. The element update needs
/// a kernel since 6.10; an older one answers success and leaves the element as it was, which the
/// probe that follows sees: then, and for a member set without the flag (made by an older randsnat),
/// the element is deleted as before.
enum NFTExpiry {
    /// The timeout and expiration given to an element that goes: the least there is (the kernel
    /// rounds it up to one jiffy, 1–10 ms).
    static let milliseconds: UInt64 = 1
    /// The longest a jiffy is (HZ=100): an element reported further from its expiration than this
    /// did not take the update.
    static let longestJiffyMilliseconds: UInt64 = 10
    /// How long DEL waits for the kernel to expire an element before it deletes it instead.
    static let patienceMicroseconds = 50_000
    /// How long after a tick is due DEL looks at the clock: the tick handler's own time.
    static let afterTickMicroseconds = 20
    /// How often DEL looks at the clock while a due tick has not shown yet (a tickless idle CPU
    /// catches up when woken).
    static let lateTickMicroseconds = 100

    /// What the kernel says of the element when asked for it (NFT_MSG_GETSETELEM).
    enum Probe: Equatable {
        /// Not there, or expired (the kernel answers ENOENT for an expired element).
        case absent
        /// There; with the milliseconds to its expiration when it has one (NFTA_SET_ELEM_EXPIRATION).
        case present(expiresIn: UInt64?)
    }

    enum Step: Equatable {
        /// The element is gone: nothing matches it any more.
        case done
        /// It expires at a coming jiffy: ask again after the kernel's next tick.
        case waitForTick
        /// It did not take the timeout, or is still there after `patienceMicroseconds`: delete it.
        case delete
    }

    /// The step after asking, `waited` microseconds after the update's commit.
    static func next(after probe: Probe, waited: Int) -> Step {
        switch probe {
        case .absent:
            return .done
        case .present(let expiresIn?) where expiresIn <= longestJiffyMilliseconds && waited < patienceMicroseconds:
            return .waitForTick
        case .present:
            return .delete
        }
    }

    /// How long to sleep, at `now`, before looking whether the tick after `lastTick` has come
    /// (nanoseconds on the monotonic clock; `tick` is a jiffy): until just after it is due, or a
    /// short while when it is due already but the clock has not shown it.
    ///
    /// The kernel expires an element at the first jiffy after the commit that gave it its timeout
    /// (expiration = the commit's jiffies + 1). The clock as of the last tick
    /// (CLOCK_MONOTONIC_COARSE) advances with jiffies: read before the commit, its next change is
    /// the earliest the element can be gone. Waiting for that change instead of asking the kernel
    /// over and over costs one GET per element, and nothing of the wait but the tick itself.
    static func sleepMicroseconds(lastTick: Int, now: Int, tick: Int) -> Int {
        let due = lastTick + tick - now
        return due > 0 ? due / 1000 + afterTickMicroseconds : lateTickMicroseconds
    }
}

/// A base chain's type, hook and priority.
struct NFTBaseChain: Equatable {
    let type: String
    let hook: UInt32
    let priority: Int32

    /// `type nat hook postrouting priority srcnat` (NF_IP_PRI_NAT_SRC): where pods' packets are SNATed.
    static let snat = Self(type: "nat", hook: NFTConstant.postrouting, priority: 100)
    /// `type filter hook output priority raw` (NF_IP_PRI_RAW): packets this node sends, before
    /// conntrack sees them (so a departure packet leaves no conntrack entry).
    static let departures = Self(type: "filter", hook: NFTConstant.output, priority: -300)
}

/// How DEL takes a pod's element out of its member set without an nf_tables transaction: through
/// the datapath.
///
/// Deleting the element in a batch leaves a transaction for nf_tables' destroy work, which every
/// netfilter socket's close then waits for (an RCU grace period, 14–35 ms here: see `NFTExpiry`);
/// giving it a 1 ms timeout costs the wait for the kernel's next tick (2.5 ms on average here). A
/// set element can also be deleted by a rule (`delete @set { ip saddr }`, a dynset): the kernel
/// marks it dead at once, lookups, GETs and listings skip it from then on, the set's garbage
/// collector frees it, and no transaction is made. So each generation has a rule in the table's
/// departures chain (output hook) that matches a packet only this node's root can send, and DEL
/// sends it:
///
/// - IP protocol 253 (RFC 3692's number for experiments: no real traffic uses it),
/// - to the loopback address of the family (127.0.0.1, ::1), from the pod's address (a raw socket
///   with IP_HDRINCL / IPV6_HDRINCL, which needs CAP_NET_RAW in the node's network namespace),
/// - carrying the generation's secret: 8 random bytes written into the rule when the generation is
///   installed, which only a reader of nf_tables (CAP_NET_ADMIN) can learn, so a hostNetwork pod
///   with CAP_NET_RAW alone cannot take pods' SNAT away.
///
/// The rule drops the packet (sendto answers EPERM), before conntrack. Where the generation has no
/// rule (installed by an earlier randsnat, a member set without `flags dynamic` — sets made before
/// this design —, a kernel before `firstKernel`, a rule the kernel refused) or the secret changed
/// meanwhile (a reinstall), the element is still there, which the GET that follows sees: then the
/// element expires as before (`NFTExpiry`).
enum NFTDeparture {
    static let protocolNumber: UInt8 = 253
    static let secretLength = 8

    /// The kernel release from which randsnat installs departure rules: the one its element updates
    /// need too (6.10), so one floor holds for the whole nftables DEL. Older kernels delete from the
    /// datapath as well, but some of them still listed dead elements in dumps, so a generation's
    /// last DEL would count a member that is gone.
    static let firstKernel = (major: 6, minor: 10)

    /// True when `release` (uname's, "6.18.44-…") is `firstKernel` or later.
    static func supported(kernelRelease release: String) -> Bool {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2 else { return false }
        return (numbers[0], numbers[1]) >= firstKernel
    }

    static func destination(_ family: Family) -> IPAddress {
        family == .ipv4 ? IPAddress("127.0.0.1")! : IPAddress("::1")!
    }

    /// The whole packet, IP header included: `source` to the family's loopback, protocol 253, the
    /// secret as its payload. The kernel fills in an IPv4 header's checksum and identification.
    static func packet(from source: IPAddress, secret: [UInt8]) -> [UInt8] {
        let destination = destination(source.family).bytes
        switch source.family {
        case .ipv4:
            let total = 20 + secret.count
            return [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0, 0, 64, protocolNumber, 0, 0]
                + source.bytes + destination + secret
        case .ipv6:
            return [0x60, 0, 0, 0, UInt8(secret.count >> 8), UInt8(secret.count & 0xFF), protocolNumber, 64]
                + source.bytes + destination + secret
        }
    }
}
