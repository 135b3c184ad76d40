import CNI
import Testing
@testable import RandSNATCore

struct AddressTests {
    @Test func sha256KnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)).hasPrefix("41edece42d63e8d9bf515a9ba6932e1c"))
    }

    @Test(arguments: [("198.18.0.2", "198.18.0.2"), ("2001:db8::2", "2001:db8::2"), ("2001:0db8:0:0:0:0:0:1", "2001:db8::1"),
                      ("::", "::"), ("::ffff:1.2.3.4", "::ffff:102:304"), ("fe80::1:0:0:1", "fe80::1:0:0:1"),
                      ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1")])
    func parsesAndPrints(text: String, canonical: String) {
        #expect(IPAddress(text)?.description == canonical)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "2001:db8:::1", "1::2::3", "12345::",
                      "2001:db8::g", "1:2:3:4:5:6:7:8:9", " 1.2.3.4"])
    func rejectsBadAddresses(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func cidrMasksHostBitsAndContains() throws {
        let cidr = try #require(CIDR("10.1.2.3/8"))
        #expect(cidr.description == "10.0.0.0/8")
        #expect(cidr.contains(IPAddress("10.255.0.1")!))
        #expect(!cidr.contains(IPAddress("11.0.0.1")!))
        #expect(CIDR("2001:db8::1/32")?.description == "2001:db8::/32")
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("2001:db8::/129") == nil)
        #expect(CIDR("10.0.0.0/") == nil)
        #expect(PodAddress("198.18.0.7/24")?.subnet.description == "198.18.0.0/24")
        #expect(PodAddress("198.18.0.7") == nil)
    }

    @Test func rangesAndPorts() {
        #expect(AddressRange("203.0.113.1-203.0.113.4")?.description == "203.0.113.1-203.0.113.4")
        #expect(AddressRange("203.0.113.4-203.0.113.1") == nil)
        #expect(AddressRange("203.0.113.1-2001:db8::1") == nil)
        #expect(PortRange("32768-65535")?.count == 32768)
        #expect(PortRange("0-10") == nil)
        #expect(PortRange("10-9") == nil)
        #expect(PortRange("1-65536") == nil)
    }
}

struct PluginConfigTests {
    static func members(_ text: String) throws -> [JSONKey: JSONValue] { try JSONValue.parse(Array(text.utf8)).objectValue! }

    @Test func defaults() throws {
        let (config, warnings) = try PluginConfig.parse(Self.members(#"{"cniVersion":"1.1.0","name":"n","type":"randsnat"}"#))
        #expect(config == PluginConfig())
        #expect(warnings.isEmpty)
    }

    @Test func readsEveryKey() throws {
        let (config, _) = try PluginConfig.parse(Self.members("""
        {"nonMasqueradeCIDRs":["10.0.0.0/8","fd00::/8"],"masqLinkLocal":true,"toSource":"203.0.113.1-203.0.113.2",
         "portRange":"32768-65535","egressInterface":"eth0","lockTimeoutSeconds":2.5,"podTCPTimestamps":2}
        """))
        #expect(config.nonMasqueradeCIDRs.map(\.description) == ["10.0.0.0/8", "fd00::/8"])
        #expect(config.masqLinkLocal)
        #expect(config.toSource.map(\.description) == ["203.0.113.1-203.0.113.2"])
        #expect(config.portRange?.description == "32768-65535")
        #expect(config.egressInterface == "eth0")
        #expect(config.lockTimeoutSeconds == 2.5)
        #expect(config.podTCPTimestamps == 2)
    }

    @Test(arguments: [("0", 0), ("1", 1), ("2", 2), ("null", nil)] as [(String, Int?)])
    func podTCPTimestampsTakesTheKernelsValues(text: String, value: Int?) throws {
        #expect(try PluginConfig.parse(Self.members(#"{"podTCPTimestamps":\#(text)}"#)).config.podTCPTimestamps == value)
    }

    @Test func unknownKeysWarnWithASuggestion() throws {
        let (_, warnings) = try PluginConfig.parse(Self.members(#"{"nonMasqueradeCIDR":[],"ipam":{},"runtimeConfig":{},"zzz":1}"#))
        #expect(warnings.count == 2)
        #expect(warnings[0].contains("\"nonMasqueradeCIDR\"") && warnings[0].contains("did you mean \"nonMasqueradeCIDRs\""))
        #expect(warnings[1].contains("\"zzz\"") && !warnings[1].contains("did you mean"))
    }

    static let bad: [(String, String, Bool)] = [
        (#"{"nonMasqueradeCIDRs":"10.0.0.0/8"}"#, "nonMasqueradeCIDRs", true),
        (#"{"nonMasqueradeCIDRs":[10]}"#, "nonMasqueradeCIDRs[0]", true),
        (#"{"nonMasqueradeCIDRs":["10.0.0.0/33"]}"#, "nonMasqueradeCIDRs[0]", false),
        (#"{"nonMasqueradeCIDRs":["10.0.0.1"]}"#, "nonMasqueradeCIDRs[0]", false),
        (#"{"masqLinkLocal":"yes"}"#, "masqLinkLocal", true),
        (#"{"toSource":5}"#, "toSource", true),
        (#"{"toSource":["nope"]}"#, "toSource[0]", false),
        (#"{"portRange":"70000"}"#, "portRange", false),
        (#"{"portRange":80}"#, "portRange", true),
        (#"{"egressInterface":"eth 0"}"#, "egressInterface", false),
        (#"{"egressInterface":[]}"#, "egressInterface", true),
        (#"{"lockTimeoutSeconds":0}"#, "lockTimeoutSeconds", false),
        (#"{"lockTimeoutSeconds":"1"}"#, "lockTimeoutSeconds", true),
        (#"{"ipMasq":"true"}"#, "ipMasq", true),
        // podTCPTimestamps: every other value is a bad value (code 7), whatever its JSON type.
        (#"{"podTCPTimestamps":3}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":-1}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":2.5}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":2.0}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":"2"}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":true}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":[2]}"#, "podTCPTimestamps", false),
        (#"{"podTCPTimestamps":4294967298}"#, "podTCPTimestamps", false),
    ]

    @Test(arguments: bad)
    func rejects(text: String, key: String, isTypeFault: Bool) throws {
        let error = #expect(throws: ConfigError.self) { try PluginConfig.parse(Self.members(text)) }
        #expect(error?.description.hasPrefix(key) == true, "\(error?.description ?? "")")
        #expect(error?.isDecodingFault == isTypeFault)
        #expect(error?.isUnsupportedField == false, "randsnat implements all its own keys: a bad one is code 6 or 7")
    }
}
