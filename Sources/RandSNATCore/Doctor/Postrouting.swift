/// The nat chains that run at the postrouting hook, as the kernel layer reads them: the facts the
/// shadowing check (`EarlierSNAT`) works on, and nothing else. Pure data.
public struct NATHookTable: Equatable, Sendable {
    public enum Syntax: Sendable { case iptables, nft }

    /// "iptables-legacy", "ip6tables-legacy" or "nftables" (the names doctor's rule list uses).
    public let source: String
    /// "nat" for xtables; "FAMILY NAME" for nf_tables ("ip other").
    public let table: String
    public let syntax: Syntax
    /// Its base chains of type nat at the postrouting hook, with their priorities (legacy: POSTROUTING at 100).
    public let hooks: [Hook]
    /// The rules of the base chains and of every chain they lead to.
    public let chains: [String: [NATHookRule]]
    /// randsnat's own table (`inet randsnat`).
    public let isRandsnat: Bool

    public struct Hook: Equatable, Sendable {
        public let chain: String
        public let priority: Int
        public init(chain: String, priority: Int) {
            self.chain = chain
            self.priority = priority
        }
    }

    public init(source: String, table: String, syntax: Syntax, hooks: [Hook], chains: [String: [NATHookRule]], isRandsnat: Bool = false) {
        self.source = source
        self.table = table
        self.syntax = syntax
        self.hooks = hooks
        self.chains = chains
        self.isRandsnat = isRandsnat
    }

    /// The xtables nat table's priority at postrouting (NF_IP_PRI_NAT_SRC), which is also nft's
    /// `srcnat`: where both of randsnat's backends put their rules.
    public static let srcnatPriority = 100
}

/// One rule of a nat chain, reduced to what decides whether it SNATs a pod's traffic.
public struct NATHookRule: Equatable, Sendable {
    public enum Condition: Equatable, Sendable {
        case source(CIDR, inverted: Bool)
        case destination(CIDR, inverted: Bool)
        case outInterface(String, inverted: Bool)
        /// A protocol number (`-p`, `meta l4proto`).
        case proto(UInt8, inverted: Bool)
        /// `-m mark --mark VALUE/MASK`, `meta mark & MASK == VALUE`.
        case mark(value: UInt32, mask: UInt32, inverted: Bool)
        /// `-m addrtype --src-type`/`--dst-type`: a mask of `1 << RTN_*` bits.
        case addressType(source: Bool, types: UInt16, inverted: Bool)
        /// `meta nfproto ipv4`: only packets of that family.
        case family(Family)
        case comment(String)
        /// A match the check does not read (ipsets, conntrack, ...): written as the operator would.
        case other(String)
    }

    public struct NATTarget: Equatable, Sendable {
        /// "MASQUERADE" or "SNAT".
        public let name: String
        /// `--to-source` (SNAT): "A" or "A-B".
        public let toSource: String?
        public let ports: ClosedRange<UInt16>?
        public let randomFully: Bool

        public init(name: String, toSource: String? = nil, ports: ClosedRange<UInt16>? = nil, randomFully: Bool) {
            self.name = name
            self.toSource = toSource
            self.ports = ports
            self.randomFully = randomFully
        }
    }

    public enum Verdict: Equatable, Sendable {
        case snat(NATTarget)
        case jump(String)
        case goto(String)
        /// ACCEPT, RETURN or DROP: the rest of the chain does not see the packet.
        case stop(String)
        /// No verdict (a counter, MARK, LOG...): the next rule runs.
        case none(String)
    }

    public let conditions: [Condition]
    public let verdict: Verdict
    /// An nf_tables rule's handle (what `nft delete rule ... handle N` takes); nil for xtables.
    public let handle: UInt64?

    public init(_ conditions: [Condition], _ verdict: Verdict, handle: UInt64? = nil) {
        self.conditions = conditions
        self.verdict = verdict
        self.handle = handle
    }

    public var comment: String? {
        for case .comment(let text) in conditions { return text }
        return nil
    }

    /// The rule as the operator writes it: an iptables-save line (`-A CHAIN ...`) or an nft rule
    /// followed, when known, by its handle as `nft -a list` shows it (`# handle N`). The one
    /// rendering of a rule for doctor, STATUS and the installer.
    public func text(chain: String, syntax: NATHookTable.Syntax) -> String {
        syntax == .iptables ? iptablesText(chain: chain) : nftText()
    }

