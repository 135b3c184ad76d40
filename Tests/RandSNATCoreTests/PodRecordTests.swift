import CNI
import Testing
@testable import RandSNATCore

/// Records in memory, keyed by attachment.
final class FakeRecords: RecordStore {
    var stored: [RandSNATCore.Attachment: PodRecord] = [:]
    var failWrites = false
    func read(_ attachment: RandSNATCore.Attachment) throws -> PodRecord? { stored[attachment] }
    func write(_ record: PodRecord) throws {
        if failWrites { throw CNIError(.internal, "injected record write failure") }
        stored[record.attachment] = record
    }
    func remove(_ attachment: RandSNATCore.Attachment) throws { stored[attachment] = nil }
    func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String]) {
        (stored.values.filter { NetworkID(network: $0.attachment.network) == id }.sorted { $0.attachment.containerID < $1.attachment.containerID }, [])
    }
    func networks() throws -> [String] { Array(Set(stored.keys.map(\.network))).sorted() }
}

struct PodRecordTests {
    static let record = PodRecord(
        attachment: RandSNATCore.Attachment(network: "net", containerID: "c1", ifName: "eth0"),
        addresses: [PodAddress("198.18.0.2/24")!, PodAddress("2001:db8::2/64")!], backend: .nftables, generation: "1a2b3c4",
        config: ["nonMasqueradeCIDRs": .array([.string("198.19.0.0/16")]), "backend": .string("nftables")])

    @Test func encodesAsDocumentedAndDecodesBack() throws {
        let text = String(decoding: Self.record.encode(), as: UTF8.self)
        #expect(text == #"{"addresses":["198.18.0.2/24","2001:db8::2/64"],"backend":"nftables","config":{"backend":"nftables","nonMasqueradeCIDRs":["198.19.0.0/16"]},"containerID":"c1","generation":"1a2b3c4","ifName":"eth0","network":"net","version":1}"# + "\n")
        #expect(try PodRecord.decode(Self.record.encode()) == Self.record)
    }

    @Test func anAdoptedRecordSaysSoAndKeepsItThroughAMove() throws {
        let adopted = PodRecord(attachment: Self.record.attachment, addresses: Self.record.addresses, backend: .iptables, generation: "1a2b3c4",
                                config: [:], adopted: true)
        #expect(String(decoding: adopted.encode(), as: UTF8.self).contains(#""adopted":true"#))
        #expect(try PodRecord.decode(adopted.encode()) == adopted)
        #expect(adopted.moved(to: .nftables, config: PluginConfig()).adopted)
        #expect(try !PodRecord.decode(Self.record.encode()).adopted, "a record without the field is ADD's")
    }

    /// The file layout is read by every later version: pinned.
    @Test func fileNamesArePinned() {
        #expect(PodRecord.directory(of: NetworkID(network: "net")) == "records/" + NetworkID(network: "net").hash)
        let name = PodRecord.fileName(of: Self.record.attachment)
        #expect(name == "\(SHA256.hex("net\u{0}c1\u{0}eth0").prefix(32)).json")
        #expect(PodRecord.isRecordName(name))
        #expect(!PodRecord.isRecordName("." + name + ".tmp42"))
        #expect(PodRecord.fileName(of: RandSNATCore.Attachment(network: "net", containerID: "c1", ifName: "eth1")) != name)
    }

    /// A temp file names its writer: `<record>.tmp<pid>`, and nothing else is taken for one.
    @Test func tempFilesNameTheirWriter() {
        let temp = PodRecord.tempFileName(of: Self.record.attachment, writer: 4242)
        #expect(temp == PodRecord.fileName(of: Self.record.attachment) + ".tmp4242")
        #expect(PodRecord.writer(ofTemp: temp) == 4242)
        #expect(!PodRecord.isRecordName(temp))
        let name = PodRecord.fileName(of: Self.record.attachment)
        for other in [name, name + ".tmp", name + ".tmp042", name + ".tmp12a", name + ".tmp12345678901", "x" + name.dropFirst() + ".tmp1",
                      name + ".tmp-1", "." + name + ".tmp1"] {
            #expect(PodRecord.writer(ofTemp: other) == nil, "\(other)")
        }
    }

    static let bad: [(String, String, String)] = [
        ("not JSON", "{", "not JSON"),
        ("no version", #"{"network":"n"}"#, "no \"version\""),
        ("newer version", #"{"version":2}"#, "format version 2"),
        ("address without prefix", #"{"version":1,"network":"n","containerID":"c","ifName":"e","addresses":["198.18.0.2"],"backend":"iptables","generation":"1234567","config":{}}"#, "198.18.0.2"),
        ("unknown backend", #"{"version":1,"network":"n","containerID":"c","ifName":"e","addresses":[],"backend":"pf","generation":"1234567","config":{}}"#, "\"backend\""),
        ("no config", #"{"version":1,"network":"n","containerID":"c","ifName":"e","addresses":[],"backend":"iptables","generation":"1234567"}"#, "\"config\""),
    ]

    @Test(arguments: bad) func unusableRecordsSayWhy(row: (String, String, String)) {
        let error = #expect(throws: RecordError.self, "\(row.0)") { try PodRecord.decode(Array(row.1.utf8)) }
        #expect(error?.description.contains(row.2) == true, "\(row.0): \(error?.description ?? "")")
    }

    static let configs = [
        #"{}"#,
        #"{"nonMasqueradeCIDRs":["198.19.0.0/16","2001:db8:19::/48"],"masqLinkLocal":true}"#,
        #"{"toSource":["203.0.113.2","203.0.113.3-203.0.113.4"],"portRange":"40000-40999","egressInterface":"eth1"}"#,
        #"{"lockTimeoutSeconds":2.5,"backend":"nftables","portRange":"5"}"#,
    ]

    /// A moved pod's record keeps the config it was moved into, which must read back equal.
    @Test(arguments: configs) func aConfigReadsBackFromItsMembers(json: String) throws {
        let config = try PluginConfig.parse(JSONValue.parse(Array(json.utf8)).objectValue!).config
        #expect(try PluginConfig.parse(config.members).config == config)
        let moved = Self.record.moved(to: .iptables, config: config)
        #expect(moved.generation == Planner.generation(of: config))
        #expect(moved.pluginConfig == config)
    }

    @Test func theRecordsConfigPlansTheSameGeneration() throws {
        let members: [JSONKey: JSONValue] = ["name": .string("net"), "type": .string("randsnat"), "nonMasqueradeCIDRs": .array([.string("198.19.0.0/16")])]
        let kept = PodRecord.configKeys(of: members)
        #expect(kept.keys.sorted() == ["nonMasqueradeCIDRs"])
        let record = PodRecord(attachment: Self.record.attachment, addresses: [], backend: .iptables,
                               generation: Planner.generation(of: try PluginConfig.parse(members).config), config: kept)
        #expect(Planner.generation(of: record.pluginConfig) == record.generation)
    }
}
