import CNI
import Testing
@testable import RandSNATCore

struct BridgeConfigTests {
    static func members(_ text: String) throws -> [JSONKey: JSONValue] { try JSONValue.parse(Array(text.utf8)).objectValue! }

    @Test func noIpamMeansChained() throws {
        #expect(try BridgeConfig.parse(Self.members(#"{"type":"randsnat"}"#)) == nil)
    }

    @Test func defaultsAreTheReferenceBridge() throws {
        let config = try #require(try BridgeConfig.parse(Self.members(#"{"ipam":{"type":"host-local"}}"#)))
        #expect(config == BridgeConfig(ipamType: "host-local"))
        #expect(config.bridge == "cni0" && config.ipMasq && !config.isGateway)
    }

    @Test func isDefaultGatewayImpliesIsGateway() throws {
        let config = try #require(try BridgeConfig.parse(Self.members(#"{"isDefaultGateway":true,"mtu":0,"ipam":{"type":"static"}}"#)))
        #expect(config.isGateway && config.mtu == nil)
    }

    @Test(arguments: [
        (#"{"ipam":[]}"#, "ipam"), (#"{"ipam":{"type":""}}"#, "ipam.type"), (#"{"ipam":{"type":"a/b"}}"#, "ipam.type"),
        (#"{"vlan":3,"ipam":{"type":"x"}}"#, "vlan"), (#"{"vlanTrunk":[{"id":1}],"ipam":{"type":"x"}}"#, "vlanTrunk"),
        (#"{"enabledad":true,"ipam":{"type":"x"}}"#, "enabledad"), (#"{"portIsolation":true,"ipam":{"type":"x"}}"#, "portIsolation"),
        (#"{"ipMasqBackend":"nftables","ipam":{"type":"x"}}"#, "ipMasqBackend"), (#"{"mtu":70000,"ipam":{"type":"x"}}"#, "mtu"),
        (#"{"hairpinMode":1,"ipam":{"type":"x"}}"#, "hairpinMode"), (#"{"bridge":"a-name-much-too-long","ipam":{"type":"x"}}"#, "bridge"),
    ])
    func rejects(text: String, key: String) throws {
        let error = #expect(throws: ConfigError.self) { try BridgeConfig.parse(Self.members(text)) }
        #expect(error?.description.hasPrefix(key) == true, "\(error?.description ?? "")")
    }

    @Test func defaultValuedUnsupportedKeysAreAccepted() throws {
        #expect(try BridgeConfig.parse(Self.members(#"{"vlan":0,"enabledad":false,"ipMasqBackend":"iptables","ipam":{"type":"x"}}"#)) != nil)
    }
}

struct BridgePlannerTests {
    func ipam(_ text: String) throws -> (ips: [CNIResult.IPConfig], routes: [CNIResult.Route], dns: JSONValue?) {
        try CNIResult.ipamResult(JSONValue.parse(Array(text.utf8)))
    }

    @Test func gatewaysAndDefaultRoutes() throws {
        var config = BridgeConfig(ipamType: "host-local")
        config.isDefaultGateway = true
        config.isGateway = true
        let plan = try BridgePlanner.plan(config, ipam: ipam("""
        {"ips":[{"address":"198.18.0.7/24"},{"address":"2001:db8:18::7/64","gateway":"2001:db8:18::fe"}],
         "routes":[{"dst":"10.0.0.0/8"}]}
        """))
        #expect(plan.ips.map { $0.gateway?.description } == ["198.18.0.1", "2001:db8:18::fe"])
        #expect(plan.bridgeAddresses.map(\.description) == ["198.18.0.1/24", "2001:db8:18::fe/64"])
        #expect(plan.forwarding == [.ipv4, .ipv6])
        #expect(plan.routes == [
            PodRoute(destination: CIDR("10.0.0.0/8")!, gateway: IPAddress("198.18.0.1")),
            PodRoute(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("198.18.0.1")),
            PodRoute(destination: CIDR("::/0")!, gateway: IPAddress("2001:db8:18::fe")),
        ])
    }

    @Test func withoutGatewayNothingOnTheBridge() throws {
        let plan = try BridgePlanner.plan(BridgeConfig(ipamType: "x"), ipam: ipam(#"{"ips":[{"address":"198.18.0.7/24"}]}"#))
        #expect(plan.bridgeAddresses.isEmpty && plan.forwarding.isEmpty && plan.routes.isEmpty)
        #expect(plan.ips.first?.gateway == nil)
    }

    @Test(arguments: [#"{"ips":[]}"#, #"{"ips":[{"address":"198.18.0.7"}]}"#, #"{"ips":[{"address":"198.18.0.7/24","gateway":"2001:db8::1"}]}"#,
                      #"{"ips":[{"address":"198.18.0.7/24"}],"routes":[{"dst":"10.0.0.0"}]}"#])
    func rejectsBadIPAMResults(text: String) throws {
        #expect(throws: ConfigError.self) { try BridgePlanner.plan(BridgeConfig(ipamType: "x"), ipam: ipam(text)) }
    }

    @Test func firstHostCarries() {
        #expect(BridgePlanner.firstHost(of: CIDR("10.0.0.0/8")!).description == "10.0.0.1")
        #expect(BridgePlanner.firstHost(of: CIDR("2001:db8::/64")!).description == "2001:db8::1")
    }
}

struct StandalonePluginTests {
    let backend = FakeBackend()
    let network = FakePodNetwork()
    let ipam = FakeIPAM()
    var plugin: RandSNATPlugin {
        let snat = SNATPlugin(makeBackend: { [backend] kind, _ in kind == .iptables ? backend : FakeBackend(kind: .nftables) }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
        return RandSNATPlugin(chained: snat, standalone: StandalonePlugin(snat: snat, network: network, ipam: ipam))
    }

    static func request(_ verb: Verb, version: String = "0.4.0", extra: String = "") -> Request {
        let text = #"{"cniVersion":"\#(version)","name":"net","type":"randsnat","isGateway":true,"ipam":{"type":"host-local"}\#(extra)}"#
        let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/ns",
                                          "CNI_IFNAME": "eth0", "CNI_PATH": "/x"])
        return Request(environment: env, config: try! NetworkConfig.parse(Array(text.utf8)))
    }

    @Test func addBuildsTheReferenceShapedResult() throws {
        let result = try plugin.add(Self.request(.add))
        #expect(result["cniVersion"] == .string("0.4.0"))
        #expect(result["interfaces"]?.arrayValue?.map { $0["name"]?.stringValue ?? "" } == ["cni0", "veth0", "eth0"])
        #expect(result["interfaces"]?.arrayValue?[2]["sandbox"] == .string("/ns"))
        #expect(result["ips"] == .array([.object(["address": .string("198.18.0.9/24"), "gateway": .string("198.18.0.1"),
                                                  "interface": .int(2), "version": .string("4")])]))
        #expect(result["dns"]?["nameservers"] == .array([.string("10.96.0.10")]))
        #expect(backend.installed.values.flatMap(\.members).map(\.comment) == ["net/c1/eth0"])
    }

    @Test func ipMasqFalseWritesNoSNAT() throws {
        _ = try plugin.add(Self.request(.add, extra: #","ipMasq":false"#))
        #expect(backend.installed.isEmpty)
    }

    @Test func failedAttachGivesTheLeaseBack() {
        network.failAttach = true
        #expect(throws: CNIError.self) { try plugin.add(Self.request(.add)) }
        #expect(ipam.calls == [.add, .del])
        #expect(network.calls == ["create cni0", "configure", "remove"])
        #expect(backend.installed.isEmpty)
    }

    @Test func failedSNATRemovesTheVethAndTheLease() {
        backend.failOn = "add 198"
        #expect(throws: CNIError.self) { try plugin.add(Self.request(.add)) }
        #expect(network.calls == ["create cni0", "configure", "remove"])
        #expect(ipam.calls == [.add, .del])
        #expect(backend.installed.isEmpty)
    }

    @Test func delUndoesAllThree() throws {
        _ = try plugin.add(Self.request(.add))
        try plugin.del(Self.request(.del))
        #expect(network.calls == ["create cni0", "configure", "detach"])
        #expect(ipam.calls == [.add, .del])
        #expect(backend.installed.isEmpty)
    }
}
