import CNI
import Testing
@testable import RandSNATCore

/// An in-memory NATBackend: sets and "rules" as dictionaries, every call recorded.
final class FakeBackend: NATBackend {
    let kind: BackendKind
    /// What `nodeNetfilter` reports.
    var node: BackendKind = .iptables
    /// A backend the kernel cannot serve (no ipset, no nf_tables): every read fails.
    var unreadable = false
    init(kind: BackendKind = .iptables) { self.kind = kind }
    struct State: Equatable { var members: [InstalledMember] = []; var subnets: [CIDR] = [] }
    var installed: [ObjectNames: State] = [:]
    var calls: [String] = []
    var failOn: String?

    func record(_ call: String) throws {
        calls.append(call)
        if let failOn, call.hasPrefix(failOn) { throw CNIError(.internal, "injected failure at \(call)") }
    }

    func isInstalled(_ plan: FamilyPlan) throws -> Bool { try record("isInstalled"); return installed[plan.names] != nil }
    func install(_ plan: FamilyPlan) throws { try record("install \(plan.family)"); installed[plan.names] = installed[plan.names] ?? State() }
    func uninstall(_ names: ObjectNames) throws { try record("uninstall \(names.family)"); installed[names] = nil }
    func add(_ member: PodPlan.Member, comment: String) throws {
        try record("add \(member.address.address)")
        installed[member.names]!.members.removeAll { $0.address == member.address.address }
        installed[member.names]!.members.append(InstalledMember(address: member.address.address, comment: comment))
    }
    func add(subnet: CIDR, to names: ObjectNames) throws {
        try record("addSubnet \(subnet)")
        if !installed[names]!.subnets.contains(subnet) { installed[names]!.subnets.append(subnet) }
    }
    func remove(_ member: InstalledMember, from names: ObjectNames) throws {
        try record("remove \(member.address)")
        installed[names]?.members.removeAll { $0.address == member.address }
    }
    func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws {
        try record("move out \(member.address)")
        installed[names]?.members.removeAll { $0.address == member.address }
    }
    func remove(subnet: CIDR, from names: ObjectNames) throws {
        try record("removeSubnet \(subnet)")
        installed[names]?.subnets.removeAll { $0 == subnet }
    }
    /// How many times every member of the network was read (the per-pod path must not).
    var memberReads = 0
    func generations(of id: NetworkID) throws -> [InstalledGeneration] {
        if unreadable { throw CNIError(.internal, "\(kind) cannot be read") }
        memberReads += 1
        return installed.filter { $0.key.chain.hasPrefix(id.namePrefix) }.sorted { $0.key.family < $1.key.family }
            .map { InstalledGeneration(names: $0.key, members: $0.value.members, subnets: $0.value.subnets) }
    }
    func generationNames(of id: NetworkID) throws -> [ObjectNames] {
        if unreadable { throw CNIError(.internal, "\(kind) cannot be read") }
        return installed.keys.filter { $0.chain.hasPrefix(id.namePrefix) }.sorted { $0.family < $1.family }
    }
    func memberCount(of names: ObjectNames, in id: NetworkID) throws -> Int? { installed[names]?.members.count }
    func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws {
        try record("removeStrays \(keep.count)")
        for names in installed.keys where names.chain.hasPrefix(id.namePrefix) && !keep.contains(names) { installed[names] = nil }
    }
    func problems(with plan: FamilyPlan) throws -> [String] { installed[plan.names] == nil ? ["chain missing"] : [] }
    func status() throws -> NodeReport { NodeReport() }
    func nodeNetfilter() throws -> BackendKind { node }
}

struct NoLock: NetworkLock {
    func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T { try body() }
}

