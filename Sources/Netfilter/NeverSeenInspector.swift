import RandSNATCore

extension NodeInspector {
    /// Per randsnat network (those in the kernel and those with records), the pods of libcni's cache
    /// that have no record: randsnat never saw their ADD. Reads only the cache files of unrecorded names.
    func podsNeverSeen(kernelNetworks: [String]) -> [NeverSeenPods] {
        guard let records else { return [] }
        let cache = LibcniCacheFiles(directory: cniCache)
        guard let names = try? cache.fileNames() else { return [] }
        let networks = Set(kernelNetworks.filter { !$0.hasPrefix("(unknown") } + ((try? records.networks()) ?? []))
        return networks.sorted().compactMap { network in
            let recorded = ((try? records.records(of: NetworkID(network: network)).records) ?? []).map { LibcniCache.fileName(of: $0.attachment) }
            let found = cache.neverSeen(network: network, recorded: Set(recorded), in: names)
            return found.isEmpty ? nil : found
        }
    }
}
