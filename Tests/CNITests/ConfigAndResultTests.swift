import Testing
@testable import CNI

struct NetworkConfigTests {
    static func parse(_ text: String) throws -> NetworkConfig { try NetworkConfig.parse(Array(text.utf8)) }

    @Test(arguments: [
        ("not json", "{", CNIError.Code.decodingFailure, "not valid JSON"),
        ("array", "[1]", .decodingFailure, "must be a JSON object"),
        ("no version", #"{"name":"n","type":"randsnat"}"#, .invalidConfig, "cniVersion"),
        ("version number", #"{"cniVersion":1,"name":"n","type":"randsnat"}"#, .decodingFailure, "cniVersion"),
        ("version text", #"{"cniVersion":"one","name":"n","type":"randsnat"}"#, .decodingFailure, "MAJOR.MINOR.PATCH"),
        ("unknown version", #"{"cniVersion":"9.9.9","name":"n","type":"randsnat"}"#, .incompatibleVersion, "9.9.9"),
        ("0.2.0", #"{"cniVersion":"0.2.0","name":"n","type":"randsnat"}"#, .incompatibleVersion, "0.2.0"),
        ("no name", #"{"cniVersion":"1.1.0","type":"randsnat"}"#, .invalidConfig, "name"),
        ("bad name", #"{"cniVersion":"1.1.0","name":"a b","type":"randsnat"}"#, .invalidConfig, "name"),
        ("name number", #"{"cniVersion":"1.1.0","name":5,"type":"randsnat"}"#, .decodingFailure, "name"),
        ("runtimeConfig list", #"{"cniVersion":"1.1.0","name":"n","type":"randsnat","runtimeConfig":[]}"#, .decodingFailure, "runtimeConfig"),
        ("prevResult string", #"{"cniVersion":"1.1.0","name":"n","type":"randsnat","prevResult":"x"}"#, .decodingFailure, "prevResult"),
    ])
    func rejects(_ name: String, _ text: String, _ code: CNIError.Code, _ words: String) {
        let error = #expect(throws: CNIError.self, "\(name)") { try Self.parse(text) }
        #expect(error?.code == code, "\(name)")
        #expect(error?.msg.contains(words) == true, "\(name): \(error?.msg ?? "")")
    }

    @Test func keepsEverything() throws {
        let config = try Self.parse(#"{"cniVersion":"0.4.0","name":"net","type":"randsnat","runtimeConfig":{"portMappings":[]},"x":1}"#)
        #expect(config.cniVersion == CNIVersion(0, 4, 0))
        #expect(config.runtimeConfig["portMappings"] == .array([]))
        #expect(config.members["x"] == .int(1))
        #expect(config.prevResult == nil)
    }
}

struct ResultTests {
    static let result = try! JSONValue.parse(Array("""
    {"cniVersion":"0.4.0","interfaces":[{"name":"cni0","mac":"aa"},{"name":"veth1"},{"name":"eth0","sandbox":"/var/run/netns/p"}],
     "ips":[{"version":"4","address":"198.18.0.2/24","gateway":"198.18.0.1","interface":2},
            {"version":"6","address":"2001:db8::2/64","interface":2},{"version":"4","address":"198.18.9.9/24","interface":0}],
     "routes":[{"dst":"0.0.0.0/0"}],"dns":{},"extra":{"kept":true}}
    """.utf8))

    @Test func podAddressesAreThoseInTheSandbox() throws {
        let addresses = try CNIResult.podAddresses(Self.result, ifName: "eth0")
        #expect(addresses.map(\.cidr) == ["198.18.0.2/24", "2001:db8::2/64"])
        #expect(addresses.allSatisfy { $0.interfaceName == "eth0" })
    }

    /// Two sandbox interfaces (as a plugin that makes a second one would list them) and a host one.
    static let twoInterfaces = try! JSONValue.parse(Array("""
    {"cniVersion":"1.1.0","interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/var/run/netns/p"},
                                        {"name":"net1","sandbox":"/var/run/netns/p"}],
     "ips":[{"address":"198.18.0.2/24","interface":1},{"address":"10.9.0.2/24","interface":2},
            {"address":"2001:db8::2/64","interface":1},{"address":"198.18.9.9/24","interface":0},{"address":"198.18.7.7/24"}]}
    """.utf8))

    @Test(arguments: [
        ("eth0", ["198.18.0.2/24", "2001:db8::2/64", "198.18.7.7/24"]),
        ("net1", ["10.9.0.2/24", "198.18.7.7/24"]),
        // No sandbox interface of that name: every sandbox interface's addresses, as before.
        ("eth9", ["198.18.0.2/24", "10.9.0.2/24", "2001:db8::2/64", "198.18.7.7/24"]),
        // The host-side interface's name never selects it.
        ("veth1", ["198.18.0.2/24", "10.9.0.2/24", "2001:db8::2/64", "198.18.7.7/24"]),
    ])
    func podAddressesAreThoseOfTheInterfaceNamedIfName(ifName: String, expected: [String]) throws {
        let addresses = try CNIResult.podAddresses(Self.twoInterfaces, ifName: ifName)
        #expect(addresses.map(\.cidr) == expected)
        #expect(addresses.map(\.index) == expected.map { cidr in
            Self.twoInterfaces["ips"]!.arrayValue!.firstIndex { $0["address"]?.stringValue == cidr }!
        }, "each address keeps its place in ips")
    }

    @Test func addressWithoutInterfaceCounts() throws {
        let result = try JSONValue.parse(Array(#"{"ips":[{"address":"198.18.0.5/16"}]}"#.utf8))
        #expect(try CNIResult.podAddresses(result, ifName: "eth0").map(\.cidr) == ["198.18.0.5/16"])
    }

    @Test func convertsTo100AndBack() throws {
        let v100 = try CNIResult.convert(Self.result, to: CNIVersion(1, 0, 0))
        #expect(v100["cniVersion"] == .string("1.0.0"))
        #expect(v100["ips"]?.arrayValue?.allSatisfy { $0["version"] == nil } == true)
        #expect(v100["extra"] == Self.result["extra"])
        #expect(v100["routes"] == Self.result["routes"])
        let v031 = try CNIResult.convert(v100, to: CNIVersion(0, 3, 1))
        #expect(v031["ips"]?.arrayValue?.map { $0["version"]?.stringValue ?? "" } == ["4", "6", "4"])
        #expect(v031["cniVersion"] == .string("0.3.1"))
    }

    @Test(arguments: [CNIVersion(0, 3, 0), CNIVersion(0, 3, 1), CNIVersion(0, 4, 0), CNIVersion(1, 0, 0), CNIVersion(1, 1, 0)])
    func interfaceFieldsOf1xLeaveResultsBefore100(version: CNIVersion) throws {
        let result = try JSONValue.parse(Array("""
        {"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"aa","mtu":1400,"sandbox":"/var/run/netns/p",
         "socketPath":"/run/vhost.sock","pciID":"0000:00:1f.6"}],"ips":[{"address":"198.18.0.2/24","interface":0}]}
        """.utf8))
        let converted = try CNIResult.convert(result, to: version)
        let interface = try #require(converted["interfaces"]?.arrayValue?.first?.objectValue)
        let newer = ["mtu", "socketPath", "pciID"]
        if version < CNIVersion(1, 0, 0) {
            #expect(newer.allSatisfy { interface[$0] == nil }, "\(version): \(interface)")
        } else {
            #expect(newer.allSatisfy { interface[$0] == result["interfaces"]?.arrayValue?.first?[$0] }, "\(version): \(interface)")
        }
        for key in ["name", "mac", "sandbox"] { #expect(interface[key] == result["interfaces"]?.arrayValue?.first?[key]) }
    }

    @Test(arguments: [
        #"{"ips":"x"}"#, #"{"ips":[1]}"#, #"{"interfaces":{},"ips":[]}"#, #"{"ips":[{"address":"1.2.3.4/8","interface":"0"}]}"#,
        #"{"ips":[{"address":"1.2.3.4/8","interface":3}]}"#, #"{"ips":[{"gateway":"1.2.3.4"}]}"#,
    ])
    func garbageIsAnError(text: String) throws {
        let result = try JSONValue.parse(Array(text.utf8))
        #expect(throws: CNIError.self) { try CNIResult.podAddresses(result, ifName: "eth0") }
    }

    @Test func ip4StyleResultIsIncompatible() throws {
        let result = try JSONValue.parse(Array(#"{"ip4":{"ip":"1.2.3.4/24"}}"#.utf8))
        let error = #expect(throws: CNIError.self) { try CNIResult.convert(result, to: .current) }
        #expect(error?.code == .incompatibleVersion)
    }
}