struct SNATPluginTests {
    let backend = FakeBackend()
    let nft = FakeBackend(kind: .nftables)
    var plugin: SNATPlugin {
        SNATPlugin(makeBackend: { [backend, nft] kind, _ in kind == .iptables ? backend : nft }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
    }

    static func request(_ verb: Verb, container: String = "c1", ips: [String]? = ["198.18.0.2/24", "2001:db8::2/64"],
                        extra: String = "") -> Request {
        var text = #"{"cniVersion":"1.1.0","name":"net","type":"randsnat""# + extra
        if let ips {
            let list = ips.map { #"{"address":"\#($0)","interface":1}"# }.joined(separator: ",")
            text += #","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"veth"},{"name":"eth0","sandbox":"/ns"}],"ips":[\#(list)]}"#
        }
        text += "}"
        let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": container, "CNI_NETNS": "/ns",
                                          "CNI_IFNAME": "eth0", "CNI_PATH": "/x"])
        return Request(environment: env, config: try! NetworkConfig.parse(Array(text.utf8)))
    }

    @Test func firstAddInstallsLaterAddsOnlyAddMembers() throws {
        let output = try plugin.add(Self.request(.add))
        #expect(output["ips"]?.arrayValue?.count == 2)
        #expect(backend.calls.filter { $0.hasPrefix("install") } == ["install ipv4", "install ipv6"])
        backend.calls = []
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        #expect(backend.calls == ["isInstalled", "add 198.18.0.3", "addSubnet 198.18.0.0/24"])
    }

    @Test func chainedAddWithoutPrevResultIsAConfigError() {
        #expect(throws: ConfigError.missingPrevResult) { try plugin.add(Self.request(.add, ips: nil)) }
        #expect(backend.calls.isEmpty)
    }

    @Test(arguments: ["198.18.0.2", "198.18.0.2/0", "not-an-address/24"])
    func badPodAddressChangesNothing(address: String) {
        #expect(throws: ConfigError.self) { try plugin.add(Self.request(.add, ips: [address])) }
        #expect(backend.installed.isEmpty)
    }

    @Test func failedAddRollsBack() throws {
        backend.failOn = "add 2001"
        #expect(throws: CNIError.self) { try plugin.add(Self.request(.add)) }
        #expect(backend.installed.isEmpty, "\(backend.installed)")
    }

    @Test func failedAddKeepsOtherPodsState() throws {
        _ = try plugin.add(Self.request(.add, container: "c0", ips: ["198.18.0.9/24"]))
        backend.failOn = "add 2001"
        #expect(throws: CNIError.self) { try plugin.add(Self.request(.add)) }
        let generations = try backend.generations(of: NetworkID(network: "net"))
        #expect(generations.count == 1)
        #expect(generations[0].members == [InstalledMember(address: IPAddress("198.18.0.9")!, comment: "net/c0/eth0")])
        #expect(generations[0].subnets == [CIDR("198.18.0.0/24")!])
    }

    @Test func delRemovesOnlyItsOwnAndLastDelTearsDown() throws {
        _ = try plugin.add(Self.request(.add, container: "c1"))
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        try plugin.del(Self.request(.del, container: "c1", ips: nil))
        var generations = try backend.generations(of: NetworkID(network: "net"))
        #expect(generations.count == 1, "the IPv6 generation had only c1")
        #expect(generations[0].members.map(\.comment) == ["net/c2/eth0"])
        #expect(generations[0].subnets == [CIDR("198.18.0.0/24")!], "c2 still uses the subnet")
        try plugin.del(Self.request(.del, container: "c2"))
        try plugin.del(Self.request(.del, container: "c2"))
        generations = try backend.generations(of: NetworkID(network: "net"))
        #expect(generations.isEmpty)
    }

    @Test func subnetGoesWithItsLastPod() throws {
        _ = try plugin.add(Self.request(.add, container: "c1", ips: ["198.18.0.2/24"]))
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.1.2/24"]))
        try plugin.del(Self.request(.del, container: "c1"))
        #expect(try backend.generations(of: NetworkID(network: "net"))[0].subnets == [CIDR("198.18.1.0/24")!])
    }