    static let protocolNames: [UInt8: String] = [1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"]
    static let addressTypeNames = ["UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE",
                                   "PROHIBIT", "THROW", "NAT", "XRESOLVE"]
    static func typeNames(_ types: UInt16) -> String {
        addressTypeNames.indices.filter { types & (1 << $0) != 0 }.map { addressTypeNames[$0] }.joined(separator: ",")
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\\\"") + "\""
    }

    func iptablesText(chain: String) -> String {
        var words = ["-A", chain]
        func not(_ inverted: Bool) { if inverted { words.append("!") } }
        for condition in conditions {
            switch condition {
            case .source(let cidr, let inverted): not(inverted); words += ["-s", "\(cidr)"]
            case .destination(let cidr, let inverted): not(inverted); words += ["-d", "\(cidr)"]
            case .outInterface(let name, let inverted):  // nft's wildcard `vlan*` is iptables' `vlan+`
                not(inverted); words += ["-o", name.hasSuffix("*") ? name.dropLast() + "+" : name]
            case .proto(let number, let inverted): not(inverted); words += ["-p", Self.protocolNames[number] ?? "\(number)"]
            case .mark(let value, let mask, let inverted):
                words += ["-m", "mark"]; not(inverted); words += ["--mark", "0x\(String(value, radix: 16))/0x\(String(mask, radix: 16))"]
            case .addressType(let source, let types, let inverted):
                words += ["-m", "addrtype"]; not(inverted); words += [source ? "--src-type" : "--dst-type", Self.typeNames(types)]
            case .family: break
            case .comment(let text): words += ["-m", "comment", "--comment", Self.quoted(text)]
            case .other(let text): words.append(text)
            }
        }
        switch verdict {
        case .snat(let target):
            words += ["-j", target.name]
            if let to = target.toSource { words += ["--to-source", to + (target.ports.map { ":\($0.lowerBound)-\($0.upperBound)" } ?? "")] }
            else if let ports = target.ports { words += ["--to-ports", "\(ports.lowerBound)-\(ports.upperBound)"] }
            if target.randomFully { words.append("--random-fully") }
        case .jump(let chain): words += ["-j", chain]
        case .goto(let chain): words += ["-g", chain]
        case .stop(let name), .none(let name): words += ["-j", name]
        }
        return words.joined(separator: " ")
    }

    func nftText() -> String {
        var words: [String] = []
        var comment: String?
        func op(_ inverted: Bool) { if inverted { words.append("!=") } }
        for condition in conditions {
            switch condition {
            case .source(let cidr, let inverted): words += [cidr.family == .ipv4 ? "ip" : "ip6", "saddr"]; op(inverted); words.append("\(cidr)")
            case .destination(let cidr, let inverted): words += [cidr.family == .ipv4 ? "ip" : "ip6", "daddr"]; op(inverted); words.append("\(cidr)")
            case .outInterface(let name, let inverted): words.append("oifname"); op(inverted); words.append(Self.quoted(name))
            case .proto(let number, let inverted): words += ["meta", "l4proto"]; op(inverted); words.append(Self.protocolNames[number] ?? "\(number)")
            case .mark(let value, let mask, let inverted):
                words += ["meta", "mark"]
                if mask != UInt32.max { words += ["&", "0x\(String(mask, radix: 16))"] }
                words.append(inverted ? "!=" : "=="); words.append("0x\(String(value, radix: 16))")
            case .addressType(let source, let types, let inverted):
                words += ["fib", source ? "saddr" : "daddr", "type"]; op(inverted); words.append(Self.typeNames(types).lowercased())
            case .family(let family): words += ["meta", "nfproto", family == .ipv4 ? "ipv4" : "ipv6"]
            case .comment(let text): comment = text
            case .other(let text): words.append(text)
            }
        }
        switch verdict {
        case .snat(let target):
            if target.name == "MASQUERADE" {
                words.append("masquerade")
                if let ports = target.ports { words += ["to", ":\(ports.lowerBound)-\(ports.upperBound)"] }
            } else {
                words += ["snat", "to", (target.toSource ?? "?") + (target.ports.map { ":\($0.lowerBound)-\($0.upperBound)" } ?? "")]
            }
            if target.randomFully { words.append("fully-random") }
        case .jump(let chain): words += ["jump", chain]
        case .goto(let chain): words += ["goto", chain]
        case .stop(let name): words.append(name.lowercased())
        case .none(let name): if !name.isEmpty { words.append(name) }
        }
        if let comment { words += ["comment", Self.quoted(comment)] }
        if let handle { words += ["#", "handle", "\(handle)"] }
        return words.joined(separator: " ")
    }
}
