import CNI
import Testing
@testable import RandSNATCore

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

    @Test func chainedAddSNATsTheAddressesOfTheInterfaceNamedIfName() throws {
        // A result with a second sandbox interface (net1): only eth0's (CNI_IFNAME's) address is the pod's here.
        let prev = #","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/ns"},{"name":"net1","sandbox":"/ns"}],"#
            + #""ips":[{"address":"10.9.0.2/24","interface":1},{"address":"198.18.0.2/24","interface":0}]}"#
        _ = try plugin.add(Self.request(.add, ips: nil, extra: prev))
        let members = try backend.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.address.description)
        #expect(members == ["198.18.0.2"])
    }

    @Test func aBadPodAddressIsNamedByItsPlaceInIps() {
        let prev = #","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"veth"},{"name":"eth0","sandbox":"/ns"}],"#
            + #""ips":[{"address":"198.18.0.1/24","interface":0},{"address":"198.18.0.2","interface":1}]}"#
        let error = #expect(throws: ConfigError.self) { try plugin.add(Self.request(.add, ips: nil, extra: prev)) }
        #expect(error?.description.hasPrefix("prevResult.ips[1].address") == true, "\(error?.description ?? "")")
    }

    @Test func ownNetnsIsRefusedBeforeAnything() throws {
        let refusing = SNATPlugin(makeBackend: { [backend, nft] kind, _ in kind == .iptables ? backend : nft }, lock: NoLock(),
                                  log: { _ in }, pathExists: { _ in true }, isOwnNetworkNamespace: { $0 == "/ns" })
        _ = try plugin.add(Self.request(.add))   // a pod added before: DEL must not touch it either
        backend.calls = []
        for verb in [Verb.add, .del] {
            // The edge gives it code 8 (Tests/EdgeTests).
            let error = #expect(throws: NetnsRefusal.self) { try refusing.dispatch(Self.request(verb)) }
            #expect(error == .ownNamespace(path: "/ns"), "\(verb)")
            #expect(error?.description.contains(#"CNI_NETNS="/ns""#) == true, "\(verb): \(error?.description ?? "")")
        }
        #expect(backend.calls.isEmpty && nft.calls.isEmpty, "\(backend.calls) \(nft.calls)")
        #expect(try backend.generations(of: NetworkID(network: "net")).flatMap(\.members).count == 2)
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

    /// c1 (both families) and c3 (a subnet of its own) are stale, c2 is valid.
    func addPodsForGC() throws {
        _ = try plugin.add(Self.request(.add, container: "c1"))
        _ = try plugin.add(Self.request(.add, container: "c2", ips: ["198.18.0.3/24"]))
        _ = try plugin.add(Self.request(.add, container: "c3", ips: ["198.18.1.4/24"]))
        backend.calls = []
    }
    static let keepC2 = #","cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"}]"#
    /// Every step of that GC, in order.
    static let gcSteps = ["remove 198.18.0.2", "remove 198.18.1.4", "removeSubnet 198.18.1.0/24",
                          "remove 2001:db8::2", "uninstall ipv6", "removeStrays 1"]

    /// Each step failing in turn, and the steps that must not follow it (a member left in place
    /// keeps its subnet and its generation).
    static let gcFailures: [(String, [String])] = [
        ("remove 198.18.0.2", []),
        ("remove 198.18.1.4", ["removeSubnet 198.18.1.0/24"]),
        ("removeSubnet 198.18.1.0/24", []),
        ("remove 2001:db8::2", ["uninstall ipv6"]),
        ("uninstall ipv6", []),
        ("removeStrays 1", []),
    ]

    @Test(arguments: gcFailures)
    func gcGoesOnPastOneFailedStep(failing: String, skipped: [String]) throws {
        try addPodsForGC()
        backend.failOn = failing
        let error = #expect(throws: GCFailure.self) { try plugin.gc(Self.request(.gc, ips: nil, extra: Self.keepC2)) }
        #expect(backend.calls == Self.gcSteps.filter { !skipped.contains($0) }, "every other step was still tried")
        #expect(error?.steps.count == 1)
        let object = failing.split(separator: " ").last.map(String.init) ?? ""
        #expect(error?.description.contains(object) == true, "the failure names its object: \(error?.description ?? "")")
        #expect(try backend.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.comment).contains("net/c2/eth0"))
    }

    @Test func gcReportsEveryFailureAtTheEnd() throws {
        try addPodsForGC()
        backend.failOn = "remove 198"
        let error = #expect(throws: GCFailure.self) { try plugin.gc(Self.request(.gc, ips: nil, extra: Self.keepC2)) }
        #expect(error?.steps.count == 2)
        #expect(error?.steps.map(\.what).map { $0.hasPrefix("removing 198.18.0.2 (net/c1/eth0) from ") || $0.hasPrefix("removing 198.18.1.4 (net/c3/eth0) from ") }
                == [true, true], "\(error?.steps.map(\.what) ?? [])")
        #expect(error?.description.contains("injected failure at remove 198.18.1.4") == true, "each step keeps its cause")
        // The IPv6 generation (c1's alone) went all the same.
        #expect(backend.calls.contains("uninstall ipv6"))
        #expect(try backend.generations(of: NetworkID(network: "net")).allSatisfy { $0.names.family == .ipv4 })
    }

    @Test func gcGoesOnPastAConfiguredBackendItCannotRead() throws {
        try addPodsForGC()   // in iptables (auto on an iptables node)
        nft.unreadable = true
        let error = #expect(throws: GCFailure.self) {
            try plugin.gc(Self.request(.gc, ips: nil, extra: Self.keepC2 + #","backend":"nftables""#))
        }
        #expect(error?.steps.first?.what == "reading the nftables backend", "\(error?.description ?? "")")
        #expect(error?.description.contains("nftables cannot be read") == true)
        // The stale pods in iptables went all the same.
        let comments = try backend.generations(of: NetworkID(network: "net")).flatMap(\.members).map(\.comment)
        #expect(comments == ["net/c2/eth0"])
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
        // ADD wrote the pod into nftables, and nothing into iptables: the DEL below has something to find there.
        let written = try nft.generations(of: NetworkID(network: "net")).flatMap(\.members)
        #expect(written == [InstalledMember(address: IPAddress("198.18.0.2")!, comment: "net/c1/eth0"),
                            InstalledMember(address: IPAddress("2001:db8::2")!, comment: "net/c1/eth0")])
        #expect(backend.installed.isEmpty)
        // DEL's config names no backend (auto, on a node that counts as iptables): it still finds the pod.
        try plugin.del(Self.request(.del, ips: nil))
        #expect(nft.installed.isEmpty, "\(nft.installed)")
        #expect(nft.calls.contains("remove 198.18.0.2") && nft.calls.contains("remove 2001:db8::2"), "\(nft.calls)")
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

extension CNIPlugin {
    /// Runs the verb the request's environment names.
    func dispatch(_ request: Request) throws {
        switch request.environment.verb {
        case .add: _ = try add(request)
        case .del: try del(request)
        case .check: try check(request)
        case .gc: try gc(request)
        case .status: try status(request)
        case .version: break
        }
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
