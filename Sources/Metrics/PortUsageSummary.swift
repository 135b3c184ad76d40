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
    // A min-heap on count, with each key's position, so an eviction and an increment cost O(log capacity).
    private var heap: [Count] = []
    private var position: [SNATDestination: Int] = [:]

    public init(capacity: Int = 4096) {
        precondition(capacity > 0)
        self.capacity = capacity
        heap.reserveCapacity(capacity)
        position.reserveCapacity(capacity)
    }

    /// True while every count is exact (no tuple was ever evicted).
    public var isExact: Bool { heap.allSatisfy { $0.error == 0 } }
    /// The largest over-estimate of any count kept.
    public var maxError: Int { heap.map(\.error).max() ?? 0 }
    public var trackedCount: Int { heap.count }

    public mutating func add(_ key: SNATDestination) {
        total += 1
        if let index = position[key] {
            heap[index] = Count(key: key, count: heap[index].count + 1, error: heap[index].error)
            siftDown(index)
        } else if heap.count < capacity {
            heap.append(Count(key: key, count: 1, error: 0))
            position[key] = heap.count - 1
            siftUp(heap.count - 1)
        } else {
            // Space-Saving: the new tuple takes the smallest counter's slot and inherits its count as error.
            let smallest = heap[0]
            position[smallest.key] = nil
            heap[0] = Count(key: key, count: smallest.count + 1, error: smallest.count)
            position[key] = 0
            siftDown(0)
        }
    }

    /// The `k` largest counts, largest first (ties in a stable order of the tuple).
    public func top(_ k: Int) -> [Count] {
        Array(heap.sorted { lhs, rhs in
            if lhs.count != rhs.count { return lhs.count > rhs.count }
            return (lhs.key.snatHigh, lhs.key.snatLow, lhs.key.destinationHigh, lhs.key.destinationLow, lhs.key.port, lhs.key.proto)
                < (rhs.key.snatHigh, rhs.key.snatLow, rhs.key.destinationHigh, rhs.key.destinationLow, rhs.key.port, rhs.key.proto)
        }.prefix(k))
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        position[heap[a].key] = a
        position[heap[b].key] = b
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        while index > 0 {
            let parent = (index - 1) / 2
            guard heap[index].count < heap[parent].count else { return }
            swapAt(index, parent)
            index = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        while true {
            let left = 2 * index + 1, right = left + 1
            var smallest = index
            if left < heap.count && heap[left].count < heap[smallest].count { smallest = left }
            if right < heap.count && heap[right].count < heap[smallest].count { smallest = right }
            guard smallest != index else { return }
            swapAt(index, smallest)
            index = smallest
        }
    }
}
