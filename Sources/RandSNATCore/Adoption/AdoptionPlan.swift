import CNI

/// Which attachments of libcni's cache the agent adopts: those of a network whose config on the node
/// chains randsnat now that have no record (randsnat never ran for them: the pod's sandbox was set
/// up before randsnat was chained in, or by a config without it). Pure.
///
///     cache entries ─┬─ not randsnat's network now ──────────────→ ignored
///                    ├─ recorded ────────────────────────────────→ nothing to do (ADD saw it)
///                    ├─ unreadable, refused, address outside the ─→ unadoptable (metric, doctor, STATUS)
///                    │  network's subnets
///                    └─ otherwise ───────────────────────────────→ adopted: members and record, as ADD
public struct AdoptionPlan: Equatable, Sendable {
    /// An attachment to adopt, with randsnat's entry of its network's current config.
    public struct Adoption: Equatable, Sendable {
        public let cached: CachedAttachment
        public let config: [JSONKey: JSONValue]
    }

    /// A cache file of a randsnat network that cannot be adopted, and why (one sentence).
    public struct Refusal: Equatable, Sendable, CustomStringConvertible {
        public let network: String
        public let fileName: String
        public let reason: String
        public var description: String {
            "network \"\(network)\": the pod of libcni's cache entry \(fileName) has no SNAT and cannot be adopted: \(reason)"
        }
    }

    public var adoptions: [Adoption] = []
    public var refusals: [Refusal] = []

    public init(adoptions: [Adoption] = [], refusals: [Refusal] = []) {
        self.adoptions = adoptions
        self.refusals = refusals
    }

    /// Refusals per network (every network of `configs` present, 0 when none).
    public func refusalCounts(networks: some Sequence<String>) -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: networks.map { ($0, 0) })
        for refusal in refusals { counts[refusal.network, default: 0] += 1 }
        return counts
    }

    /// - Parameter entries: the cache's files, each parsed or refused (`CachedAttachment.parse`).
    /// - Parameter configs: the node's config directory as the agent read it.
    /// - Parameter recorded: whether randsnat has a record of the attachment.
    public static func plan(entries: [(fileName: String, entry: Result<CachedAttachment, CacheEntryError>)], configs: NodeConfigs,
                            recorded: (Attachment) -> Bool) -> AdoptionPlan {
        var plan = AdoptionPlan()
        for (fileName, outcome) in entries.sorted(by: { $0.fileName.utf8.lexicographicallyPrecedes($1.fileName.utf8) }) {
            switch outcome {
            case .failure(let error):
                guard let network = error.network.flatMap({ configs.networks[$0] == nil ? nil : $0 }) ?? network(named: fileName, in: configs) else { continue }
                plan.refusals.append(Refusal(network: network, fileName: fileName, reason: "\(error)"))
            case .success(let cached):
                let network = cached.attachment.network
                guard let config = configs.networks[network], !recorded(cached.attachment) else { continue }
                let subnets = configs.subnets[network] ?? []
                if !subnets.isEmpty, let outside = cached.addresses.first(where: { address in !subnets.contains { $0.contains(address.address) } }) {
                    plan.refusals.append(Refusal(network: network, fileName: fileName, reason:
                        "its address \(outside) is outside the subnets of the network's IPAM (\(subnets.map(\.description).joined(separator: ", ")))"))
                    continue
                }
                plan.adoptions.append(Adoption(cached: cached, config: config))
            }
        }
        return plan
    }

    /// The randsnat network an unreadable file's name says it belongs to (`<network>-<container>-<ifname>`):
    /// the longest network name that is a prefix followed by "-".
    static func network(named fileName: String, in configs: NodeConfigs) -> String? {
        configs.networks.keys.filter { fileName.utf8.starts(with: ($0 + "-").utf8) }.max { $0.utf8.count < $1.utf8.count }
    }
}
