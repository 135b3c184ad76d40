import RandSNATCore

/// One conntrack scan's result: the busiest SNAT tuples with their ports in use and available.
public struct PortUsageReport: Equatable, Sendable {
    public struct Row: Equatable, Sendable {
        public let destination: SNATDestination
        public let inUse: Int
        /// How many of `inUse` may be another tuple's (0 when the summary is exact).
        public let overcount: Int
        public let available: Int

        public init(destination: SNATDestination, inUse: Int, overcount: Int, available: Int) {
            self.destination = destination
            self.inUse = inUse
            self.overcount = overcount
            self.available = available
        }

        public var ratio: Double { available > 0 ? Double(inUse) / Double(available) : 0 }
    }

    /// The busiest tuples' series (none with `--top 0`).
    public var rows: [Row]
    /// The highest ratio and over-count of any tuple: also with no per-tuple series.
    public var maxRatio: Double
    public var maxOvercount: Int
    /// Entries the dump returned, and those with their source NATed.
    public var entries: Int
    public var snatEntries: Int
    public var trackedTuples: Int
    public var exact: Bool
    public var durationSeconds: Double
    /// When the scan ended (Unix seconds).
    public var timestamp: Double

    public init(rows: [Row], entries: Int, snatEntries: Int, trackedTuples: Int, exact: Bool, durationSeconds: Double, timestamp: Double) {
        self.rows = rows
        maxRatio = rows.map(\.ratio).max() ?? 0
        maxOvercount = rows.map(\.overcount).max() ?? 0
        self.entries = entries
        self.snatEntries = snatEntries
        self.trackedTuples = trackedTuples
        self.exact = exact
        self.durationSeconds = durationSeconds
        self.timestamp = timestamp
    }

    /// The `k` busiest tuples of `summary`, each with `available(tuple)` ports; k = 0 keeps none (no
    /// destination is published) but the node's highest ratio.
    public init(summary: PortUsageSummary, top k: Int, entries: Int, available: (SNATDestination) -> Int,
                durationSeconds: Double, timestamp: Double) {
        let busiest = summary.top(max(k, 1)).map { Row(destination: $0.key, inUse: $0.count, overcount: $0.error, available: available($0.key)) }
        self.init(rows: Array(busiest.prefix(k)), entries: entries, snatEntries: summary.total, trackedTuples: summary.trackedCount,
                  exact: summary.isExact, durationSeconds: durationSeconds, timestamp: timestamp)
        maxRatio = busiest.map(\.ratio).max() ?? 0
        maxOvercount = busiest.map(\.overcount).max() ?? 0
    }
}

/// What the reconcile loop reports (set by the agent's passes); absent in `--no-reconcile` mode.
public struct ReconcileHealth: Equatable, Sendable {
    public typealias NetworkKey = ReconcileReport.NetworkFamily

    public var passes: UInt64 = 0
    public var failures: UInt64 = 0
    /// Repairs by kind (`ReconcileReport.RepairKind`).
    public var repairs: [String: UInt64] = [:]
    /// The end of the last pass that succeeded (Unix seconds).
    public var lastSuccess: Double?
    /// The period of the resync (resyncSeconds).
    public var intervalSeconds: Double
    /// Pods whose rules are missing after the last pass, per network and family.
    public var podsLackingRules: [NetworkKey: Int] = [:]
    /// Members no record backs that the last pass kept (their pods may be live), per network and family.
    public var unbackedMembers: [NetworkKey: Int] = [:]
    /// Pods per network, family, backend and generation in force after the last pass (the records).
    public var pods: [ReconcileReport.PodGroup: Int]?
    /// Per network chaining randsnat: pods of libcni's cache that randsnat never saw and cannot adopt
    /// (nil: the agent could not read the cache).
    public var podsUnadopted: [String: Int]?

    public init(intervalSeconds: Double) { self.intervalSeconds = intervalSeconds }

    /// Counts a pass: a pass failed when a network's reconcile (or the listing of the records)
    /// failed with an error; one that only found problems it reports still succeeded.
    public mutating func record(_ report: ReconcileReport, ended: Double) {
        passes += 1
        if report.failed { failures += 1 } else { lastSuccess = ended }
        for (kind, count) in report.repairCounts { repairs[kind, default: 0] += UInt64(count) }
        podsLackingRules = report.podsLackingRules
        unbackedMembers = report.unbackedMembers
        pods = report.pods
        podsUnadopted = report.adoption.flatMap { $0.cacheRead ? $0.unadopted : nil }
    }
}

