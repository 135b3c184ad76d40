import Netlink
import RandSNATCore
import SystemCalls

extension NodeInspector {
    /// Each randsnat network's pods, from libcni's result cache (the cached config says what
    /// podTCPTimestamps was; the pod's namespace says what tcp_timestamps is and how many SYNs it
    /// retransmitted).
    func podTimestamps() -> [NodeFacts.PodTimestamps] {
        // A cache that is missing or cannot be listed has no pods to tell about.
        guard let listed = try? Files.names(in: cniCache) else { return [] }
        let names = listed.filter { !$0.hasPrefix(".") }
        struct Tally { var configured: Int?; var byValue: [Int: Int] = [:]; var retransmits: UInt64 = 0; var unreadable = 0 }
        var networks: [String: Tally] = [:]
        let reader = PodNamespaceReader()
        for name in names.sorted() {
            guard let bytes = try? CNICacheFiles.read(cniCache + "/" + name),
                  let entry = try? CachedAttachment.parse(bytes, fileName: name), entry.chainedRandsnat else { continue }
            let network = entry.attachment.network
            var tally = networks[network] ?? Tally()
            tally.configured = tally.configured ?? entry.podTCPTimestamps
            if let netns = entry.netns, let pod = try? reader.read(netns: netns) {
                tally.byValue[pod.tcpTimestamps, default: 0] += 1
                tally.retransmits += pod.counters[PodTCPCounters.synRetransmits] ?? 0
            } else {
                tally.unreadable += 1
            }
            networks[network] = tally
        }
        return networks.sorted { $0.key < $1.key }.map {
            NodeFacts.PodTimestamps(network: $0.key, configured: $0.value.configured, podsByValue: $0.value.byValue,
                                    synRetransmits: $0.value.retransmits, unreadable: $0.value.unreadable)
        }
    }
}
