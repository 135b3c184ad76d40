import CNI
import Testing
@testable import RandSNATCore

/// A verb builds each backend it uses once, and only the ones it uses.
struct VerbBackendsTests {
    final class Builds: @unchecked Sendable { var kinds: [BackendKind] = [] }
    let backend = FakeBackend()
    let nft = FakeBackend(kind: .nftables)
    let builds = Builds()

    var plugin: SNATPlugin {
        SNATPlugin(makeBackend: { [backend, nft, builds] kind, _ in
            builds.kinds.append(kind)
            return kind == .iptables ? backend : nft
        }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
    }

    func counts() -> [BackendKind: Int] { builds.kinds.reduce(into: [:]) { $0[$1, default: 0] += 1 } }

    @Test(arguments: [Verb.add, .del, .check, .gc, .status])
    func eachBackendIsBuiltAtMostOncePerVerb(verb: Verb) throws {
        _ = try plugin.add(SNATPluginTests.request(.add))
        builds.kinds = []
        let request = SNATPluginTests.request(verb, extra: verb == .gc ? #","cni.dev/valid-attachments":[]"# : "")
        switch verb {
        case .add: _ = try plugin.add(request)
        case .del: try plugin.del(request)
        case .check: try plugin.check(request)
        case .gc: try plugin.gc(request)
        default: try plugin.status(request)
        }
        #expect(counts().values.allSatisfy { $0 == 1 }, "\(verb): \(builds.kinds)")
    }

    /// DEL whose record names a set that is gone falls back to looking in every backend: the
    /// record's backend is the one already built, not a second one.
    @Test func delFallingBackFromItsRecordBuildsEachBackendOnce() throws {
        let records = FakeRecords()
        let recording = SNATPlugin(makeBackend: { [backend, nft, builds] kind, _ in
            builds.kinds.append(kind)
            return kind == .iptables ? backend : nft
        }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records)
        _ = try recording.add(SNATPluginTests.request(.add))
        #expect(!records.stored.isEmpty)
        backend.installed = [:]   // the record's sets removed behind randsnat's back
        builds.kinds = []
        try recording.del(SNATPluginTests.request(.del))
        #expect(counts() == [.iptables: 1, .nftables: 1], "\(builds.kinds)")
    }

    @Test func statusOfANamedBackendBuildsOnlyThatOne() throws {
        try plugin.status(SNATPluginTests.request(.status, ips: nil, extra: #","backend":"nftables""#))
        #expect(builds.kinds == [.nftables])
    }
}