/// Everything `GET /metrics` shows, as values; `families` turns it into exposition text's families.
public struct NodeMetrics: Equatable, Sendable {
    public var version = BuildInfo.version
    public var conntrack: ConntrackStatistics?
    /// Why the statistics could not be read, when they could not.
    public var conntrackError: String?
    public var portUsage: PortUsageReport?
    public var scans: UInt64 = 0
    public var scanFailures: UInt64 = 0
    /// The node's SNAT rules and randsnat's networks, from the last scan (what doctor reads).
    public var facts: NodeFacts?
    public var reconcile: ReconcileHealth?
    /// When the text is rendered (Unix seconds): the age of the last good pass is taken from it.
    public var renderedAt: Double?
    /// Per source the agent reads its config from (`ConfigSource`): whether its last reading was
    /// taken (false: refused; the agent goes on with the last good one). Absent: not read.
    public var configReloads: [String: Bool] = [:]

    /// The `source` label values of `randsnat_config_last_reload_successful`.
    public enum ConfigSource {
        /// The node's net.d: every file a network config, randsnat's entries valid.
        public static let netd = "net.d"
        /// The settings file (`--config`, the ConfigMap's config.json).
        public static let settings = "settings"
    }

    public init() {}

    /// "iptables", "nftables", both joined by a comma, or "none": where randsnat's networks live.
    public var backend: String {
        let kinds = Set((facts?.networks ?? []).map(\.backend.rawValue)).sorted()
        return kinds.isEmpty ? "none" : kinds.joined(separator: ",")
    }

