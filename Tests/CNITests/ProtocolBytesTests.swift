import Testing
@testable import CNI

/// Protocol text is bytes: libcni, skel and the kernel split and compare CNI_* values and JSON keys
/// byte by byte. Swift's `String` compares by canonical equivalence ("\u{212A}" KELVIN SIGN == "K") and
/// splits by grapheme cluster (a combining mark joins the character before it), which must not change
/// what randsnat reads. Each expectation compares UTF-8 bytes, since `==` on `String` is the thing under test.
struct ProtocolBytesTests {
    static func bytes(_ text: some StringProtocol) -> [UInt8] { Array(text.utf8) }

    @Test func argsSplitAtEverySemicolonByte() throws {
        // U+0301 COMBINING ACUTE ACCENT after ';' makes ";\u{301}" one Character.
        let pairs = try Environment.parseArgs("A=1;\u{301}B=2")
        #expect(pairs.map { Self.bytes($0.key) } == [Self.bytes("A"), Self.bytes("\u{301}B")])
        #expect(pairs.map { Self.bytes($0.value) } == [Self.bytes("1"), Self.bytes("2")])
    }

    @Test func argsDoNotSplitAtACanonicalEquivalentOfSemicolon() throws {
        // U+037E GREEK QUESTION MARK is canonically equivalent to ';' but is not the byte 0x3B.
        let pairs = try Environment.parseArgs("A=1\u{37E}B=2")
        #expect(pairs.map { Self.bytes($0.key) } == [Self.bytes("A")])
        #expect(pairs.map { Self.bytes($0.value) } == [Self.bytes("1\u{37E}B=2")])
    }

    @Test func argsItemStartingWithEqualsAndAMarkHasAnEmptyKey() {
        // A byte split sees "" = "\u{596}="; Characters see the key "=\u{596}".
        let error = #expect(throws: CNIError.self) { try Environment.parseArgs("=\u{596}=") }
        #expect(error?.code == .invalidEnvironment)
        #expect(error?.msg.contains(#"=\xd6\x96="#) == true, "\(error?.msg ?? "")")
    }

    @Test(arguments: ["CNI_ARGS", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"])
    func environmentEntryWhoseValueStartsWithAMarkIsRead(name: String) throws {
        // U+0366 COMBINING LATIN SMALL LETTER O: "=\u{366}" is one Character.
        let entry = try #require(Environment.variable(fromEntry: Array("\(name)=\u{366}x".utf8)))
        #expect(Self.bytes(entry.name) == Self.bytes(name))
        #expect(Self.bytes(entry.value) == Self.bytes("\u{366}x"))
    }

    @Test func environmentEntrySplitsAtTheFirstEqualsOnly() throws {
        let entry = try #require(Environment.variable(fromEntry: Array("CNI_ARGS=A=1;B=2".utf8)))
        #expect(entry.name == "CNI_ARGS" && entry.value == "A=1;B=2")
        #expect(Environment.variable(fromEntry: Array("NOEQUALS".utf8)) == nil)
    }

    @Test func delegatedPluginGetsTheEntriesByteForByte() {
        let entries: [[UInt8]] = [Array("CNI_COMMAND=ADD".utf8), Array("K=1".utf8), Array("\u{212A}=2".utf8),
                                  Array("X=".utf8) + [0xFF], Array("CNI_COMMANDS=x".utf8)]
        let passed = Environment.delegatedEntries(entries, verb: .del)
        #expect(passed == Array(entries.dropFirst()) + [Array("CNI_COMMAND=DEL".utf8)])
    }

    @Test func commandIsComparedByBytes() {
        var variables = EnvironmentTests.full
        variables["CNI_COMMAND"] = "CHEC\u{212A}"
        let error = #expect(throws: CNIError.self) { try Environment.parse(variables) }
        #expect(error?.code == .invalidEnvironment)
        #expect(error?.msg.contains(#"CHEC\xe2\x84\xaa"#) == true, "\(error?.msg ?? "")")
    }

    @Test func versionCommandIsComparedByBytes() {
        // VERSION has no canonical equivalent in ASCII; a trailing mark must not pass as VERSION either.
        let outcome = Dispatcher(plugin: NoPlugin(), mapError: { _ in CNIError(.internal, "") })
            .run(environment: ["CNI_COMMAND": "VERSION\u{301}"], stdin: [])
        #expect(outcome.exitCode == 1)
    }

    @Test func pathSplitsAtEveryColonByte() throws {
        var variables = EnvironmentTests.full
        variables["CNI_PATH"] = "/opt/cni/bin:\u{301}x:/usr/lib/cni"
        let env = try Environment.parse(variables)
        #expect(env.path.map { Self.bytes($0) } == [Self.bytes("/opt/cni/bin"), Self.bytes("\u{301}x"), Self.bytes("/usr/lib/cni")])
    }

    @Test func canonicallyEquivalentKeysStayApart() throws {
        let value = try JSONValue.parse(Array(#"{"\u212a":3,"K":4}"#.utf8))
        #expect(value.objectValue?.count == 2)
        #expect(value.serialized() == Self.bytes("{\"K\":4,\"\u{212A}\":3}"))
        #expect(value["K"] == .int(4))
        #expect(try JSONValue.parse(Array(#"{"\u212a":3}"#.utf8))["K"] == nil)
    }

    @Test func stringsAreEqualOnlyWhenTheirBytesAre() {
        #expect(JSONValue.string("\u{212A}") != .string("K"))
        #expect(JSONValue.string("e\u{301}") != .string("\u{E9}"))
        #expect(JSONValue.string("K") == .string("K"))
    }

    @Test func networkConfigKeepsBothKeysOfPrevResult() throws {
        let text = #"{"cniVersion":"1.1.0","name":"n","type":"randsnat","prevResult":{"\u212a":1,"K":2}}"#
        let config = try NetworkConfig.parse(Array(text.utf8))
        #expect(config.prevResult?.objectValue?.count == 2)
    }

    @Test func versionIsDigitsAndDotsAsBytes() {
        #expect(CNIVersion("1.1.0") == CNIVersion(1, 1, 0))
        #expect(CNIVersion("1.1.0\u{301}") == nil)
        #expect(CNIVersion("1.\u{301}1.0") == nil)
        #expect(CNIVersion("+1.1.0") == nil)
    }
}

/// A plugin for dispatcher tests that never gets past the contract checks.
struct NoPlugin: CNIPlugin {
    func add(_ request: Request) throws -> JSONValue { .null }
    func del(_ request: Request) throws {}
    func check(_ request: Request) throws {}
    func status(_ request: Request) throws {}
    func gc(_ request: Request) throws {}
}
