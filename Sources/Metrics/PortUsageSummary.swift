import RandSNATCore

/// Counts SNATed conntrack entries per `SNATDestination` in memory that does not grow with the table:
/// exact while the node has at most `capacity` distinct tuples, the Space-Saving summary beyond
/// (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and top-k elements in data
/// streams", 2005).
///
/// Why not exact counts always: a node NATing to many destinations (a crawler, DNS to many resolvers)
/// can hold a million SNATed entries to a million tuples; an exact map would then cost ~100 MB. Why
/// Space-Saving: what the metric needs is the busiest tuples, and Space-Saving guarantees that any
/// tuple with more than N/capacity entries (N: SNATed entries seen) is kept, that a kept count
/// over-estimates by at most its recorded `error` (≤ N/capacity), and it needs one counter per slot.
/// Port exhaustion means thousands of entries to one tuple, far above N/capacity for any table the
/// kernel can hold (capacity 4096, nf_conntrack_max 1,048,576: N/capacity ≤ 256), so the tuples that
/// matter are never lost and their counts are exact or off by a bound the scan reports.
public struct PortUsageSummary {
    public struct Count: Equatable, Sendable {
        public let key: SNATDestination
        public let count: Int
        /// How much of `count` may belong to tuples evicted before this one took the slot (0 = exact).
        public let error: Int
    }

    public let capacity: Int
    /// SNATed entries counted.
    public private(set) var total = 0
    // Stream-Summary (the paper's structure), so an increment and an eviction each cost O(1): the
    // slots, all `capacity` of them from the start (an unused slot counts 0 and has no key), kept in
    // `order` sorted by count ascending; `bucketEnd[c]` is one past the last position holding count c.
    // A new tuple always takes the slot at order[0]: an unused one while there are any, else the
    // smallest counter (Space-Saving's eviction), inheriting its count as error.
    private var keys: [SNATDestination?]
    private var counts: [Int]
    private var errors: [Int]
    private var order: [Int]
    private var rank: [Int]
    private var bucketEnd: [Int: Int]
    private var slot: [SNATDestination: Int] = [:]

    public init(capacity: Int = 4096) {
        precondition(capacity > 0)
        self.capacity = capacity
        keys = Array(repeating: nil, count: capacity)
        counts = Array(repeating: 0, count: capacity)
        errors = Array(repeating: 0, count: capacity)
        order = Array(0..<capacity)
        rank = Array(0..<capacity)
        bucketEnd = [0: capacity]
        slot.reserveCapacity(capacity)
    }

    /// True while every count is exact (no tuple was ever evicted).
    public var isExact: Bool { errors.allSatisfy { $0 == 0 } }
    /// The largest over-estimate of any count kept.
    public var maxError: Int { errors.max() ?? 0 }
    public var trackedCount: Int { slot.count }

    public mutating func add(_ key: SNATDestination) {
        total += 1
        if let index = slot[key] {
            increment(index)
            return
        }
        let index = order[0]
        if let old = keys[index] { slot[old] = nil }
        keys[index] = key
        errors[index] = counts[index]
        slot[key] = index
        increment(index)
    }

    /// counts[index] += 1, keeping `order` sorted: the slot swaps places with the last of its count's
    /// bucket, which then ends one earlier, and the slot is the first of the next count's bucket.
    private mutating func increment(_ index: Int) {
        let count = counts[index]
        let end = bucketEnd[count]!
        let last = order[end - 1]
        (order[rank[index]], order[end - 1]) = (last, index)
        (rank[last], rank[index]) = (rank[index], end - 1)
        if end - 1 == 0 || counts[order[end - 2]] != count { bucketEnd[count] = nil } else { bucketEnd[count] = end - 1 }
        counts[index] = count + 1
        if bucketEnd[count + 1] == nil { bucketEnd[count + 1] = end }
    }

    /// The `k` largest counts, largest first (ties in a stable order of the tuple).
    public func top(_ k: Int) -> [Count] {
        let kept = (0..<capacity).compactMap { index in keys[index].map { Count(key: $0, count: counts[index], error: errors[index]) } }
        return Array(kept.sorted { lhs, rhs in
            if lhs.count != rhs.count { return lhs.count > rhs.count }
            return (lhs.key.snatHigh, lhs.key.snatLow, lhs.key.destinationHigh, lhs.key.destinationLow, lhs.key.port, lhs.key.proto)
                < (rhs.key.snatHigh, rhs.key.snatLow, rhs.key.destinationHigh, rhs.key.destinationLow, rhs.key.port, rhs.key.proto)
        }.prefix(k))
    }
}
