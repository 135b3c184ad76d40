import Glibc
import Testing
@testable import Netfilter
@testable import RandSNATCore

/// Records on disk: the written bytes read back, removal, and the agent's cache seeing every change.
struct RecordFilesTests {
    static func record(_ container: String) -> PodRecord {
        PodRecord(attachment: RandSNATCore.Attachment(network: "net", containerID: container, ifName: "eth0"),
                  addresses: [PodAddress("198.18.0.2/24")!], backend: .iptables, generation: "1234567", config: [:])
    }

    static func temporaryDirectory() -> String {
        var template = Array("/tmp/randsnat-records.XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    @Test func writeReadRemoveAndTheCacheSeesEveryChange() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        let files = RecordFiles(runDirectory: directory)
        let cached = CachedRecordFiles(runDirectory: directory)
        let id = NetworkID(network: "net")
        try files.write(Self.record("a"))
        #expect(try files.read(Self.record("a").attachment) == Self.record("a"))
        #expect(try files.networks() == ["net"])
        usleep(200_000)
        #expect(try cached.records(of: id).records.map(\.attachment.containerID) == ["a"])
        #expect(try cached.records(of: id).records.map(\.attachment.containerID) == ["a"], "served from the cache")
        try files.write(Self.record("b"))
        #expect(Set(try cached.records(of: id).records.map(\.attachment.containerID)) == ["a", "b"], "a new record is seen at once")
        usleep(200_000)
        _ = try cached.records(of: id)
        try files.write(Self.record("a").moved(to: .nftables, config: PluginConfig()))
        #expect(try cached.records(of: id).records.first { $0.attachment.containerID == "a" }?.backend == .nftables, "a rewritten record is seen")
        try files.remove(Self.record("a").attachment)
        try files.remove(Self.record("a").attachment)
        #expect(try cached.records(of: id).records.map(\.attachment.containerID) == ["b"])
    }
}