    @Test func checkNamesWhatIsMissing() throws {
        _ = try plugin.add(Self.request(.add))
        try plugin.check(Self.request(.check))
        let names = backend.installed.keys.first { $0.family == .ipv4 }!
        backend.installed[names]!.members = []
        let failure = #expect(throws: CheckFailure.self) { try plugin.check(Self.request(.check)) }
        #expect(failure?.problems == ["198.18.0.2 is not in set \(names.memberSet), so its traffic is not SNATed"])
    }

    @Test func gcKeepsValidAttachmentsOnly() throws {
        _ = try plugin.add(Self.request(.add, container: "c1"))
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        try plugin.gc(Self.request(.gc, ips: nil, extra: #","cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]"#))
        let generations = try backend.generations(of: NetworkID(network: "net"))
        #expect(generations.flatMap(\.members).map(\.comment) == ["net/c2/eth0"])
        try plugin.gc(Self.request(.gc, ips: nil, extra: #","cni.dev/valid-attachments":[]"#))
        #expect(backend.installed.isEmpty)
    }

    @Test func gcRejectsMalformedAttachments() {
        #expect(throws: ConfigError.self) {
            try plugin.gc(Self.request(.gc, ips: nil, extra: #","cni.dev/valid-attachments":[{"containerID":1}]"#))
        }
    }

    // MARK: backends

    @Test func autoPutsANewNetworkWhereTheNodesRulesAre() throws {
        backend.node = .nftables
        _ = try plugin.add(Self.request(.add))
        #expect(backend.installed.isEmpty)
        #expect(try nft.generations(of: NetworkID(network: "net")).flatMap(\.members).count == 2)
        // The network stays there even when the node now counts as legacy: only GC moves it.
        backend.node = .iptables
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        #expect(backend.installed.isEmpty)
        try plugin.gc(Self.request(.gc, ips: nil, extra: #","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"eth0"}]"#))
        #expect(nft.installed.isEmpty)
        let moved = try backend.generations(of: NetworkID(network: "net"))
        #expect(Set(moved.flatMap(\.members).map(\.comment)) == ["net/c1/eth0", "net/c2/eth0"])
        #expect(moved.first { $0.names.family == .ipv4 }?.subnets == [CIDR("198.18.0.0/24")!])
    }

    @Test func anExplicitBackendMovesTheNetworkNewStateFirst() throws {
        _ = try plugin.add(Self.request(.add, container: "c1"))
        #expect(!backend.installed.isEmpty)
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"], extra: #","backend":"nftables""#))
        #expect(backend.installed.isEmpty)
        let members = try nft.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.comment)
        #expect(Set(members) == ["net/c1/eth0", "net/c2/eth0"])
        // The old backend's objects went only after the new backend had every member.
        #expect(nft.calls.firstIndex(of: "add 198.18.0.2") != nil)
        #expect(backend.calls.last == "uninstall ipv6")
        try plugin.del(Self.request(.del, container: "c1"))
        #expect(try nft.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.comment) == ["net/c2/eth0"])
    }

    @Test func delFindsAPodInEitherBackend() throws {
        _ = try plugin.add(Self.request(.add, extra: #","backend":"nftables""#))
        try plugin.del(Self.request(.del, ips: nil))
        #expect(nft.installed.isEmpty)
    }

    @Test func backendKeyIsChecked() {
        #expect(throws: ConfigError.self) { try plugin.add(Self.request(.add, extra: #","backend":"xtables""#)) }
        #expect(throws: ConfigError.self) { try plugin.add(Self.request(.add, extra: #","backend":true"#)) }
    }

    @Test func aBackendTheKernelLacksDoesNotStopAutoNorDel() throws {
        backend.unreadable = true  // a pure nftables node without ipset
        backend.node = .nftables
        nft.node = .nftables
        _ = try plugin.add(Self.request(.add))
        #expect(try nft.generations(of: NetworkID(network: "net")).flatMap(\.members).count == 2)
        try plugin.del(Self.request(.del, ips: nil))
        #expect(nft.installed.isEmpty)
        // Named in the config, the same backend's failure is the verb's.
        #expect(throws: CNIError.self) { try plugin.del(Self.request(.del, ips: nil, extra: #","backend":"iptables""#)) }
    }
}

/// The plugin with pod records: ADD writes them, DEL follows them, GC and moves keep them true.
struct SNATPluginRecordTests {
    let backend = FakeBackend()
    let nft = FakeBackend(kind: .nftables)
    let records = FakeRecords()
    var plugin: SNATPlugin {
        SNATPlugin(makeBackend: { [backend, nft] kind, _ in kind == .iptables ? backend : nft }, lock: NoLock(), log: { _ in },
                   pathExists: { _ in true }, records: records)
    }
    typealias R = SNATPluginTests

    @Test func addWritesWhatItApplied() throws {
        _ = try plugin.add(R.request(.add, extra: #","nonMasqueradeCIDRs":["198.19.0.0/16"]"#))
        let record = try #require(records.stored[RandSNATCore.Attachment(network: "net", containerID: "c1", ifName: "eth0")])
        #expect(record.addresses.map(\.description) == ["198.18.0.2/24", "2001:db8::2/64"])
        #expect(record.backend == .iptables)
        #expect(record.config == ["nonMasqueradeCIDRs": .array([.string("198.19.0.0/16")])])
        #expect(record.generation == backend.installed.keys.first!.generation)
    }

    @Test func aFailedRecordWriteRollsTheAddBack() {
        records.failWrites = true
        #expect(throws: CNIError.self) { try plugin.add(R.request(.add)) }
        #expect(backend.installed.isEmpty)
    }

    @Test func perPodPathReadsNoMembers() throws {
        _ = try plugin.add(R.request(.add, container: "c0", ips: ["198.18.0.9/24"]))
        for index in 1...20 { _ = try plugin.add(R.request(.add, container: "p\(index)", ips: ["198.18.0.\(20 + index)/24"])) }
        backend.memberReads = 0
        nft.memberReads = 0
        _ = try plugin.add(R.request(.add, ips: ["198.18.0.2/24"]))
        try plugin.del(R.request(.del, ips: nil))
        #expect(backend.memberReads == 0 && nft.memberReads == 0, "ADD and DEL of one pod read every member")
        #expect(records.stored[RandSNATCore.Attachment(network: "net", containerID: "c1", ifName: "eth0")] == nil)
        #expect(try backend.generations(of: NetworkID(network: "net"))[0].members.count == 21)
    }

    @Test func delFollowsTheRecordAndTheLastTearsDown() throws {
        _ = try plugin.add(R.request(.add, container: "c1"))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        try plugin.del(R.request(.del, container: "c1", ips: nil))
        let generations = try backend.generations(of: NetworkID(network: "net"))
        #expect(generations.count == 1, "the IPv6 generation had only c1")
        #expect(generations[0].members.map(\.comment) == ["net/c2/eth0"])
        try plugin.del(R.request(.del, container: "c2", ips: nil))
        try plugin.del(R.request(.del, container: "c2", ips: nil))
        #expect(backend.installed.isEmpty)
        #expect(records.stored.isEmpty)
    }

    @Test func delWithoutARecordLooksEverywhere() throws {
        _ = try plugin.add(R.request(.add, container: "c1"))
        records.stored = [:]  // added by a randsnat that kept no records
        try plugin.del(R.request(.del, container: "c1", ips: nil))
        #expect(backend.installed.isEmpty)
    }

    @Test func gcRemovesTheRecordsOfGoneAttachments() throws {
        _ = try plugin.add(R.request(.add, container: "c1"))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        try plugin.gc(R.request(.gc, ips: nil, extra: #","cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]"#))
        #expect(records.stored.keys.map(\.containerID) == ["c2"])
    }

    @Test func aMoveRewritesTheRecords() throws {
        _ = try plugin.add(R.request(.add, container: "c1"))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.0.3/24"], extra: #","backend":"nftables""#))
        #expect(Set(records.stored.values.map(\.backend)) == [.nftables])
        try plugin.del(R.request(.del, container: "c1", ips: nil))
        #expect(try nft.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.comment) == ["net/c2/eth0"])
    }
}