    public func families() -> [MetricFamily] {
        typealias F = MetricFamily
        var out: [F] = [F("randsnat_build_info", .gauge, help: "Always 1: the version of randsnat and the backend(s) its networks use.",
                          [.init([("version", version), ("backend", backend)], 1)])]
        if let conntrack {
            let helps = [
                "insert_failed": "conntrack entries that could not be inserted (a clash the kernel could not resolve: the packet was dropped), summed over CPUs.",
                "drop": "Packets dropped because the conntrack table was full or an insert failed, summed over CPUs.",
                "early_drop": "conntrack entries evicted early because the table was full, summed over CPUs.",
                "clash_resolve": "conntrack insert clashes the kernel resolved, summed over CPUs.",
                "search_restart": "conntrack lookups restarted because a hash resize or a deletion moved entries, summed over CPUs.",
            ]
            for name in ConntrackStatistics.exportedCounters {
                guard let value = conntrack.counters[name] else { continue }
                out.append(F("randsnat_conntrack_\(name)_total", .counter, help: helps[name] ?? name, [.init(Double(value))]))
            }
            out.append(F("randsnat_conntrack_entries", .gauge, help: "Entries in the conntrack table.", conntrack.entries.map { [.init(Double($0))] } ?? []))
            out.append(F("randsnat_conntrack_entries_limit", .gauge, help: "The conntrack table's limit (nf_conntrack_max).",
                         conntrack.maxEntries.map { [.init(Double($0))] } ?? []))
        }
        out.append(F("randsnat_conntrack_statistics_source", .gauge,
                     help: "1 for where the conntrack statistics were read: netlink (ctnetlink), proc (/proc/net/stat/nf_conntrack), none (unreadable).",
                     [.init([("source", conntrack?.source.rawValue ?? "none")], 1)]))
        if let report = portUsage {
            func labels(_ row: PortUsageReport.Row) -> [(String, String)] {
                [("snat_address", "\(row.destination.snatAddress)"), ("destination", "\(row.destination.destination)"),
                 ("port", "\(row.destination.port)"), ("protocol", row.destination.protocolName)]
            }
            out.append(F("randsnat_snat_ports_in_use", .gauge,
                         help: "SNATed conntrack entries from one SNAT address to one destination address, port and protocol: each holds one source port (the busiest tuples).",
                         report.rows.map { .init(labels($0), Double($0.inUse)) }))
            out.append(F("randsnat_snat_ports_available", .gauge,
                         help: "Source ports SNAT can pick for the tuple: the SNAT rule's port range, else the kernel's 1024-65535.",
                         report.rows.map { .init(labels($0), Double($0.available)) }))
            out.append(F("randsnat_snat_port_usage_ratio", .gauge, help: "randsnat_snat_ports_in_use over randsnat_snat_ports_available.",
                         report.rows.map { .init(labels($0), $0.ratio) }))
            out.append(F("randsnat_snat_port_usage_max_ratio", .gauge, help: "The highest port usage ratio of any SNAT tuple on the node.",
                         [.init(report.maxRatio)]))
            out.append(F("randsnat_snat_ports_in_use_overcount", .gauge,
                         help: "The most randsnat_snat_ports_in_use may over-count (0: exact counts; above 0 when the node has more tuples than the summary keeps).",
                         [.init(Double(report.maxOvercount))]))
            out.append(F("randsnat_conntrack_scan_entries", .gauge, help: "Entries the last conntrack scan read.", [.init(Double(report.entries))]))
            out.append(F("randsnat_conntrack_scan_snat_entries", .gauge, help: "Entries of the last scan whose source was NATed.", [.init(Double(report.snatEntries))]))
            out.append(F("randsnat_conntrack_scan_tuples", .gauge, help: "SNAT tuples the last scan kept counts for.", [.init(Double(report.trackedTuples))]))
            out.append(F("randsnat_conntrack_scan_duration_seconds", .gauge, help: "How long the last conntrack scan took.", [.init(report.durationSeconds)]))
            out.append(F("randsnat_conntrack_scan_timestamp_seconds", .gauge, help: "When the last conntrack scan ended (Unix time).", [.init(report.timestamp)]))
        }
        out.append(F("randsnat_conntrack_scans_total", .counter, help: "Conntrack scans completed.", [.init(Double(scans))]))
        out.append(F("randsnat_conntrack_scan_failures_total", .counter, help: "Conntrack scans that failed (the agent's log says why).", [.init(Double(scanFailures))]))
        if let facts {
            let rules = facts.rules.filter { !$0.isRandsnat }
            let sources = ["iptables-legacy", "ip6tables-legacy", "nftables"]
            out.append(F("randsnat_snat_rules_without_random_fully", .gauge,
                         help: "SNAT/MASQUERADE rules on the node (not randsnat's) without --random-fully; ahead=true: they run before randsnat's jump.",
                         sources.flatMap { source in
                             [true, false].map { ahead in
                                 MetricFamily.Sample([("source", source), ("ahead", "\(ahead)")],
                                                     Double(rules.filter { $0.source == source && !$0.randomFully && $0.shadowsRandsnat == ahead }.count))
                             }
                         }))
            out.append(F("randsnat_snat_rules_shadowing", .gauge,
                         help: "SNAT/MASQUERADE rules (not randsnat's) that run before randsnat's jump and may SNAT pod traffic first.",
                         sources.map { source in .init([("source", source)], Double(rules.filter { $0.source == source && $0.shadowsRandsnat }.count)) }))
            if reconcile?.pods == nil {
                out.append(F("randsnat_pods", .gauge, help: Self.podsHelp, facts.networks.map { .init([("network", $0.name), ("family", $0.family.rawValue), ("backend", $0.backend.rawValue),
                                                         ("generation", $0.generation)], Double($0.pods)) }))
            }
            out += Self.timestampFamilies(facts)
            out.append(F("randsnat_orphan_members", .gauge,
                         help: "Pod members of randsnat's sets whose attachment the runtime's CNI cache does not know (absent: the cache, --cni-cache, cannot be read).",
                         facts.orphansUnknown != nil ? [] : facts.networks.map { .init([("network", $0.name), ("family", $0.family.rawValue)], Double($0.orphans.count)) }))
        }
        if !configReloads.isEmpty {
            out.append(F("randsnat_config_last_reload_successful", .gauge,
                         help: "1 when the agent took its config source whole at its last reading (net.d: every network config, randsnat's entries valid; settings: the --config file), 0 when it refused it (the log says why; the last good config stays in force).",
                         configReloads.sorted { $0.key < $1.key }.map { .init([("source", $0.key)], $0.value ? 1 : 0) }))
        }
        if let reconcile {
            if let pods = reconcile.pods {
                // From the agent's own records: the state its last pass put in force.
                let groups = pods.sorted { ($0.key.network, $0.key.family, $0.key.backend, $0.key.generation) < ($1.key.network, $1.key.family, $1.key.backend, $1.key.generation) }
                out.append(F("randsnat_pods", .gauge, help: Self.podsHelp, groups.map {
                    .init([("network", $0.key.network), ("family", $0.key.family.rawValue), ("backend", $0.key.backend),
                           ("generation", $0.key.generation)], Double($0.value))
                }))
                out.append(F("randsnat_network_generation_info", .gauge,
                             help: "Always 1: the generation of each network's config (per family) in force after the last reconcile pass.",
                             Set(groups.map { [$0.key.network, $0.key.family.rawValue, $0.key.generation] }).sorted { $0.lexicographicallyPrecedes($1) }
                                 .map { .init([("network", $0[0]), ("family", $0[1]), ("generation", $0[2])], 1) }))
            }
            out.append(F("randsnat_reconcile_passes_total", .counter, help: "Reconcile passes the agent completed.", [.init(Double(reconcile.passes))]))
            out.append(F("randsnat_reconcile_failures_total", .counter, help: "Reconcile passes that failed (the agent's log says why).", [.init(Double(reconcile.failures))]))
            out.append(F("randsnat_reconcile_repairs_total", .counter, help: "Kernel objects the agent put back, by kind.",
                         reconcile.repairs.sorted { $0.key < $1.key }.map { .init([("kind", $0.key)], Double($0.value)) }))
            out.append(F("randsnat_reconcile_last_success_timestamp_seconds", .gauge, help: "When the last successful reconcile pass ended (Unix time).",
                         reconcile.lastSuccess.map { [.init($0)] } ?? []))
            out.append(F("randsnat_reconcile_seconds_since_last_success", .gauge,
                         help: "Seconds from the end of the last successful reconcile pass to this scrape.",
                         reconcile.lastSuccess.flatMap { last in renderedAt.map { [.init(max(0, $0 - last))] } } ?? []))
            out.append(F("randsnat_reconcile_interval_seconds", .gauge, help: "The agent's resync period.", [.init(reconcile.intervalSeconds)]))
            out.append(F("randsnat_network_pods_without_rules", .gauge, help: "Pods of a network whose SNAT rules or set members are missing after the last pass.",
                         reconcile.podsLackingRules.sorted { ($0.key.network, $0.key.family) < ($1.key.network, $1.key.family) }
                             .map { .init([("network", $0.key.network), ("family", $0.key.family.rawValue)], Double($0.value)) }))
            out.append(F("randsnat_network_unbacked_members", .gauge,
                         help: "Set members no pod record backs that the last pass kept because their pods may be live (the agent's log names them).",
                         reconcile.unbackedMembers.sorted { ($0.key.network, $0.key.family) < ($1.key.network, $1.key.family) }
                             .map { .init([("network", $0.key.network), ("family", $0.key.family.rawValue)], Double($0.value)) }))
            out.append(F("randsnat_network_pods_unadopted", .gauge,
                         help: "Pods of a network chaining randsnat that libcni's cache holds, that randsnat never saw and that the agent cannot adopt (the agent's log says why). Absent: the cache could not be read.",
                         (reconcile.podsUnadopted ?? [:]).sorted { $0.key < $1.key }.map { .init([("network", $0.key)], Double($0.value)) }))
        }
        return out
    }

