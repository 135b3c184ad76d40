import CNI
import Testing
@testable import RandSNATCore

struct PodTimestampsTests {
    @Test func probeDecision() {
        // Readings with offsets far apart, control equal: per-port offsets.
        #expect(TimestampOffsets(withOffsets: [1_378_633_454, 4_153_848_386], control: [1_562_928, 1_562_928]).perPort == true)
        // Readings a ms apart (one offset per address pair), across the 32-bit wrap too.
        #expect(TimestampOffsets(withOffsets: [5_000, 5_001], control: [7, 7]).perPort == false)
        #expect(TimestampOffsets(withOffsets: [UInt32.max, 0], control: [7, 8]).perPort == false)
        // A control that differs: the method says nothing on this kernel.
        #expect(TimestampOffsets(withOffsets: [1, 3_000_000_000], control: [7, 3_000_000]).perPort == nil)
        #expect(TimestampOffsets(withOffsets: [], control: []).perPort == nil)
    }

    @Test func tcpCountersByNstatName() {
        let text = """
        TcpExt: SyncookiesSent TCPSynRetrans PAWSTimewait
        TcpExt: 0 188 3
        IpExt: InNoRoutes
        IpExt: 0
        Tcp: RtoAlgorithm RetransSegs
        Tcp: 1 190
        """
        let counters = PodTCPCounters.parse(text)
        #expect(counters[PodTCPCounters.synRetransmits] == 188)
        #expect(counters["TcpExtPAWSTimewait"] == 3)
        #expect(counters["TcpRetransSegs"] == 190)
    }

    @Test func base64() {
        #expect(Base64.decode("eyJhIjoxfQ==").map { String(decoding: $0, as: UTF8.self) } == #"{"a":1}"#)
        #expect(Base64.decode("eyJhIjoxfQ").map { String(decoding: $0, as: UTF8.self) } == #"{"a":1}"#)
        #expect(Base64.decode("not base64!") == nil)
    }

    static func entry(config: String, netns: String? = "/var/run/netns/p1") -> [UInt8] {
        let encoded = base64Encode(Array(config.utf8))
        var text = #"{"kind":"cniCacheV1","containerId":"c1","config":"\#(encoded)","ifName":"eth0","networkName":"pods","#
        if let netns { text += #""netns":"\#(netns)","# }
        text += #""result":{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/sb"}],"#
        text += #""ips":[{"address":"198.18.0.5/24","interface":1}]}}"#
        return Array(text.utf8)
    }

    static func base64Encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var out = ""
        for start in stride(from: 0, to: bytes.count, by: 3) {
            let chunk = Array(bytes[start..<min(start + 3, bytes.count)]) + [0, 0]
            let value = UInt32(chunk[0]) << 16 | UInt32(chunk[1]) << 8 | UInt32(chunk[2])
            for index in 0..<4 { out.append(index <= bytes.count - start ? alphabet[Int(value >> UInt32(18 - 6 * index) & 63)] : "=") }
        }
        return out
    }

    @Test func libcniCacheEntries() throws {
        let conflist = #"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"randsnat","podTCPTimestamps":2}]}"#
        // Doctor reads the cache with the adoption's one parser (CachedAttachment).
        let chained = try CachedAttachment.parse(Self.entry(config: conflist))
        #expect(chained.attachment == Attachment(network: "pods", containerID: "c1", ifName: "eth0"))
        #expect(chained.netns == "/var/run/netns/p1" && chained.podTCPTimestamps == 2 && chained.chainedRandsnat)
        let standalone = try CachedAttachment.parse(Self.entry(config: #"{"cniVersion":"1.0.0","name":"pods","type":"randsnat","ipam":{}}"#, netns: nil))
        #expect(standalone.netns == "/var/run/netns/sb" && standalone.podTCPTimestamps == nil && standalone.chainedRandsnat)
        let other = try CachedAttachment.parse(Self.entry(config: #"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#))
        #expect(!other.chainedRandsnat)
        #expect(throws: CacheEntryError.self) { try CachedAttachment.parse(Array("not json".utf8)) }
    }

    static func pods(_ byValue: [Int: Int], configured: Int?, retransmits: UInt64) -> NodeFacts.PodTimestamps {
        NodeFacts.PodTimestamps(network: "pods", configured: configured, podsByValue: byValue, synRetransmits: retransmits, unreadable: 0)
    }

    @Test func findings() {
        var earlier = NodeFacts(), facts = NodeFacts()
        facts.timestampOffsets = TimestampOffsets(withOffsets: [1, 3_000_000_000], control: [7, 7])
        earlier.podTimestamps = [Self.pods([1: 3], configured: nil, retransmits: 10)]
        facts.podTimestamps = [Self.pods([1: 3], configured: nil, retransmits: 10)]
        #expect(Diagnosis(facts: facts, earlier: earlier, intervalSeconds: 1).severity == .healthy, "no SYN retransmitted meanwhile")
        facts.podTimestamps = [Self.pods([1: 3], configured: nil, retransmits: 14)]
        let rising = Diagnosis(facts: facts, earlier: earlier, intervalSeconds: 1)
        #expect(rising.severity == .warning)
        #expect(rising.findings.map(\.text) == ["network \"pods\": its pods retransmitted 4 SYNs in 1.0 s; with this kernel's per-port timestamp offsets, servers that close first reject SYNs on reused SNAT 4-tuples (PAWS): podTCPTimestamps 2 removes that (see README)"])
        #expect(rising.synRetransmitDeltas == ["pods": 4])
        // With every pod at 2, retransmits are not PAWS's doing.
        facts.podTimestamps = [Self.pods([2: 3], configured: 2, retransmits: 14)]
        #expect(Diagnosis(facts: facts, earlier: earlier, intervalSeconds: 1).severity == .healthy)
        // A pod whose value is not the configured one.
        facts.podTimestamps = [Self.pods([1: 1, 2: 2], configured: 2, retransmits: 10)]
        let mismatch = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(mismatch.findings.map(\.text) == ["network \"pods\": 1 pods have net.ipv4.tcp_timestamps=1 while podTCPTimestamps says 2 (added before the key, or changed since; CHECK names them)"])
        #expect(mismatch.human().contains("\"pods\": podTCPTimestamps 2; pods: 1 at 1, 2 at 2; SYN retransmits 10"))
        #expect(mismatch.prometheus().contains("randsnat_pod_tcp_timestamps_pods{network=\"pods\",value=\"1\"} 1"))
        #expect(mismatch.prometheus().contains("randsnat_tcp_timestamp_per_port_offsets 1"))
        #expect(mismatch.json()["tcpTimestamps"]?["perPortOffsets"] == .bool(true))
    }
}
