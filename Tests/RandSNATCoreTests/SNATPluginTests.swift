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
