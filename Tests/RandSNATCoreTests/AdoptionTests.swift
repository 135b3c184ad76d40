import CNI
import Testing
@testable import RandSNATCore

/// libcni's cache entries as the agent reads them: the parser refuses what libcni would not write
/// for a pod with addresses, the plan adopts only attachments of randsnat's networks without a
/// record, and the agent's step adopts them as ADD would and reads the cache only when it changed.
struct AdoptionTests {
    static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)]) + [0, 0]
            let value = UInt32(chunk[0]) << 16 | UInt32(chunk[1]) << 8 | UInt32(chunk[2])
            let count = min(3, bytes.count - index)
            for position in 0..<4 {
                out.append(position <= count ? table[Int(value >> UInt32(18 - 6 * position) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static let bridgeOnly = #"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","bridge":"br0","ipam":{"type":"host-local","ranges":[[{"subnet":"198.18.0.0/24"}]]}}]}"#

    /// A cache entry as libcni writes it.
    static func entry(network: String = "net", container: String = "c1", ifName: String = "eth0", ips: [String] = ["198.18.0.5/24"],
                      config: String = bridgeOnly, kind: String = "cniCacheV1") -> String {
        let addresses = ips.map { #"{"address":"\#($0)","interface":1}"# }.joined(separator: ",")
        return #"{"kind":"\#(kind)","containerId":"\#(container)","config":"\#(base64(Array(config.utf8)))","ifName":"\#(ifName)","networkName":"\#(network)","netns":"/var/run/netns/p1","result":{"cniVersion":"1.0.0","interfaces":[{"name":"br0"},{"name":"\#(ifName)","sandbox":"/var/run/netns/p1"}],"ips":[\#(addresses)]}}"#
    }

    static func parse(_ text: String, fileName: String? = "net-c1-eth0") -> Result<CachedAttachment, CacheEntryError> {
        Result { () throws(CacheEntryError) in try CachedAttachment.parse(Array(text.utf8), fileName: fileName) }
    }

    @Test func readsAnEntryAsLibcniWritesIt() throws {
        let cached = try Self.parse(Self.entry(ips: ["198.18.0.5/24", "2001:db8:18::5/64"])).get()
        #expect(cached.attachment == Attachment(network: "net", containerID: "c1", ifName: "eth0"))
        #expect(cached.addresses == [PodAddress("198.18.0.5/24")!, PodAddress("2001:db8:18::5/64")!])
        #expect(cached.netns == "/var/run/netns/p1")
        #expect(cached.cachedPlugins == ["bridge"] && !cached.chainedRandsnat)
        #expect(LibcniCache.fileName(of: cached.attachment) == "net-c1-eth0")
    }

    static let hostile: [(name: String, text: String, words: String)] = [
        ("garbage", "\u{0}\u{1}not json", "not a JSON object"),
        ("an array", "[1,2]", "not an object"),
        ("another kind", entry(kind: "cniCacheV2"), "kind is \"cniCacheV2\""),
        ("no kind", #"{"containerId":"c1"}"#, "kind is \"none\""),
        ("no container", #"{"kind":"cniCacheV1","networkName":"net","ifName":"eth0"}"#, "no \"containerId\""),
        ("empty interface", entry(ifName: ""), "\"ifName\" is an empty string"),
        ("a number for a name", #"{"kind":"cniCacheV1","networkName":7,"containerId":"c1","ifName":"eth0"}"#, "\"networkName\" is a number"),
        ("no result", #"{"kind":"cniCacheV1","networkName":"net","containerId":"c1","ifName":"eth0"}"#, "no \"result\""),
        ("a result that is a string", #"{"kind":"cniCacheV1","networkName":"net","containerId":"c1","ifName":"eth0","result":"x"}"#, "result cannot be read"),
        ("no address", entry(ips: []), "gives interface eth0 no address"),
        ("an address without prefix", entry(ips: ["198.18.0.5"]), "not an address with a prefix length"),
        ("the whole space", entry(ips: ["198.18.0.5/0"]), "prefix length 0"),
        ("loopback", entry(ips: ["127.0.0.1/8"]), "loopback"),
        ("unspecified", entry(ips: ["0.0.0.0/24"]), "unspecified"),
        ("multicast", entry(ips: ["ff02::1/64"]), "multicast"),
        ("link-local", entry(ips: ["169.254.1.1/16"]), "link-local"),
        ("another attachment's file", entry(container: "c2"), "is not the one libcni gives attachment net/c2/eth0"),
    ]

    @Test(arguments: hostile) func refusesWhatLibcniWouldNotWrite(_ row: (name: String, text: String, words: String)) {
        guard case .failure(let error) = Self.parse(row.text) else {
            Issue.record("\(row.name): parsed")
            return
        }
        #expect("\(error)".contains(row.words), "\(row.name): \(error)")
    }

    @Test func refusesAnEntryLargerThanTheLimit() {
        let padding = String(repeating: " ", count: LibcniCache.entryLimit)
        guard case .failure(.tooLarge) = Self.parse(Self.entry() + padding) else {
            Issue.record("a file past the limit was parsed")
            return
        }
    }

    // MARK: the plan

    static let configs = NodeConfigs.parse([
        ("10-net.conflist", Array(#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"198.18.0.0/24"}],[{"subnet":"2001:db8:18::/64"}]]}},{"type":"randsnat"}]}"#.utf8)),
        ("20-other.conflist", Array(#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}"#.utf8)),
        ("30-dhcp.conflist", Array(#"{"cniVersion":"1.0.0","name":"net-b","plugins":[{"type":"macvlan","ipam":{"type":"dhcp"}},{"type":"randsnat"}]}"#.utf8)),
    ])

    @Test func plansAdoptionsOfRandsnatNetworksWithoutRecords() throws {
        #expect(Self.configs.subnets["net"] == [CIDR("198.18.0.0/24")!, CIDR("2001:db8:18::/64")!])
        #expect(Self.configs.subnets["net-b"] == [])
        let files: [(String, String)] = [
            ("net-c1-eth0", Self.entry()),                                           // adopted
            ("net-c2-eth0", Self.entry(container: "c2", ips: ["198.18.0.6/24"])),    // recorded
            ("other-c3-eth0", Self.entry(network: "other", container: "c3")),        // not randsnat's network
            ("net-c4-eth0", Self.entry(container: "c4", ips: ["198.19.0.4/24"])),    // outside the subnets
            ("net-b-c5-eth0", Self.entry(network: "net-b", container: "c5", ips: ["10.1.2.3/24"])),  // no subnets known: adopted
            ("net-b-c6-eth0", "garbage"),                                            // unreadable, named for net-b
            ("other-c7-eth0", "garbage"),                                            // unreadable, not randsnat's
        ]
        let entries = files.map { (fileName: $0.0, entry: Self.parse($0.1, fileName: $0.0)) }
        let plan = AdoptionPlan.plan(entries: entries, configs: Self.configs) { $0.containerID == "c2" }
        #expect(plan.adoptions.map(\.cached.attachment.containerID) == ["c5", "c1"], "in the order of the file names")
        #expect(plan.adoptions.first?.config["type"] == .string("randsnat"))
        #expect(plan.refusals.map(\.fileName) == ["net-b-c6-eth0", "net-c4-eth0"])
        #expect(plan.refusals.map(\.network) == ["net-b", "net"], "an unreadable file goes to the longest network name it starts with")
        #expect(plan.refusals[1].reason.contains("198.19.0.4/24 is outside the subnets"))
        #expect(plan.refusalCounts(networks: Self.configs.networks.keys) == ["net": 1, "net-b": 1])
    }

    // MARK: the agent's step

    final class FakeCache: LibcniCacheSource {
        var files: [String: String] = [:]
        var stamp: Int64? = 1
        var reads: [String] = []
        var listings = 0
        func version() -> Int64? { stamp }
        func fileNames() throws -> [String]? { listings += 1; return Array(files.keys) }
        func read(_ fileName: String) -> Result<[UInt8], CacheEntryError> {
            reads.append(fileName)
            guard let text = files[fileName] else { return .failure(.unreadable("\(fileName) is gone")) }
            return .success(Array(text.utf8))
        }
    }

    @Test func theAgentAdoptsAsADDWouldAndReadsTheCacheOnlyWhenItChanged() throws {
        let backend = FakeBackend()
        let records = FakeRecords()
        let plugin = SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records)
        let cache = FakeCache()
        cache.files = ["net-c1-eth0": Self.entry(), "net-c4-eth0": Self.entry(container: "c4", ips: ["198.19.0.4/24"]),
                       "other-c3-eth0": Self.entry(network: "other", container: "c3")]
        let adoption = CacheAdoption(cache: cache)
        let report = adoption.run(plugin: plugin, records: records, configs: Self.configs)
        #expect(!cache.reads.contains("other-c3-eth0"), "a network that does not chain randsnat is not read")
        let c1 = Attachment(network: "net", containerID: "c1", ifName: "eth0")
        #expect(report.adopted.count == 1 && report.adopted[0].hasPrefix("adopted net/c1/eth0 (198.18.0.5/24)"))
        #expect(try records.read(c1)?.addresses == [PodAddress("198.18.0.5/24")!])
        #expect(backend.installed.values.flatMap(\.members).map(\.address) == [IPAddress("198.18.0.5")!], "its member is in place")
        #expect(report.unadopted == ["net": 1, "net-b": 0])
        #expect(report.problemLines.count == 1 && report.problemLines[0].contains("net-c4-eth0"))
        #expect(report.liveAttachments == [c1, Attachment(network: "net", containerID: "c4", ifName: "eth0")])

        // An entry that cannot be parsed may be a live pod's: the live list is unknown while it is there.
        let unreadable = CacheAdoption(cache: { let broken = FakeCache(); broken.files = cache.files
                                                broken.files["net-c9-eth0"] = "{ not json"; return broken }())
        #expect(unreadable.run(plugin: plugin, records: records, configs: Self.configs).liveAttachments == nil)

        // Nothing changed: no listing, no read; the refusal stays reported, the adoption is not repeated.
        cache.reads = []
        let listings = cache.listings
        let idle = adoption.run(plugin: plugin, records: records, configs: Self.configs)
        #expect(cache.listings == listings && cache.reads.isEmpty)
        #expect(idle.adopted.isEmpty && idle.unadopted == report.unadopted)

        // A new file: the cache is read again, but not the file of the recorded attachment.
        cache.files["net-c8-eth0"] = Self.entry(container: "c8", ips: ["198.18.0.8/24"])
        cache.stamp = 2
        let next = adoption.run(plugin: plugin, records: records, configs: Self.configs)
        #expect(next.adopted.count == 1 && next.adopted[0].contains("net/c8/eth0"))
        #expect(!cache.reads.contains("net-c1-eth0"), "a recorded attachment's file is not read")

        // A cache whose time cannot be trusted is read on every pass.
        cache.stamp = nil
        _ = adoption.run(plugin: plugin, records: records, configs: Self.configs)
        #expect(cache.listings == listings + 2)

        // The runtime tore c1 down with its cached (bridge-only) config: randsnat's DEL never ran. Its
        // entry is gone: the adopted pod is released; a pod ADD recorded is left to DEL and GC.
        #expect(try records.read(c1)?.adopted == true)
        _ = try plugin.add(SNATPluginTests.request(.add, container: "c7", ips: ["198.18.0.7/24"]))
        cache.files["net-c1-eth0"] = nil
        cache.stamp = 3
        let gone = adoption.run(plugin: plugin, records: records, configs: Self.configs)
        #expect(gone.adopted.contains { $0.hasPrefix("released adopted net/c1/eth0") })
        #expect(try records.read(c1) == nil)
        #expect(!backend.installed.values.flatMap(\.members).map(\.address).contains(IPAddress("198.18.0.5")!))
        #expect(try records.read(Attachment(network: "net", containerID: "c7", ifName: "eth0")) != nil)
    }

    @Test func anAttachmentGoneOrRecordedMeanwhileIsNotAdopted() throws {
        let backend = FakeBackend()
        let records = FakeRecords()
        let plugin = SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records)
        let cached = try Self.parse(Self.entry()).get()
        let adoption = AdoptionPlan.Adoption(cached: cached, config: ["type": .string("randsnat")])
        #expect(try !plugin.adopt(adoption) { false }, "DEL removed the cache entry meanwhile")
        #expect(records.stored.isEmpty && backend.installed.isEmpty)
        try records.write(PodRecord(attachment: cached.attachment, addresses: cached.addresses, backend: .iptables, generation: "1a2b3c4", config: [:]))
        #expect(try !plugin.adopt(adoption) { true }, "an ADD wrote the record meanwhile")
        #expect(backend.installed.isEmpty)
    }

    // MARK: STATUS and doctor

    @Test func statusFailsWith51WhileTheCacheHoldsPodsWithoutRecords() throws {
        let backend = FakeBackend()
        let records = FakeRecords()
        let cache = FakeCache()
        let plugin = SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records,
                                libcniCache: cache)
        _ = try plugin.add(SNATPluginTests.request(.add, container: "c1", ips: ["198.18.0.5/24"]))
        cache.files = ["net-c1-eth0": Self.entry(), "net-b-c5-eth0": Self.entry(network: "net-b", container: "c5")]
        cache.reads = []
        try plugin.status(SNATPluginTests.request(.status, ips: nil))
        #expect(cache.reads == ["net-b-c5-eth0"], "a recorded pod's file is not read; another network's is read once, by its name's prefix")
        cache.files["net-c2-eth0"] = Self.entry(container: "c2", ips: ["198.18.0.6/24"])
        cache.files["net-c3-eth0"] = "garbage"
        do {
            try plugin.status(SNATPluginTests.request(.status, ips: nil))
            Issue.record("STATUS passed with a pod of the cache that randsnat never saw")
        } catch let error as PodsWithoutSNAT {
            #expect(error.problems.count == 2)
            #expect(error.problems[0].contains("1 pod(s) in libcni's cache have no SNAT: randsnat never saw their ADD (net-c2-eth0)"))
            #expect(error.problems[1].contains("net-c3-eth0: it is not a JSON object"))
        }
    }

    @Test func doctorCallsPodsNeverSeenAProblem() {
        var facts = NodeFacts()
        var never = NeverSeenPods(network: "net")
        never.fileNames = ["net-c2-eth0"]
        facts.podsNeverSeen = [never]
        let diagnosis = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(diagnosis.severity == .problem)
        #expect(diagnosis.findings.map(\.text).contains { $0.contains("randsnat never saw their ADD (net-c2-eth0)") })
        #expect(diagnosis.prometheus().contains("randsnat_pods_never_seen{network=\"net\"} 1"))
    }
}
