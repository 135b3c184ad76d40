import Testing
@testable import CNI

/// A plugin that records the verbs it saw and fails on demand.
final class RecordingPlugin: CNIPlugin {
    var calls: [Verb] = []
    var failure: (any Error)?

    func add(_ request: Request) throws -> JSONValue {
        calls.append(.add)
        if let failure { throw failure }
        return .object(["cniVersion": .string(request.config.cniVersion.description)])
    }
    func del(_ request: Request) throws { calls.append(.del); if let failure { throw failure } }
    func check(_ request: Request) throws { calls.append(.check); if let failure { throw failure } }
    func status(_ request: Request) throws { calls.append(.status); if let failure { throw failure } }
    func gc(_ request: Request) throws { calls.append(.gc); if let failure { throw failure } }
}

struct Opaque: Error {}

struct DispatcherTests {
    static func env(_ verb: String) -> [String: String] {
        ["CNI_COMMAND": verb, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"]
    }
    static func config(_ version: String) -> [UInt8] { Array(#"{"cniVersion":"\#(version)","name":"n","type":"randsnat"}"#.utf8) }

    func run(_ plugin: RecordingPlugin, _ verb: String, _ version: String = "1.1.0", tooLarge: Bool = false) -> (JSONValue?, Int32) {
        let dispatcher = Dispatcher(plugin: plugin) { CNIError(.internal, "mapped: \($0)") }
        let outcome = dispatcher.run(environment: Self.env(verb), stdin: Self.config(version), inputTooLarge: tooLarge)
        return (outcome.stdout.isEmpty ? nil : try? JSONValue.parse(outcome.stdout), outcome.exitCode)
    }

    @Test func versionListsSupportedVersions() {
        let (output, code) = run(RecordingPlugin(), "VERSION")
        #expect(code == 0)
        #expect(output?["cniVersion"] == .string("1.1.0"))
        #expect(output?["supportedVersions"]?.arrayValue?.count == CNIVersion.supported.count)
    }

    @Test(arguments: [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "0.4.0")])
    func verbsNeedTheirVersion(verb: String, version: String) {
        let plugin = RecordingPlugin()
        let (output, code) = run(plugin, verb, version)
        #expect(code != 0)
        #expect(output?["code"] == .int(1))
        #expect(output?["cniVersion"] == .string(version))
        #expect(plugin.calls.isEmpty)
    }

    @Test func addPrintsResultAndDelPrintsNothing() {
        let plugin = RecordingPlugin()
        #expect(run(plugin, "ADD", "0.4.0").0?["cniVersion"] == .string("0.4.0"))
        let (output, code) = run(plugin, "DEL")
        #expect(output == nil && code == 0)
        #expect(plugin.calls == [.add, .del])
    }

    @Test func errorsHaveTheSpecShape() {
        let plugin = RecordingPlugin()
        plugin.failure = CNIError(.tryAgainLater, "busy", details: "later")
        let (output, code) = run(plugin, "ADD", "1.0.0")
        #expect(code == 1)
        #expect(output == .object(["cniVersion": .string("1.0.0"), "code": .int(11), "msg": .string("busy"), "details": .string("later")]))
        plugin.failure = Opaque()
        #expect(run(plugin, "DEL").0?["msg"]?.stringValue?.hasPrefix("mapped") == true)
    }

    @Test func oversizedInputIsCode6() {
        let (output, _) = run(RecordingPlugin(), "ADD", tooLarge: true)
        #expect(output?["code"] == .int(6))
    }
}
