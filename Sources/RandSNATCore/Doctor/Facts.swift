/// What `randsnat doctor` reads off a node's network namespace, as plain data.
public struct NodeFacts: Equatable, Sendable {
    /// One SNAT or MASQUERADE rule, randsnat's or anybody's.
    public struct SNATRule: Equatable, Sendable {
        /// "iptables-legacy", "ip6tables-legacy" or "nftables".
        public let source: String
        /// Table and chain, e.g. "nat POSTROUTING" or "ip kube-proxy nat-postrouting".
        public let chain: String
        public let position: Int
        public let target: String
        public let randomFully: Bool
        /// The smallest..largest source port it may pick, when the rule sets a range.
        public let ports: ClosedRange<UInt16>?
        public let isRandsnat: Bool
        /// Found by the shadowing check (`EarlierSNAT`): it runs before randsnat's rule and may take pod traffic.
        public let shadowsRandsnat: Bool
        /// The rule as the operator writes it (`NATHookRule.text`: the iptables-save line, or the nft
        /// rule with its handle); nil when the rule is in a chain no nat hook reaches.
        public let text: String?

        public init(source: String, chain: String, position: Int, target: String, randomFully: Bool,
                    ports: ClosedRange<UInt16>?, isRandsnat: Bool, shadowsRandsnat: Bool, text: String? = nil) {
            self.source = source
            self.chain = chain
            self.position = position
            self.target = target
            self.randomFully = randomFully
            self.ports = ports
            self.isRandsnat = isRandsnat
            self.shadowsRandsnat = shadowsRandsnat
            self.text = text
        }

        /// Where the rule is and, when known, the rule itself: "iptables-legacy nat POSTROUTING rule 3: `-A POSTROUTING ...`".
        public var place: String {
            "\(source) \(chain) rule \(position)" + (text.map { ": `\($0)`" } ?? "")
        }
    }

    /// SNATed conntrack entries toward one destination from one SNAT address.
    public struct PortUse: Equatable, Sendable {
        public let destination: String
        public let port: UInt16
        public let proto: String
        public let snatAddress: String
        public let entries: Int

        public init(destination: String, port: UInt16, proto: String, snatAddress: String, entries: Int) {
            self.destination = destination
            self.port = port
            self.proto = proto
            self.snatAddress = snatAddress
            self.entries = entries
        }
    }

    /// One network randsnat serves on the node.
    public struct Network: Equatable, Sendable {
        public let name: String
        public let generation: String
        public let family: Family
        public let pods: Int
        /// Members whose attachment the runtime's CNI cache does not know.
        public let orphans: [String]
        /// Where the network's state lives.
        public let backend: BackendKind

        public init(name: String, generation: String, family: Family, pods: Int, orphans: [String], backend: BackendKind = .iptables) {
            self.backend = backend
            self.name = name
            self.generation = generation
            self.family = family
            self.pods = pods
            self.orphans = orphans
        }
    }

    /// conntrack statistics summed over CPUs (/proc/net/stat/nf_conntrack), by the kernel's names.
    public var counters: [String: UInt64] = [:]
    public var rules: [SNATRule] = []
    public var legacyNATRules = 0
    public var nftablesNATRules = 0
    public var portUse: [PortUse] = []
    public var networks: [Network] = []
    /// SNAT rules that run before randsnat's and take (or may take) pod traffic.
    public var earlierSNAT: [EarlierSNAT] = []
    /// Whether the kernel gives per-port TCP timestamp offsets (nil: the probe could not run).
    public var timestampOffsets: TimestampOffsets?
    /// Per randsnat network: its pods' tcp_timestamps and SYN retransmits.
    public var podTimestamps: [PodTimestamps] = []
    /// Things that could not be read, each a sentence.
    public var unreadable: [String] = []
    /// Why orphan members cannot be told (the runtime's CNI cache is absent or unreadable); nil when
    /// they can. Every network's `orphans` is then empty: unknown, not none.
    public var orphansUnknown: String?
    /// Per randsnat network: pods of libcni's cache that randsnat has no record of (never saw).
    public var podsNeverSeen: [NeverSeenPods] = []

    public init() {}

    /// Parses /proc/net/stat/nf_conntrack: a header of names, then one line of hex values per CPU.
    public static func counters(fromStat text: String) -> [String: UInt64] {
        let lines = text.split(separator: "\n")
        guard let header = lines.first else { return [:] }
        let names = header.split(separator: " ").map(String.init)
        var totals: [String: UInt64] = [:]
        for line in lines.dropFirst() {
            for (index, field) in line.split(separator: " ").enumerated() where index < names.count {
                totals[names[index], default: 0] &+= UInt64(field, radix: 16) ?? 0
            }
        }
        return totals
    }
}
