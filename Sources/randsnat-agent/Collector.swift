import AgentCore
internal import Glibc
import Metrics
import Netfilter
import RandSNATCore
import Synchronization

/// Holds the node's metrics: a scan every interval on the collector's own thread (one conntrack dump,
/// the nat rules, randsnat's sets), and the conntrack counters read fresh at each scrape (a few
/// netlink messages). A scrape never waits for a scan: it reads the last one.
final class Collector: Sendable {
    private let state = Mutex(NodeMetrics())
    /// Network names seen in earlier scans and passes: a set whose jump a flush took keeps its
    /// network's name (and so its series' labels) until the jump is back.
    private let networkNames = Mutex(Set<String>())
    /// More names than a node has networks: past it the memory starts again (bounded whatever the node holds).
    static let maxNetworkNames = 1024
    let top: Int
    let cniCache: String
    let log: @Sendable (String) -> Void

    /// - Parameter reconcileInterval: the loop's resync period; nil without the loop (no reconcile series).
    init(top: Int, cniCache: String, log: @escaping @Sendable (String) -> Void, reconcileInterval: Double? = nil) {
        self.top = top
        self.cniCache = cniCache
        self.log = log
        if let reconcileInterval { state.withLock { $0.reconcile = ReconcileHealth(intervalSeconds: reconcileInterval) } }
    }

    /// A reconcile pass's outcome, for the reconcile series.
    func record(_ pass: AgentLoop.Pass) {
        state.withLock {
            $0.reconcile?.record(pass.report, ended: pass.ended)
            $0.configReloads[NodeMetrics.ConfigSource.netd] = pass.report.configRefusals.isEmpty
            $0.configReloads[NodeMetrics.ConfigSource.settings] = pass.settingsAccepted
        }
        remember(pass.report.pods.keys.map(\.network))
        // A pass that wrote a legacy table read it whole through libiptc: what it freed goes back to the kernel.
        Heap.release()
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func monotonic() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// One pass: rules and networks (what doctor reads, without its own conntrack listing), then the
    /// conntrack scan. Blocks for as long as they take; call it from the collector's thread.
    func scan() {
        let started = Self.monotonic()
        var facts: NodeFacts?
        do {
            let probed = state.withLock { $0.facts?.timestampOffsets }  // the kernel's: probed once
            facts = try NodeInspector(cniCache: cniCache).gather(portUse: false, knownTimestampOffsets: probed,
                                                                 knownNetworks: networkNames.withLock { Array($0) })
            remember(facts?.networks.map(\.name).filter { !$0.hasPrefix("(unknown") } ?? [])
        } catch {
            log("randsnat-agent: reading the node's SNAT rules failed: \(error)")
        }
        var summary = PortUsageSummary()
        do {
            let entries = try ConntrackMetricsReader().scanSNAT { summary.add($0) }
            let capacity = facts.map(Diagnosis.capacity) ?? Diagnosis.defaultPortRange
            let report = PortUsageReport(summary: summary, top: top, entries: entries, available: { _ in capacity },
                                         durationSeconds: Self.monotonic() - started, timestamp: Self.now())
            state.withLock {
                $0.portUsage = report
                $0.facts = facts
                $0.scans += 1
            }
        } catch {
            log("randsnat-agent: the conntrack scan failed: \(error); is nf_conntrack_netlink loaded?")
            state.withLock {
                $0.facts = facts
                $0.scanFailures += 1
            }
        }
        // What the scan freed goes back to the kernel (glibc keeps freed heap otherwise: the RSS stayed
        // at the scan's peak between scans).
        Heap.release()
    }

    private func remember(_ names: [String]) {
        networkNames.withLock { known in
            if known.count + names.count > Self.maxNetworkNames { known = [] }
            known.formUnion(names)
        }
    }

    /// The exposition text of the last scan with counters read now.
    func render() -> String {
        var statistics: ConntrackStatistics?
        var failure: String?
        do {
            (statistics, failure) = try ConntrackMetricsReader().statistics()
        } catch {
            failure = "\(error)"
        }
        var metrics = state.withLock { $0 }
        metrics.conntrack = statistics
        metrics.conntrackError = failure
        metrics.renderedAt = Self.now()
        return metrics.exposition()
    }
}