    /// What doctor reports about TCP timestamps and PAWS (issue 12), with the names of doctor's
    /// textfile output (`randsnat doctor --prometheus`), except the SYN retransmits: a sum over the pods
    /// present, which falls when a pod goes, so a gauge here (`rate()` would read the fall as a reset).
    static func timestampFamilies(_ facts: NodeFacts) -> [MetricFamily] {
        typealias F = MetricFamily
        let networks = facts.podTimestamps
        return [
            F("randsnat_tcp_timestamp_per_port_offsets", .gauge,
              help: "1: this kernel gives each TCP connection a timestamp offset that depends on its ports (pods with tcp_timestamps=1 can then lose connections to PAWS when SNAT reuses a port); 0: one offset per address pair. Absent: the probe could not tell.",
              facts.timestampOffsets?.perPort.map { [.init($0 ? 1 : 0)] } ?? []),
            F("randsnat_pod_tcp_timestamps_pods", .gauge, help: "Pods of a randsnat network by their namespace's net.ipv4.tcp_timestamps (value).",
              networks.flatMap { network in
                  network.podsByValue.sorted { $0.key < $1.key }.map { .init([("network", network.network), ("value", "\($0.key)")], Double($0.value)) }
              }),
            F("randsnat_pod_tcp_timestamps_configured", .gauge, help: "podTCPTimestamps in the network's config (absent: not set, the pods keep their own).",
              networks.compactMap { network in network.configured.map { .init([("network", network.network)], Double($0)) } }),
            F("randsnat_pod_tcp_timestamps_unreadable", .gauge, help: "Pods of a randsnat network whose namespace could not be read (gone, or no netns in the CNI cache).",
              networks.map { .init([("network", $0.network)], Double($0.unreadable)) }),
            F("randsnat_pod_syn_retransmits", .gauge,
              help: "TcpExtTCPSynRetrans summed over the network's pods present now, each since its namespace was made (falls when a pod goes: a gauge). A rise with per-port offsets, pods at tcp_timestamps=1 and SNAT ports near exhaustion points at PAWS: set podTCPTimestamps 2.",
              networks.map { .init([("network", $0.network)], Double($0.synRetransmits)) }),
        ]
    }

    static let podsHelp = "Pods with randsnat's SNAT, per network, family, backend and generation of the network's rules."

    public func exposition() -> String { Exposition.render(families()) }
}
