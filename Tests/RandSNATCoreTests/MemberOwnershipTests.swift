import CNI
import Testing
@testable import RandSNATCore

/// A member belongs to one attachment, its owner comment (issue 19, item 5): ADD replaces the
/// attachment's earlier addresses, DEL removes only its own members, and an address given to another
/// attachment is that one's. On both backends' comment limits.
struct MemberOwnershipTests {
    let records = FakeRecords()
    typealias R = SNATPluginTests

    func plugin(_ backend: FakeBackend) -> SNATPlugin {
        SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records)
    }

    func members(_ backend: FakeBackend) -> [String] {
        backend.installed.values.flatMap(\.members).map { "\($0.address) \($0.comment)" }.sorted()
    }

    func key(_ kind: BackendKind) -> String { kind == .nftables ? #","backend":"nftables""# : "" }

    @Test(arguments: BackendKind.allCases)
    func anAddAgainWithAnotherAddressReplacesTheOldMember(kind: BackendKind) throws {
        let backend = FakeBackend(kind: kind)
        let plugin = plugin(backend)
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.2/24"], extra: key(kind)))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.3/24"], extra: key(kind)))
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.5/24"], extra: key(kind)))
        #expect(members(backend) == ["198.18.0.3 net/c2/eth0", "198.18.0.5 net/c1/eth0"])
        #expect(backend.calls.contains("remove 198.18.0.2"), "with its flows: \(backend.calls)")
        try plugin.del(R.request(.del, container: "c1", ips: nil, extra: key(kind)))
        #expect(members(backend) == ["198.18.0.3 net/c2/eth0"], "nothing of c1 is left")
    }

    @Test(arguments: BackendKind.allCases)
    func anAddressTakenOverStaysAfterTheFirstOwnersDel(kind: BackendKind) throws {
        let backend = FakeBackend(kind: kind)
        let plugin = plugin(backend)
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.2/24"], extra: key(kind)))
        // The runtime gives the address again after an IPAM release, before c1's DEL.
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.2/24"], extra: key(kind)))
        #expect(members(backend) == ["198.18.0.2 net/c2/eth0"], "the second ADD takes the member over")
        try plugin.del(R.request(.del, container: "c1", ips: nil, extra: key(kind)))
        #expect(members(backend) == ["198.18.0.2 net/c2/eth0"], "c1's DEL leaves c2's member")
        #expect(!backend.calls.contains("remove 198.18.0.2"))
        // Also without c1's record (DEL then goes by the owner comments).
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.7/24"], extra: key(kind)))
        records.stored[RandSNATCore.Attachment(network: "net", containerID: "c1", ifName: "eth0")] = nil
        try plugin.del(R.request(.del, container: "c1", ips: nil, extra: key(kind)))
        #expect(members(backend) == ["198.18.0.2 net/c2/eth0"])
        try plugin.del(R.request(.del, container: "c2", ips: nil, extra: key(kind)))
        #expect(backend.installed.isEmpty, "the last owner's DEL tears the generation down")
    }

    /// The first ADD's address taken over, then the first attachment added again with a new address:
    /// the taken-over member is not its own any more and stays.
    @Test func anAddAgainLeavesAMemberAnotherTookOver() throws {
        let backend = FakeBackend()
        let plugin = plugin(backend)
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.2/24"]))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.2/24"]))
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.5/24"]))
        #expect(members(backend) == ["198.18.0.2 net/c2/eth0", "198.18.0.5 net/c1/eth0"])
    }
}
