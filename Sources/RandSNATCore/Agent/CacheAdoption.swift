import CNI

/// The agent's step before each pass: adopt the attachments of libcni's cache that randsnat never
/// saw (`AdoptionPlan`), and tell which cannot be. The cache is read again only when a file was
/// added to or removed from it, when the node's configs changed, or after `forget()`; an idle pass
/// costs one `stat` of the cache directory. A file of an attachment that has a record is not read
/// (its name is libcni's name of the attachment), nor that of a network randsnat has no part in: an
/// idle node reads no cache file at all.
public final class CacheAdoption {
    let cache: any LibcniCacheSource
    /// What the last read saw, to tell whether anything changed since.
    var lastVersion: Int64?
    var lastConfigs: NodeConfigs?
    var stale = true
    /// The last read's findings (its `adopted` lines were logged by the pass that made them).
    public private(set) var last = AdoptionReport()

    public init(cache: any LibcniCacheSource) {
        self.cache = cache
    }

    /// The next pass reads the cache again.
    public func forget() { stale = true }

    /// The attachments libcni's cache holds in randsnat's networks, as of the last read (nil: no cache, or not readable).
    public var liveAttachments: Set<Attachment>? { last.liveAttachments }

    /// Adopts what can be adopted; the report's `adopted` lines are this call's adoptions.
    public func run(plugin: SNATPlugin, records: any RecordStore, configs: NodeConfigs) -> AdoptionReport {
        let version = cache.version()
        let relevant = NodeConfigs(networks: configs.networks, subnets: configs.subnets)
        if !stale, let version, version == lastVersion, relevant == lastConfigs {
            var unchanged = last
            unchanged.adopted = []
            return unchanged
        }
        stale = false
        (lastVersion, lastConfigs) = (version, relevant)
        last = read(plugin: plugin, records: records, configs: configs)
        return last
    }

    func read(plugin: SNATPlugin, records: any RecordStore, configs: NodeConfigs) -> AdoptionReport {
        var report = AdoptionReport()
        let names: [String]
        do {
            guard let listed = try cache.fileNames() else { return report }
            names = listed
        } catch {
            report.problems.append("libcni's cache cannot be listed: \(error); pods randsnat never saw are not adopted")
            return report
        }
        report.cacheRead = true
        // The records of every network: an attachment with a record is live when its file is there.
        var recorded: [String: Attachment] = [:]
        var recordNetworks: [String] = []
        do {
            recordNetworks = try records.networks()
            for network in recordNetworks {
                for record in try records.records(of: NetworkID(network: network)).records {
                    recorded[LibcniCache.fileName(of: record.attachment)] = record.attachment
                }
            }
        } catch {
            report.problems.append("cannot list the pod records to compare them with libcni's cache: \(error)")
            return report
        }
        // Adopted pods whose cache entry is gone: the runtime tore them down without randsnat's DEL.
        let present = Set(names)
        for network in (try? records.networks()) ?? [] {
            for record in (try? records.records(of: NetworkID(network: network)).records) ?? [] where record.adopted {
                let fileName = LibcniCache.fileName(of: record.attachment)
                guard !present.contains(fileName) else { continue }
                do {
                    if try plugin.release(record, stillGone: { (try? cache.fileNames())?.contains(fileName) == false }) {
                        recorded[fileName] = nil
                        report.adopted.append("released adopted \(record.attachment): libcni's cache no longer holds it (the runtime tore it down "
                                              + "without randsnat's DEL); its members and record are removed")
                    }
                } catch {
                    report.problems.append("releasing adopted \(record.attachment), whose cache entry is gone, failed: \(error)")
                }
            }
        }
        var live: Set<Attachment> = []
        // An entry that cannot be read or parsed may be a live pod's: while one is there the list of
        // live attachments is unknown, and no member without a record is removed for not being in it.
        var someUnread = false
        var entries: [(fileName: String, entry: Result<CachedAttachment, CacheEntryError>)] = []
        // Only randsnat's networks' files matter (to adopt, and as live owners of members): another
        // network's pods are not read.
        let prefixes = Set(configs.networks.keys).union(recordNetworks).map { Array(($0 + "-").utf8) }
        for name in names {
            if let attachment = recorded[name] {
                live.insert(attachment)
                continue
            }
            guard prefixes.contains(where: { name.utf8.starts(with: $0) }) else { continue }
            let entry = cache.entry(name)
            switch entry {
            case .success(let cached): live.insert(cached.attachment)
            case .failure: someUnread = true
            }
            entries.append((name, entry))
        }
        let recordedSet = Set(recorded.values)
        let plan = AdoptionPlan.plan(entries: entries, configs: configs) { recordedSet.contains($0) }
        var refusals = plan.refusals
        for adoption in plan.adoptions {
            let cached = adoption.cached
            let fileName = LibcniCache.fileName(of: cached.attachment)
            do {
                let done = try plugin.adopt(adoption) {
                    if case .success(let now) = cache.entry(fileName), now.attachment == cached.attachment { return true }
                    return false
                }
                if done {
                    report.adopted.append("adopted \(cached.attachment) (\(cached.addresses.map(\.description).joined(separator: ", "))) from "
                                          + "libcni's cache entry \(fileName): randsnat never saw its ADD; its members and record are in place")
                }
            } catch {
                refusals.append(AdoptionPlan.Refusal(network: cached.attachment.network, fileName: fileName, reason: "adopting it failed: \(error)"))
            }
        }
        report.refusals = refusals
        report.unadopted = AdoptionPlan(refusals: refusals).refusalCounts(networks: configs.networks.keys)
        report.liveAttachments = someUnread ? nil : live
        return report
    }
}

/// What the agent found in libcni's cache in one scan: adopted attachments (one log line each), and
/// those of randsnat's networks it could not adopt.
public struct AdoptionReport: Equatable, Sendable {
    /// "adopted ..." lines, one per attachment.
    public var adopted: [String] = []
    /// Attachments of randsnat networks left without SNAT, one sentence each.
    public var refusals: [AdoptionPlan.Refusal] = []
    /// Per network chaining randsnat: pods in libcni's cache that have no SNAT and cannot be adopted.
    public var unadopted: [String: Int] = [:]
    /// What kept the cache from being compared with the records, one sentence each.
    public var problems: [String] = []
    /// Whether the cache could be read at all (false: no cache at that path, or not listable).
    public var cacheRead = false
    /// The cache's attachments in randsnat's networks (in net.d or with records); nil when the cache, or
    /// one of those networks' entries, could not be read or parsed (whose pod it names is then unknown).
    public var liveAttachments: Set<Attachment>?

    public init() {}

    /// The lines a pass reports as not converged: what could not be read, and each refusal.
    public var problemLines: [String] { problems + refusals.map(\.description) }
}
