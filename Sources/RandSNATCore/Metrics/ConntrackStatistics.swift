/// The node's conntrack statistics summed over CPUs, and the table's fill.
public struct ConntrackStatistics: Equatable, Sendable {
    /// Where they were read.
    public enum Source: String, Sendable {
        /// ctnetlink: IPCTNL_MSG_CT_GET_STATS_CPU (per-CPU counters) and IPCTNL_MSG_CT_GET_STATS (count, max).
        case netlink
        /// /proc/net/stat/nf_conntrack and /proc/sys/net/netfilter/nf_conntrack_max, where netlink failed.
        case proc
    }

    /// The counters randsnat exports, by ctnetlink's names (CTA_STATS_INSERT_FAILED is "insert_failed").
    public static let exportedCounters = ["insert_failed", "drop", "early_drop", "clash_resolve", "search_restart"]

    /// Summed over CPUs, by ctnetlink's names.
    public var counters: [String: UInt64]
    /// Entries in the table now (CTA_STATS_GLOBAL_ENTRIES), and its limit (nf_conntrack_max).
    public var entries: UInt64?
    public var maxEntries: UInt64?
    public var source: Source

    public init(counters: [String: UInt64], entries: UInt64?, maxEntries: UInt64?, source: Source) {
        self.counters = counters
        self.entries = entries
        self.maxEntries = maxEntries
        self.source = source
    }

    /// From /proc/net/stat/nf_conntrack (a header, then a line of hex values per CPU) and the text of
    /// nf_conntrack_max. /proc names clash_resolve "clashres"; its "entries" column is the global
    /// count repeated on every CPU's line, so it is read once, not summed.
    public static func fromProc(stat: String, max: String?) -> ConntrackStatistics? {
        let lines = stat.split(separator: "\n")
        guard lines.count >= 2 else { return nil }
        var counters = NodeFacts.counters(fromStat: stat)
        counters["clash_resolve"] = counters.removeValue(forKey: "clashres")
        let names = lines[0].split(separator: " ")
        let first = lines[1].split(separator: " ")
        let entries = names.firstIndex(of: "entries").flatMap { $0 < first.count ? UInt64(first[$0], radix: 16) : nil }
        counters["entries"] = nil
        return ConntrackStatistics(counters: counters, entries: entries,
                                   maxEntries: max.flatMap { UInt64($0.split(separator: "\n").first ?? "") }, source: .proc)
    }
}
