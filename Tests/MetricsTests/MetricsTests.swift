import Metrics
import RandSNATCore
import Testing

@Suite struct ExpositionTests {
    @Test func rendersHelpTypeAndSamplesWithEscapedLabels() {
        let text = Exposition.render([
            MetricFamily("randsnat_x_total", .counter, help: "A \\ counter\nwith two lines.", [.init(3)]),
            MetricFamily("randsnat_y", .gauge, help: "Y.", [.init([("a", "q\"uote"), ("b", "back\\slash\nnl")], 0.25)]),
            MetricFamily("randsnat_empty", .gauge, help: "Absent.", []),
        ])
        #expect(text == """
            # HELP randsnat_x_total A \\\\ counter\\nwith two lines.
            # TYPE randsnat_x_total counter
            randsnat_x_total 3
            # HELP randsnat_y Y.
            # TYPE randsnat_y gauge
            randsnat_y{a="q\\"uote",b="back\\\\slash\\nnl"} 0.25

            """)
    }

    @Test(arguments: [("randsnat_ok", true), ("a:b_c9", true), ("9abc", false), ("a-b", false), ("", false)])
    func names(_ name: String, _ valid: Bool) {
        #expect(Exposition.isValidName(name, colons: true) == valid)
    }
}

@Suite struct PortUsageSummaryTests {
    static func key(_ last: UInt8, port: UInt16 = 9999) -> SNATDestination {
        SNATDestination(family: .ipv4, proto: 17, port: port, snat: IPAddress("198.19.0.1")!, destination: IPAddress("203.0.113.\(last)")!)
    }

    @Test func exactWhileTuplesFit() {
        var summary = PortUsageSummary(capacity: 8)
        for index in 0..<95 { summary.add(Self.key(10)) ; if index < 5 { summary.add(Self.key(UInt8(20 + index))) } }
        #expect(summary.isExact)
        #expect(summary.total == 100)
        let top = summary.top(2)
        #expect(top.first?.key == Self.key(10) && top.first?.count == 95 && top.first?.error == 0)
        #expect(top.count == 2 && top[1].count == 1)
    }

    @Test func spaceSavingKeepsTheHeavyHitterWithABoundedError() {
        var summary = PortUsageSummary(capacity: 16)
        // 10,000 distinct light tuples interleaved with 2,000 entries to one heavy tuple.
        for index in 0..<10_000 {
            summary.add(Self.key(UInt8(index % 200), port: UInt16(1000 + index / 200)))
            if index % 5 == 0 { summary.add(Self.key(250, port: 53)) }
        }
        #expect(summary.trackedCount == 16)
        #expect(!summary.isExact)
        let heavy = summary.top(1)[0]
        #expect(heavy.key == Self.key(250, port: 53))
        // Space-Saving: count - error ≤ true count (2,000) ≤ count, and error ≤ N / capacity.
        #expect(heavy.count - heavy.error <= 2000 && heavy.count >= 2000)
        #expect(heavy.error <= summary.total / 16)
    }

    /// Random streams against exact counts: Space-Saving's guarantees hold for every kept tuple, and
    /// every tuple above N/capacity is kept; below capacity distinct tuples, the counts are exact.
    @Test(arguments: [(8, 5), (8, 40), (64, 1000), (256, 300)])
    func invariantsOnRandomStreams(_ capacity: Int, _ distinct: Int) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(capacity * 1000 + distinct)
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var summary = PortUsageSummary(capacity: capacity)
        var truth: [SNATDestination: Int] = [:]
        for _ in 0..<5000 {
            // Skewed: low tuple numbers are much more frequent.
            let r = next() % distinct, tuple = r * (next() % distinct) / distinct
            let key = Self.key(UInt8(tuple % 250), port: UInt16(tuple / 250))
            summary.add(key)
            truth[key, default: 0] += 1
        }
        let kept = summary.top(capacity)
        #expect(kept.map(\.count).reduce(0, +) == 5000, "the counters sum to N")
        for entry in kept {
            let actual = truth[entry.key] ?? 0
            #expect(entry.count - entry.error <= actual && actual <= entry.count)
        }
        let keptKeys = Set(kept.map(\.key))
        for (key, count) in truth where count > 5000 / capacity { #expect(keptKeys.contains(key)) }
        if truth.count <= capacity {
            #expect(summary.isExact && Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.count) }) == truth)
        }
    }

    @Test func keyRoundTripsAddresses() {
        let key = SNATDestination(family: .ipv6, proto: 6, port: 443, snat: IPAddress("2001:db8::1")!, destination: IPAddress("2001:db8:ffff::abcd")!)
        #expect(key.snatAddress.description == "2001:db8::1")
        #expect(key.destination.description == "2001:db8:ffff::abcd")
        #expect(Self.key(7).destination.description == "203.0.113.7" && Self.key(7).protocolName == "udp")
    }
}

@Suite struct NodeMetricsTests {
    @Test func topZeroPublishesNoDestinationButKeepsTheMaxRatio() {
        var summary = PortUsageSummary()
        for _ in 0..<95 { summary.add(PortUsageSummaryTests.key(10)) }
        var metrics = NodeMetrics()
        metrics.portUsage = PortUsageReport(summary: summary, top: 0, entries: 95, available: { _ in 100 }, durationSeconds: 0.5, timestamp: 1)
        let text = metrics.exposition()
        #expect(!text.contains("203.0.113.10"), "--top 0: no series names a destination")
        #expect(!text.contains("randsnat_snat_ports_in_use{"))
        #expect(text.contains("randsnat_snat_port_usage_max_ratio 0.95\n"))
    }

    @Test func portUsageSeriesAndMaxRatio() {
        var summary = PortUsageSummary()
        for _ in 0..<95 { summary.add(PortUsageSummaryTests.key(10)) }
        for _ in 0..<3 { summary.add(PortUsageSummaryTests.key(11, port: 53)) }
        var metrics = NodeMetrics()
        metrics.portUsage = PortUsageReport(summary: summary, top: 1, entries: 120, available: { _ in 100 }, durationSeconds: 0.5, timestamp: 1)
        let text = metrics.exposition()
        let labels = "{snat_address=\"198.19.0.1\",destination=\"203.0.113.10\",port=\"9999\",protocol=\"udp\"}"
        #expect(text.contains("randsnat_snat_ports_in_use\(labels) 95\n"))
        #expect(text.contains("randsnat_snat_ports_available\(labels) 100\n"))
        #expect(text.contains("randsnat_snat_port_usage_ratio\(labels) 0.95\n"))
        #expect(text.contains("randsnat_snat_port_usage_max_ratio 0.95\n"))
        #expect(!text.contains("203.0.113.11"), "only the top 1 tuple has series")
        #expect(text.contains("randsnat_conntrack_scan_entries 120\n"))
        #expect(text.contains("randsnat_build_info{version=\"\(BuildInfo.version)\",backend=\"none\"} 1\n"))
        #expect(!text.contains("randsnat_reconcile_"), "no reconcile series without a reconcile loop")
    }

    @Test func conntrackCountersAreCountersInBaseNames() {
        var metrics = NodeMetrics()
        metrics.conntrack = ConntrackStatistics(counters: ["insert_failed": 30, "drop": 2, "clash_resolve": 1], entries: 100, maxEntries: 262144, source: .netlink)
        let text = metrics.exposition()
        #expect(text.contains("# TYPE randsnat_conntrack_insert_failed_total counter\nrandsnat_conntrack_insert_failed_total 30\n"))
        #expect(text.contains("randsnat_conntrack_entries_limit 262144\n"))
        #expect(text.contains("randsnat_conntrack_statistics_source{source=\"netlink\"} 1\n"))
        #expect(!text.contains("early_drop"), "a counter the kernel did not report is absent, not 0")
    }

    @Test func rulesWithoutRandomFullyAheadOfTheJump() {
        var facts = NodeFacts()
        facts.rules = [
            .init(source: "iptables-legacy", chain: "nat POSTROUTING", position: 1, target: "MASQUERADE", randomFully: false, ports: nil, isRandsnat: false, shadowsRandsnat: true),
            .init(source: "nftables", chain: "ip nat POSTROUTING", position: 3, target: "masquerade", randomFully: false, ports: nil, isRandsnat: false, shadowsRandsnat: false),
            .init(source: "iptables-legacy", chain: "nat RANDSNAT-X", position: 1, target: "MASQUERADE", randomFully: true, ports: nil, isRandsnat: true, shadowsRandsnat: true),
        ]
        facts.networks = [.init(name: "pods", generation: "abc1234", family: .ipv4, pods: 7, orphans: [], backend: .nftables)]
        var metrics = NodeMetrics()
        metrics.facts = facts
        let text = metrics.exposition()
        #expect(text.contains("randsnat_snat_rules_without_random_fully{source=\"iptables-legacy\",ahead=\"true\"} 1\n"))
        #expect(text.contains("randsnat_snat_rules_without_random_fully{source=\"nftables\",ahead=\"false\"} 1\n"))
        #expect(text.contains("randsnat_snat_rules_shadowing{source=\"iptables-legacy\"} 1\n"))
        #expect(text.contains("randsnat_pods{network=\"pods\",family=\"ipv4\",backend=\"nftables\",generation=\"abc1234\"} 7\n"))
        #expect(text.contains("backend=\"nftables\"} 1\n"))
    }

    @Test func reconcileHealthNamesTheAgentSets() {
        var health = ReconcileHealth(intervalSeconds: 30)
        health.passes = 4
        health.lastSuccess = 1000
        health.podsLackingRules[.init(network: "pods", family: .ipv6)] = 2
        var metrics = NodeMetrics()
        metrics.reconcile = health
        let text = metrics.exposition()
        #expect(text.contains("randsnat_reconcile_passes_total 4\n"))
        #expect(text.contains("randsnat_reconcile_last_success_timestamp_seconds 1000\n"))
        #expect(text.contains("randsnat_reconcile_interval_seconds 30\n"))
        #expect(text.contains("randsnat_network_pods_without_rules{network=\"pods\",family=\"ipv6\"} 2\n"))
    }

    @Test func reconcilePassesFeedTheReconcileSeries() {
        var health = ReconcileHealth(intervalSeconds: 30)
        var repaired = ReconcileReport()
        repaired.repairCounts = [ReconcileReport.RepairKind.rules: 1, ReconcileReport.RepairKind.member: 3]
        repaired.pods = [.init(network: "pods", family: .ipv4, backend: "nftables", generation: "abc1234"): 3]
        repaired.podsLackingRules = [.init(network: "pods", family: .ipv4): 0]
        health.record(repaired, ended: 1000)
        var failed = ReconcileReport()
        failed.failed = true
        failed.repairCounts = [ReconcileReport.RepairKind.member: 2]
        failed.pods = repaired.pods
        failed.podsLackingRules = [.init(network: "pods", family: .ipv4): 1]
        failed.repairCounts[ReconcileReport.RepairKind.strayMember] = 1
        failed.unbackedMembers = [.init(network: "pods", family: .ipv4): 2]
        health.record(failed, ended: 1030)
        var metrics = NodeMetrics()
        metrics.reconcile = health
        metrics.renderedAt = 1042.5
        let text = metrics.exposition()
        #expect(text.contains("randsnat_reconcile_seconds_since_last_success 42.5\n"))
        #expect(text.contains("randsnat_reconcile_passes_total 2\n"))
        #expect(text.contains("randsnat_reconcile_failures_total 1\n"))
        #expect(text.contains("randsnat_reconcile_last_success_timestamp_seconds 1000\n"), "a failed pass is no success")
        #expect(text.contains("randsnat_reconcile_repairs_total{kind=\"member\"} 5\n"))
        #expect(text.contains("randsnat_reconcile_repairs_total{kind=\"rules\"} 1\n"))
        #expect(text.contains("randsnat_network_pods_without_rules{network=\"pods\",family=\"ipv4\"} 1\n"))
        #expect(text.contains("randsnat_reconcile_repairs_total{kind=\"stray_member\"} 1\n"))
        #expect(text.contains("randsnat_network_unbacked_members{network=\"pods\",family=\"ipv4\"} 2\n"))
        #expect(text.contains("randsnat_pods{network=\"pods\",family=\"ipv4\",backend=\"nftables\",generation=\"abc1234\"} 3\n"))
        #expect(text.contains("randsnat_network_generation_info{network=\"pods\",family=\"ipv4\",generation=\"abc1234\"} 1\n"))
    }

    @Test func unadoptedPodsAreCountedPerNetwork() {
        var health = ReconcileHealth(intervalSeconds: 30)
        var report = ReconcileReport()
        var adoption = AdoptionReport()
        adoption.cacheRead = true
        adoption.unadopted = ["pods": 2, "quiet": 0]
        report.adoption = adoption
        health.record(report, ended: 1000)
        var metrics = NodeMetrics()
        metrics.reconcile = health
        var text = metrics.exposition()
        #expect(text.contains("randsnat_network_pods_unadopted{network=\"pods\"} 2\n"))
        #expect(text.contains("randsnat_network_pods_unadopted{network=\"quiet\"} 0\n"))
        adoption.cacheRead = false
        report.adoption = adoption
        health.record(report, ended: 1030)
        metrics.reconcile = health
        text = metrics.exposition()
        #expect(!text.contains("randsnat_network_pods_unadopted{"), "no cache: no series rather than a false 0")
    }

    @Test func timestampFactsOfDoctorAreExported() {
        var facts = NodeFacts()
        facts.timestampOffsets = TimestampOffsets(withOffsets: [1_000_000, 3_000_000_000], control: [5000, 5001])
        facts.podTimestamps = [
            .init(network: "a", configured: 2, podsByValue: [2: 3], synRetransmits: 0, unreadable: 0),
            .init(network: "b", configured: nil, podsByValue: [1: 4, 0: 1], synRetransmits: 17, unreadable: 2),
        ]
        var metrics = NodeMetrics()
        metrics.facts = facts
        let text = metrics.exposition()
        #expect(text.contains("randsnat_tcp_timestamp_per_port_offsets 1\n"))
        #expect(text.contains("randsnat_pod_tcp_timestamps_pods{network=\"a\",value=\"2\"} 3\n"))
        #expect(text.contains("randsnat_pod_tcp_timestamps_pods{network=\"b\",value=\"0\"} 1\nrandsnat_pod_tcp_timestamps_pods{network=\"b\",value=\"1\"} 4\n"))
        #expect(text.contains("randsnat_pod_tcp_timestamps_configured{network=\"a\"} 2\n"))
        #expect(!text.contains("randsnat_pod_tcp_timestamps_configured{network=\"b\"}"), "not set: absent")
        #expect(text.contains("randsnat_pod_tcp_timestamps_unreadable{network=\"b\"} 2\n"))
        #expect(text.contains("# TYPE randsnat_pod_syn_retransmits gauge\n"))
        #expect(text.contains("randsnat_pod_syn_retransmits{network=\"b\"} 17\n"))
        // One offset per address pair: 0; the control failing: absent.
        facts.timestampOffsets = TimestampOffsets(withOffsets: [5000, 5003], control: [5000, 5001])
        metrics.facts = facts
        #expect(metrics.exposition().contains("randsnat_tcp_timestamp_per_port_offsets 0\n"))
        facts.timestampOffsets = TimestampOffsets(withOffsets: [5000, 3_000_000_000], control: [5000, 3_000_000_000])
        metrics.facts = facts
        #expect(!metrics.exposition().contains("randsnat_tcp_timestamp_per_port_offsets"))
    }

    @Test func procFallbackReadsEntriesOnceAndSumsCounters() {
        let stat = """
            entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
            00000010  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000001 00000000 00000000  00000000 00000000 00000000 00000002
            00000010  00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000a 00000000 00000000 00000000  00000000 00000000 00000000 00000000
            """
        let statistics = ConntrackStatistics.fromProc(stat: stat, max: "262144\n")
        #expect(statistics == ConntrackStatistics(
            counters: ["clash_resolve": 3, "found": 0, "new": 0, "invalid": 0, "ignore": 0, "delete": 0, "chainlength": 0, "insert": 0,
                       "insert_failed": 13, "drop": 1, "early_drop": 0, "icmp_error": 0, "expect_new": 0, "expect_create": 0,
                       "expect_delete": 0, "search_restart": 2],
            entries: 16, maxEntries: 262144, source: .proc))
    }
}
