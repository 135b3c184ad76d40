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

    /// How a refused key is classed: the JSON type is wrong (code 6), the key is one randsnat does
    /// not implement (code 2, "unsupported field"), or its value is wrong (code 7).
    enum Fault: Sendable { case type, unsupported, value }

    /// Every key BridgeConfig refuses: the config, the key the message starts with, the class, and
    /// the value the message must show (for an unsupported field, as the spec asks).
    static let refused: [(String, String, Fault, String)] = [
        (#"{"ipam":[]}"#, "ipam", .type, ""),
        (#"{"ipam":{"type":"a/b"}}"#, "ipam.type", .value, #""a/b""#),
        (#"{"bridge":"a-name-much-too-long","ipam":{"type":"x"}}"#, "bridge", .value, #""a-name-much-too-long""#),
        (#"{"bridge":7,"ipam":{"type":"x"}}"#, "bridge", .type, ""),
        (#"{"mtu":70000,"ipam":{"type":"x"}}"#, "mtu", .value, "70000"),
        (#"{"mtu":"1500","ipam":{"type":"x"}}"#, "mtu", .type, ""),
        (#"{"hairpinMode":1,"ipam":{"type":"x"}}"#, "hairpinMode", .type, ""),
        (#"{"isGateway":"yes","ipam":{"type":"x"}}"#, "isGateway", .type, ""),
        (#"{"ipMasq":"false","ipam":{"type":"x"}}"#, "ipMasq", .type, ""),
        (#"{"vlan":3,"ipam":{"type":"x"}}"#, "vlan", .unsupported, "3"),
        (#"{"vlan":"3","ipam":{"type":"x"}}"#, "vlan", .type, ""),
        (#"{"vlanTrunk":[{"id":1}],"ipam":{"type":"x"}}"#, "vlanTrunk", .unsupported, #"[{"id":1}]"#),
        (#"{"vlanTrunk":{"id":1},"ipam":{"type":"x"}}"#, "vlanTrunk", .type, ""),
        (#"{"macspoofchk":true,"ipam":{"type":"x"}}"#, "macspoofchk", .unsupported, "true"),
        (#"{"enabledad":true,"ipam":{"type":"x"}}"#, "enabledad", .unsupported, "true"),
        (#"{"disableContainerInterface":true,"ipam":{"type":"x"}}"#, "disableContainerInterface", .unsupported, "true"),
        (#"{"portIsolation":true,"ipam":{"type":"x"}}"#, "portIsolation", .unsupported, "true"),
        (#"{"portIsolation":"on","ipam":{"type":"x"}}"#, "portIsolation", .type, ""),
        (#"{"ipam":{"subnet":"198.18.0.0/24"}}"#, "ipam", .value, #"{"subnet":"198.18.0.0/24"} has no "type""#),
        (#"{"ipam":{"type":3}}"#, "ipam.type", .type, ""),
        (#"{"hairpinMode":true,"promiscMode":true,"ipam":{"type":"x"}}"#, "hairpinMode", .value, ""),
        (#"{"runtimeConfig":{"mac":"02:42:c6:12:00"},"ipam":{"type":"x"}}"#, "runtimeConfig.mac", .value, "02:42:c6:12:00"),
        (#"{"args":{"cni":{"mac":"03:42:c6:12:00:07"}},"ipam":{"type":"x"}}"#, "args.cni.mac", .value, "03:42:c6:12:00:07"),
        (#"{"runtimeConfig":{"mac":"00:00:00:00:00:00"},"ipam":{"type":"x"}}"#, "runtimeConfig.mac", .value, "00:00:00:00:00:00"),
        (#"{"runtimeConfig":{"mac":7},"ipam":{"type":"x"}}"#, "runtimeConfig.mac", .type, ""),
        (#"{"dns":["10.96.0.10"],"ipam":{"type":"x"}}"#, "dns", .type, ""),
        (#"{"dns":{"nameservers":"10.96.0.10"},"ipam":{"type":"x"}}"#, "nameservers", .type, ""),
        (#"{"preserveDefaultVlan":"no","ipam":{"type":"x"}}"#, "preserveDefaultVlan", .type, ""),
    ]

    @Test(arguments: refused)
    func rejects(text: String, key: String, fault: Fault, value: String) throws {
        let error = #expect(throws: ConfigError.self) { try BridgeConfig.parse(Self.members(text)) }
        let description = error?.description ?? ""
        #expect(description.hasPrefix(key + (fault == .type ? " " : ": ")), "\(description)")
        #expect(description.contains(value), "the message shows the value: \(description)")
        #expect(error?.isDecodingFault == (fault == .type), "\(description)")
        #expect(error?.isUnsupportedField == (fault == .unsupported), "\(description)")
    }

    @Test func anUnsupportedFieldShowsALongValueCut() throws {
        let trunk = "[" + (1...500).map { #"{"id":\#($0)}"# }.joined(separator: ",") + "]"
        let error = #expect(throws: ConfigError.self) {
            try BridgeConfig.parse(Self.members(#"{"vlanTrunk":"# + trunk + #","ipam":{"type":"x"}}"#))
        }
        let description = error?.description ?? ""
        #expect(description.hasPrefix(#"vlanTrunk: [{"id":1},{"id":2}"#) && description.contains("…"), "\(description)")
        #expect(description.utf8.count < 400, "\(description)")
    }

    @Test(arguments: [
        ("", #""runtimeConfig":{"mac":"02:00:00:00:00:01"},"args":{"cni":{"mac":"02:00:00:00:00:02"}}"#, "02:00:00:00:00:01"),
        ("MAC=02:00:00:00:00:03", #""args":{"cni":{"mac":"02-00-00-00-00-0A"}}"#, "02:00:00:00:00:0a"),
        ("IgnoreUnknown=1;MAC=02:00:00:00:00:03", #""runtimeConfig":{}"#, "02:00:00:00:00:03"),
        ("MAC=02:00:00:00:00:03", #""runtimeConfig":{"mac":"0200.0000.00fe"}"#, "02:00:00:00:00:fe"),
        ("IgnoreUnknown=1", #""runtimeConfig":{"mac":""}"#, nil),
    ])
    func macHasTheReferenceBridgesPrecedence(cniArgs: String, extra: String, expected: String?) throws {
        let args = cniArgs.split(separator: ";").map { (key: String($0.split(separator: "=")[0]), value: String($0.split(separator: "=")[1])) }
        let config = try #require(try BridgeConfig.parse(Self.members(#"{\#(extra),"ipam":{"type":"x"}}"#), cniArgs: args))
        #expect(config.mac?.description == expected)
    }

    @Test func macAddressesParseAsGoDoes() {
        #expect(MACAddress("02:42:C6:12:00:07")?.bytes == [0x02, 0x42, 0xc6, 0x12, 0x00, 0x07])
        #expect(MACAddress("02-42-c6-12-00-07")?.description == "02:42:c6:12:00:07")
        #expect(MACAddress("0242.c612.0007")?.description == "02:42:c6:12:00:07")
        for bad in ["02:42:c6:12:00", "02:42-c6:12:00:07", "02:42:c6:12:00:0g", "0242c6120007", "02:42:c6:12:00:07:", " 02:42:c6:12:00:0"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func dnsIsKeptWhenItSetsSomething() throws {
        let set = try #require(try BridgeConfig.parse(Self.members(#"{"dns":{"nameservers":["10.96.0.10"],"search":[],"domain":"c.local"},"ipam":{"type":"x"}}"#)))
        #expect(set.dns == .object(["nameservers": .array([.string("10.96.0.10")]), "domain": .string("c.local")]))
        let empty = try #require(try BridgeConfig.parse(Self.members(#"{"dns":{"domain":""},"ipam":{"type":"x"}}"#)))
        #expect(empty.dns == nil)
    }

    @Test(arguments: [#"{"ipam":{}}"#, #"{"ipam":{"type":""}}"#])
    func anEmptyIPAMIsLayer2(text: String) throws {
        #expect(try BridgeConfig.mode(Self.members(text)) == .standalone(ipamType: nil))
        #expect(try BridgeConfig.parse(Self.members(text))?.ipamType == nil)
    }

    @Test func delNeedsOnlyTheIPAMType() throws {
        #expect(try BridgeConfig.mode(Self.members(#"{"mtu":"big","vlan":3,"ipam":{"type":"host-local"}}"#)) == .standalone(ipamType: "host-local"))
        #expect(try BridgeConfig.mode(Self.members(#"{"mtu":"big"}"#)) == .chained)
    }

    @Test(arguments: [
        (#"{"ipMasqBackend":"nftables"}"#, BackendChoice.nftables), (#"{"ipMasqBackend":"iptables"}"#, .iptables),
        (#"{"ipMasqBackend":"nftables","backend":"nftables"}"#, .nftables), (#"{"ipMasqBackend":null,"backend":"iptables"}"#, .iptables),
    ])
    func ipMasqBackendSelectsTheBackend(text: String, expected: BackendChoice) throws {
        #expect(try PluginConfig.parse(Self.members(text)).config.backend == expected)
    }

    @Test(arguments: [#"{"ipMasqBackend":"nftables","backend":"iptables"}"#, #"{"ipMasqBackend":"iptables","backend":"auto"}"#,
                      #"{"ipMasqBackend":"auto"}"#, #"{"ipMasqBackend":"xtables"}"#, #"{"ipMasqBackend":""}"#])
    func ipMasqBackendRefusesOtherValuesAndConflicts(text: String) throws {
        let error = #expect(throws: ConfigError.self) { try PluginConfig.parse(Self.members(text)) }
        #expect(error.map { !$0.isDecodingFault && $0.description.hasPrefix("ipMasqBackend:") } == true, "\(String(describing: error))")
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
    let nftBackend = FakeBackend(kind: .nftables)
    let network = FakePodNetwork()
    let ipam = FakeIPAM()
    var plugin: RandSNATPlugin { plugin(log: Log()) }

    func plugin(log: Log) -> RandSNATPlugin {
        let snat = SNATPlugin(makeBackend: { [backend, nftBackend] kind, _ in kind == .iptables ? backend : nftBackend }, lock: NoLock(),
                              log: { log.lines.append($0) }, pathExists: { _ in true })
        return RandSNATPlugin(chained: snat, standalone: StandalonePlugin(snat: snat, network: network, ipam: ipam))
    }

    static func request(_ verb: Verb, version: String = "0.4.0", extra: String = "", args: String = "", ipamType: String = "host-local") -> Request {
        let text = #"{"cniVersion":"\#(version)","name":"net","type":"randsnat","isGateway":true,"ipam":{"type":"\#(ipamType)"}\#(extra)}"#
        let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/ns",
                                          "CNI_IFNAME": "eth0", "CNI_PATH": "/x", "CNI_ARGS": args])
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

    @Test func ownNetnsIsRefusedBeforeAnything() throws {
        let snat = SNATPlugin(makeBackend: { [backend] kind, _ in kind == .iptables ? backend : FakeBackend(kind: .nftables) }, lock: NoLock(),
                              log: { _ in }, pathExists: { _ in true }, isOwnNetworkNamespace: { $0 == "/ns" })
        let refusing = RandSNATPlugin(chained: snat, standalone: StandalonePlugin(snat: snat, network: network, ipam: ipam))
        for verb in [Verb.add, .del, .check] {
            // The edge gives it code 8 (Tests/EdgeTests).
            let error = #expect(throws: NetnsRefusal.self) { try refusing.dispatch(Self.request(verb, extra: #","prevResult":{"ips":[]}"#)) }
            #expect(error == .ownNamespace(path: "/ns"), "\(verb)")
        }
        #expect(network.calls.isEmpty, "no link made or removed: \(network.calls)")
        #expect(ipam.calls.isEmpty, "IPAM not run: \(ipam.calls)")
        #expect(backend.calls.isEmpty, "\(backend.calls)")
    }

    @Test func delUndoesAllThree() throws {
        _ = try plugin.add(Self.request(.add))
        try plugin.del(Self.request(.del))
        #expect(network.calls == ["create cni0", "configure", "detach"])
        #expect(ipam.calls == [.add, .del])
        #expect(backend.installed.isEmpty)
    }

    @Test func macReachesTheLinkPlanAndCHECK() throws {
        _ = try plugin.add(Self.request(.add, extra: #","runtimeConfig":{"mac":"02:42:c6:12:00:07"}"#, args: "MAC=02:00:00:00:00:01"))
        #expect(network.linkPlans.map(\.mac?.description) == ["02:42:c6:12:00:07"])
        try plugin.check(Self.request(.check, extra: #","runtimeConfig":{"mac":"02:42:c6:12:00:07"},"prevResult":{"ips":[{"address":"198.18.0.9/24"}]}"#))
        #expect(network.plans.last?.mac == MACAddress("02:42:c6:12:00:07"))
    }

    @Test(arguments: [("nftables", true), ("iptables", false)])
    func ipMasqBackendPutsTheSNATThere(name: String, onNFTables: Bool) throws {
        backend.node = .nftables  // what auto would pick
        _ = try plugin.add(Self.request(.add, extra: #","ipMasqBackend":"\#(name)""#))
        #expect(nftBackend.installed.isEmpty == !onNFTables)
        #expect(backend.installed.isEmpty == onNFTables)
    }

    @Test func theConfigsDNSWinsOverIPAMs() throws {
        let result = try plugin.add(Self.request(.add, extra: #","dns":{"nameservers":["192.0.2.53"],"search":["pods.local"]}"#))
        #expect(result["dns"] == .object(["nameservers": .array([.string("192.0.2.53")]), "search": .array([.string("pods.local")])]))
    }

    @Test func layer2OnlyCallsNoIPAMAndWritesNoSNAT() throws {
        let text = #"{"cniVersion":"1.0.0","name":"net","type":"randsnat","ipam":{}}"#
        func request(_ verb: Verb, _ text: String) -> Request {
            let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/ns", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"])
            return Request(environment: env, config: try! NetworkConfig.parse(Array(text.utf8)))
        }
        let result = try plugin.add(request(.add, text))
        #expect(ipam.calls.isEmpty)
        #expect(backend.installed.isEmpty)
        #expect(result["ips"] == nil && result["routes"] == nil)
        #expect(result["interfaces"]?.arrayValue?.map { $0["name"]?.stringValue ?? "" } == ["cni0", "veth0", "eth0"])
        #expect(network.plans.first.map { $0.ips.isEmpty && $0.routes.isEmpty && $0.bridgeAddresses.isEmpty } == true)
        let withPrev = #"{"cniVersion":"1.0.0","name":"net","type":"randsnat","ipam":{},"prevResult":\#(String(decoding: result.serialized(), as: UTF8.self))}"#
        try plugin.check(request(.check, withPrev))
        try plugin.del(request(.del, text))
        try plugin.gc(request(.gc, #"{"cniVersion":"1.1.0","name":"net","type":"randsnat","ipam":{}}"#))
        #expect(ipam.calls.isEmpty)
        #expect(network.calls == ["create cni0", "configure", "problems", "detach"])
    }

    @Test func delOfAConfigEditedAfterADDStillReleasesEverything() throws {
        _ = try plugin.add(Self.request(.add))
        try plugin.del(Self.request(.del, extra: #","mtu":70000,"hairpinMode":true,"promiscMode":true,"vlan":4,"runtimeConfig":{"mac":"bad"}"#))
        #expect(ipam.calls == [.add, .del])
        #expect(network.calls == ["create cni0", "configure", "detach"])
        #expect(backend.installed.isEmpty)
    }

    @Test func dhcpRunsAfterThePodsLinkIsUp() throws {
        ipam.onStart = { [network] verb in network.calls.append("ipam \(verb.rawValue)") }
        _ = try plugin.add(Self.request(.add, ipamType: "dhcp"))
        #expect(network.calls == ["create cni0", "ipam ADD", "configure"])
        #expect(network.linkPlans.first?.podUp == true)
    }

    @Test func otherIPAMPluginsRunWhileTheLinkIsMade() throws {
        ipam.onStart = { [network] verb in network.calls.append("ipam \(verb.rawValue)") }
        _ = try plugin.add(Self.request(.add))
        #expect(network.calls == ["ipam ADD", "create cni0", "configure"])
        #expect(network.linkPlans.first?.podUp == false)
    }

    static let gcExtra = #","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]"#

    @Test(arguments: [Verb.gc, .status])
    func gcAndStatusReachTheIPAMPluginWithTheSameConfig(verb: Verb) throws {
        let request = Self.request(verb, version: "1.1.0", extra: Self.gcExtra)
        if verb == .gc { try plugin.gc(request) } else { try plugin.status(request) }
        #expect(ipam.calls == [verb])
        #expect(ipam.inputs[verb] == request.config.raw)
        #expect(String(decoding: ipam.inputs[verb] ?? [], as: UTF8.self).contains("cni.dev/valid-attachments"))
    }

    @Test(arguments: [Verb.gc, .status])
    func anIPAMPluginThatPredatesTheVerbHasNothingToDo(verb: Verb) throws {
        // Debian's host-local 1.1.1: its old skel answers "missing containerID", its VERSION stops at 1.0.0.
        ipam.failures[verb] = CNIError(CNIError.Code(rawValue: 3), "missing containerID")
        ipam.supportedVersions = ["0.3.1", "0.4.0", "1.0.0"]
        let log = Log()
        let request = Self.request(verb, version: "1.1.0", extra: Self.gcExtra)
        if verb == .gc { try plugin(log: log).gc(request) } else { try plugin(log: log).status(request) }
        #expect(ipam.calls == [verb, .version])
        #expect(log.lines.contains { $0.contains("IPAM plugin \"host-local\" predates \(verb.rawValue)") && $0.contains("missing containerID") })
    }

    @Test(arguments: [Verb.gc, .status])
    func anIPAMPluginThatKnowsTheVerbPassesItsErrorOn(verb: Verb) {
        ipam.failures[verb] = CNIError(.tryAgainLater, "store locked")
        let request = Self.request(verb, version: "1.1.0", extra: Self.gcExtra)
        let error = #expect(throws: CNIError.self) { if verb == .gc { try plugin.gc(request) } else { try plugin.status(request) } }
        #expect(error?.msg == "store locked")
    }

    @Test func anIncompatibleVersionAnswerIsNothingToDo() throws {
        ipam.failures[.gc] = CNIError(.incompatibleVersion, "incompatible CNI versions")
        try plugin.gc(Self.request(.gc, version: "1.1.0"))
        #expect(ipam.calls == [.gc])
    }
}

final class Log: @unchecked Sendable {
    var lines: [String] = []
}
