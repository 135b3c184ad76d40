import CNI

/// The doctor's verdict on a node: findings, each with a severity, and the exit status.
public struct Diagnosis: Equatable, Sendable {
    public enum Severity: Int, Comparable, Sendable {
        case healthy = 0, warning = 1, problem = 2
        public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }
        var word: String { ["ok", "WARNING", "PROBLEM"][rawValue] }
    }

    public struct Finding: Equatable, Sendable {
        public let severity: Severity
        public let text: String
    }

    /// Counters the doctor watches, in the kernel's names ("clashres" is clash_resolve).
    public static let watchedCounters = ["insert_failed", "drop", "early_drop", "clashres"]
    /// The ports MASQUERADE/SNAT picks from when a rule sets no range (1024-65535).
    public static let defaultPortRange = 64512

    public let facts: NodeFacts
    public let deltas: [String: UInt64]
    /// Per network: the rise of its pods' SYN retransmits during the interval.
    public let synRetransmitDeltas: [String: UInt64]
    public let intervalSeconds: Double
    public let findings: [Finding]

    public var severity: Severity { findings.map(\.severity).max() ?? .healthy }

    /// The ports a flow to one destination can get from one SNAT address: the smallest range a SNAT
    /// rule on the node sets, else 1024-65535.
    public static func capacity(_ facts: NodeFacts) -> Int {
        facts.rules.compactMap { $0.ports.map { Int($0.upperBound) - Int($0.lowerBound) + 1 } }.min() ?? defaultPortRange
    }

    public init(facts: NodeFacts, earlier: NodeFacts?, intervalSeconds: Double) {
        self.facts = facts
        self.intervalSeconds = intervalSeconds
        var deltas: [String: UInt64] = [:]
        if let earlier {
            for name in Self.watchedCounters {
                deltas[name] = (facts.counters[name] ?? 0) &- (earlier.counters[name] ?? 0)
            }
        }
        self.deltas = deltas
        var synDeltas: [String: UInt64] = [:]
        if let earlier {
            for network in facts.podTimestamps {
                let before = earlier.podTimestamps.first { $0.network == network.network }?.synRetransmits ?? network.synRetransmits
                synDeltas[network.network] = network.synRetransmits >= before ? network.synRetransmits - before : 0
            }
        }
        self.synRetransmitDeltas = synDeltas
        var findings: [Finding] = []
        func add(_ severity: Severity, _ text: String) { findings.append(Finding(severity: severity, text: text)) }
        for text in facts.unreadable { add(.warning, text) }
        if let failed = deltas["insert_failed"], failed > 0 {
            add(.problem, "conntrack insert_failed rose by \(failed) in \(intervalSeconds) s: new connections are being dropped (the SNAT race, or port exhaustion: see port pressure)")
        } else if let total = facts.counters["insert_failed"], total > 0 {
            add(.warning, "conntrack insert_failed is \(total) since boot (none during the interval)")
        }
        if let dropped = deltas["drop"], dropped > 0 { add(.problem, "conntrack drop rose by \(dropped) in \(intervalSeconds) s") }
        for rule in facts.rules where !rule.randomFully && !rule.shadowsRandsnat {
            add(.warning, "\(rule.place): \(rule.target) without --random-fully")
        }
        for shadow in facts.earlierSNAT { add(shadow.certain ? .problem : .warning, shadow.text) }
        if facts.legacyNATRules > 0 && facts.nftablesNATRules > 0 {
            add(.warning, "both iptables-legacy (\(facts.legacyNATRules) nat rules) and nf_tables (\(facts.nftablesNATRules)) hold nat rules: they run in an order nobody chose")
        }
        let capacity = Self.capacity(facts)
        for use in facts.portUse {
            let share = Double(use.entries) / Double(capacity)
            let text = "\(use.entries) SNATed flows from \(use.snatAddress) to \(use.destination):\(use.port)/\(use.proto) use \(Int(share * 100))% of \(capacity) ports"
            if share >= 0.9 { add(.problem, text + ": near exhaustion, new flows will fail; add toSource addresses or bypass the destination") }
            else if share >= 0.5 { add(.warning, text) }
        }
        for network in facts.networks where !network.orphans.isEmpty {
            add(.warning, "network \"\(network.name)\" (\(network.family)): \(network.orphans.count) members the runtime does not know: \(network.orphans.joined(separator: ", ")); CNI GC removes them")
        }
        for network in facts.podsNeverSeen {
            for line in network.sentences { add(.problem, line) }
        }
        for network in facts.podTimestamps {
            if let configured = network.configured {
                for (value, pods) in network.podsByValue.sorted(by: { $0.key < $1.key }) where value != configured {
                    add(.warning, "network \"\(network.network)\": \(pods) pods have \(TCPTimestamps.name)=\(value) while podTCPTimestamps says \(configured) (added before the key, or changed since; CHECK names them)")
                }
            }
            if let rise = synDeltas[network.network], rise > 0, facts.timestampOffsets?.perPort == true, (network.podsByValue[1] ?? 0) > 0 {
                add(.warning, "network \"\(network.network)\": its pods retransmitted \(rise) SYNs in \(intervalSeconds) s; with this kernel's per-port timestamp offsets, servers that close first reject SYNs on reused SNAT 4-tuples (PAWS): podTCPTimestamps 2 removes that (see README)")
            }
        }
        self.findings = findings
    }

    /// Words for the timestamp probe's answer.
    var timestampText: String {
        guard let probe = facts.timestampOffsets else { return "TCP timestamp offsets: unknown (the probe could not run)" }
        guard let perPort = probe.perPort else { return "TCP timestamp offsets: unknown (the probe's control failed: \(probe.control))" }
        return perPort
            ? "TCP timestamp offsets: per connection (ports included): through SNAT, servers holding TIME_WAIT can reject new SYNs (PAWS)"
            : "TCP timestamp offsets: one per address pair (ports not included)"
    }

    /// Where the node's nat rules other than randsnat's are: "nf_tables", "both" or "iptables-legacy".
    var nodeNetfilter: String {
        facts.nftablesNATRules > 0 && facts.legacyNATRules == 0 ? "nf_tables" : (facts.nftablesNATRules > 0 ? "both" : "iptables-legacy")
    }

    /// Each randsnat network with the backend(s) its state is on (two while it moves), by name.
    var networkBackends: [(network: String, backends: [BackendKind])] {
        var byName: [String: [BackendKind]] = [:]
        for network in facts.networks where !(byName[network.name]?.contains(network.backend) ?? false) {
            byName[network.name, default: []].append(network.backend)
        }
        return byName.sorted { $0.key < $1.key }.map { ($0.key, $0.value.sorted { $0.rawValue < $1.rawValue }) }
    }

    // MARK: output

    public func human() -> String {
        var lines = ["randsnat doctor: \(severity.word)"]
        lines.append("conntrack (summed over CPUs): " + Self.watchedCounters.map { name in
            "\(name == "clashres" ? "clash_resolve" : name)=\(facts.counters[name] ?? 0)" + (deltas[name].map { " (+\($0) in \(intervalSeconds) s)" } ?? "")
        }.joined(separator: ", "))
        lines.append("netfilter: \(nodeNetfilter) for the node's other nat rules (legacy nat rules: \(facts.legacyNATRules), nf_tables nat rules: \(facts.nftablesNATRules))")
        for (network, backends) in networkBackends {
            lines.append("netfilter of network \"\(network)\": " + backends.map(\.netfilterText).joined(separator: " and "))
        }
        lines.append("SNAT/MASQUERADE rules:")
        for rule in facts.rules {
            lines.append("  \(rule.source) \(rule.chain) #\(rule.position) \(rule.target)\(rule.randomFully ? " --random-fully" : " (no --random-fully)")"
                         + (rule.ports.map { " ports \($0.lowerBound)-\($0.upperBound)" } ?? "") + (rule.isRandsnat ? " [randsnat]" : "")
                         + (rule.shadowsRandsnat ? " [runs before randsnat]" : "") + (rule.text.map { ": `\($0)`" } ?? ""))
        }
        if facts.rules.isEmpty { lines.append("  none") }
        lines.append("SNAT before randsnat's rule:")
        for shadow in facts.earlierSNAT {
            lines.append("  \(shadow.certain ? "takes" : "may take") pod traffic: \(shadow.source) \(shadow.table) \(shadow.chain) #\(shadow.position): `\(shadow.rules.last ?? "")`"
                         + (shadow.primary.map { " [\($0.rawValue)]" } ?? ""))
        }
        if facts.earlierSNAT.isEmpty { lines.append("  none") }
        lines.append("port pressure (busiest destinations, of \(Self.capacity(facts)) ports each):")
        for use in facts.portUse.prefix(5) {
            lines.append("  \(use.destination):\(use.port)/\(use.proto) from \(use.snatAddress): \(use.entries)")
        }
        if facts.portUse.isEmpty { lines.append("  no SNATed flows") }
        lines.append("randsnat networks:")
        for network in facts.networks {
            lines.append("  \"\(network.name)\" \(network.family) generation \(network.generation) (\(network.backend.rawValue)): \(network.pods) pods, \(network.orphans.count) without a live owner")
        }
        if facts.networks.isEmpty { lines.append("  none") }
        if let why = facts.orphansUnknown, !facts.networks.isEmpty { lines.append("  orphans unknown: \(why)") }
        lines.append(timestampText)
        lines.append("pods' TCP timestamps (from the CNI cache and each pod's namespace):")
        for network in facts.podTimestamps {
            let values = network.podsByValue.sorted { $0.key < $1.key }.map { "\($0.value) at \($0.key)" }.joined(separator: ", ")
            lines.append("  \"\(network.network)\": podTCPTimestamps \(network.configured.map(String.init) ?? "not set"); pods: \(values.isEmpty ? "none read" : values)"
                         + (network.unreadable > 0 ? ", \(network.unreadable) unreadable" : "")
                         + "; SYN retransmits \(network.synRetransmits)" + (synRetransmitDeltas[network.network].map { " (+\($0) in \(intervalSeconds) s)" } ?? ""))
        }
        if facts.podTimestamps.isEmpty { lines.append("  no randsnat pods in the CNI cache") }
        if !findings.isEmpty { lines.append("findings:") }
        for finding in findings { lines.append("  \(finding.severity.word): \(finding.text)") }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() -> JSONValue {
        .object([
            "status": .string(["healthy", "warning", "problem"][severity.rawValue]),
            "conntrack": .object(Dictionary(uniqueKeysWithValues: Self.watchedCounters.map { name in
                (JSONKey(name), JSONValue.object(["total": .int(Int64(facts.counters[name] ?? 0))].merging(deltas[name].map { ["delta": JSONValue.int(Int64($0))] } ?? [:]) { a, _ in a }))
            })),
            "intervalSeconds": .double(intervalSeconds),
            "netfilter": .object(["legacyNATRules": .int(Int64(facts.legacyNATRules)), "nftablesNATRules": .int(Int64(facts.nftablesNATRules)),
                                  "node": .string(nodeNetfilter),
                                  "networks": .object(Dictionary(uniqueKeysWithValues: networkBackends.map { entry in
                                      (JSONKey(entry.network), JSONValue.array(entry.backends.map { .string($0.rawValue) }))
                                  }))]),
            "snatRules": .array(facts.rules.map { rule in
                .object(["source": .string(rule.source), "chain": .string(rule.chain), "position": .int(Int64(rule.position)),
                         "target": .string(rule.target), "randomFully": .bool(rule.randomFully), "randsnat": .bool(rule.isRandsnat),
                         "shadowsRandsnat": .bool(rule.shadowsRandsnat)].merging(rule.text.map { ["rule": .string($0)] } ?? [:]) { $1 })
            }),
            "earlierSNAT": .array(facts.earlierSNAT.map { shadow in
                .object(["source": .string(shadow.source), "table": .string(shadow.table), "chain": .string(shadow.chain),
                         "position": .int(Int64(shadow.position)), "rules": .array(shadow.rules.map { .string($0) }),
                         "certain": .bool(shadow.certain), "primary": shadow.primary.map { .string($0.rawValue) } ?? .null,
                         "remedy": .string(shadow.primary?.remedy ?? "remove that rule or make it skip the pod subnets")])
            }),
            "portPressure": .array(facts.portUse.map { use in
                .object(["destination": .string(use.destination), "port": .int(Int64(use.port)), "proto": .string(use.proto),
                         "snatAddress": .string(use.snatAddress), "entries": .int(Int64(use.entries)),
                         "capacity": .int(Int64(Self.capacity(facts)))])
            }),
            "networks": .array(facts.networks.map { network in
                .object(["name": .string(network.name), "family": .string(network.family.rawValue), "generation": .string(network.generation),
                         "backend": .string(network.backend.rawValue),
                         "pods": .int(Int64(network.pods)),
                         "orphans": facts.orphansUnknown == nil ? .array(network.orphans.map { .string($0) }) : .null])
            }),
            "orphansUnknown": facts.orphansUnknown.map { .string($0) } ?? .null,
            "podsNeverSeen": .array(facts.podsNeverSeen.map { network in
                .object(["network": .string(network.network), "cacheEntries": .array(network.fileNames.map { .string($0) }),
                         "unreadable": .array(network.unreadable.map { .string($0) })])
            }),
            "tcpTimestamps": .object([
                "perPortOffsets": facts.timestampOffsets?.perPort.map { .bool($0) } ?? .null,
                "probeReadings": .array((facts.timestampOffsets?.readings ?? []).map { .int(Int64($0)) }),
                "probeControl": .array((facts.timestampOffsets?.control ?? []).map { .int(Int64($0)) }),
            ]),
            "podTimestamps": .array(facts.podTimestamps.map { network in
                var synRetransmits: [JSONKey: JSONValue] = ["total": .int(Int64(network.synRetransmits))]
                if let delta = synRetransmitDeltas[network.network] { synRetransmits["delta"] = .int(Int64(delta)) }
                var podsByValue: [JSONKey: JSONValue] = [:]
                for (value, count) in network.podsByValue { podsByValue[JSONKey("\(value)")] = .int(Int64(count)) }
                return .object([
                    "network": .string(network.network), "configured": network.configured.map { .int(Int64($0)) } ?? .null,
                    "pods": .object(podsByValue),
                    "synRetransmits": .object(synRetransmits), "unreadable": .int(Int64(network.unreadable)),
                ])
            }),
            "findings": .array(findings.map { .object(["severity": .string(["ok", "warning", "problem"][$0.severity.rawValue]), "text": .string($0.text)]) }),
        ])
    }

    /// node_exporter's textfile collector format.
    public func prometheus() -> String {
        func label(_ value: String) -> String { value.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"") }
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP randsnat_\(name) \(help)")
            lines.append("# TYPE randsnat_\(name) \(type)")
            for (labels, value) in samples { lines.append("randsnat_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)") }
        }
        metric("health", "gauge", "0 healthy, 1 warning, 2 problem.", [("", "\(severity.rawValue)")])
        metric("conntrack_stat_total", "counter", "conntrack statistics summed over CPUs.",
               Self.watchedCounters.map { ("counter=\"\($0 == "clashres" ? "clash_resolve" : $0)\"", "\(facts.counters[$0] ?? 0)") })
        metric("snat_rules", "gauge", "SNAT/MASQUERADE rules in the nat tables.",
               facts.rules.map { "source=\"\($0.source)\",random_fully=\"\($0.randomFully)\",randsnat=\"\($0.isRandsnat)\"" }
                   .reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
        metric("snat_rules_shadowing", "gauge", "SNAT rules that run before randsnat's and take or may take pod traffic.", [("", "\(facts.earlierSNAT.count)")])
        metric("earlier_snat_rules", "gauge", "SNAT rules before randsnat's by known primary (unknown: none recognised); certain: takes pod traffic.",
               facts.earlierSNAT.reduce(into: [String: Int]()) { $0["primary=\"\($1.primary?.rawValue ?? "unknown")\",certain=\"\($1.certain)\"", default: 0] += 1 }
                   .sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
        metric("port_pressure_ratio", "gauge", "SNATed flows to one destination over the ports available.",
               facts.portUse.prefix(10).map { ("destination=\"\(label($0.destination))\",port=\"\($0.port)\",proto=\"\($0.proto)\",snat_address=\"\(label($0.snatAddress))\"",
                                               String(Double($0.entries) / Double(Self.capacity(facts)))) })
        metric("pods", "gauge", "Pods with SNAT per network.", facts.networks.map { ("network=\"\(label($0.name))\",family=\"\($0.family)\",backend=\"\($0.backend.rawValue)\"", "\($0.pods)") })
        metric("orphan_members", "gauge", "Set members the runtime's CNI cache does not know (absent: the cache cannot be read).",
               facts.orphansUnknown == nil ? [("", "\(facts.networks.map(\.orphans.count).reduce(0, +))")] : [])
        metric("pods_never_seen", "gauge", "Pods of libcni's cache that randsnat has no record of (no SNAT until the agent adopts them), per network.",
               facts.podsNeverSeen.map { ("network=\"\(label($0.network))\"", "\($0.fileNames.count + $0.unreadable.count)") })
        metric("tcp_timestamp_per_port_offsets", "gauge", "1 when the kernel gives per-port TCP timestamp offsets, 0 when not (absent: probe failed).",
               facts.timestampOffsets?.perPort.map { [("", $0 ? "1" : "0")] } ?? [])
        metric("pod_tcp_timestamps_pods", "gauge", "Pods by their namespace's net.ipv4.tcp_timestamps, per network.",
               facts.podTimestamps.flatMap { network in
                   network.podsByValue.sorted { $0.key < $1.key }.map { ("network=\"\(label(network.network))\",value=\"\($0.key)\"", "\($0.value)") }
               })
        metric("pod_tcp_timestamps_configured", "gauge", "podTCPTimestamps in the network's config (absent: not set).",
               facts.podTimestamps.compactMap { network in network.configured.map { ("network=\"\(label(network.network))\"", "\($0)") } })
        metric("pod_syn_retransmits_total", "counter", "TcpExtTCPSynRetrans summed over the network's pods.",
               facts.podTimestamps.map { ("network=\"\(label($0.network))\"", "\($0.synRetransmits)") })
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

extension BackendKind {
    /// The netfilter a network's state is on, as doctor names it.
    var netfilterText: String {
        switch self {
        case .iptables: "iptables-legacy (nat table and ipsets)"
        case .nftables: "nf_tables (table inet randsnat)"
        }
    }
}
