// Fuzz target: a network config (stdin) through a pod's whole life on the fake backends of the unit
// tests (Tests/RandSNATCoreTests/Fakes.swift): ADD, CHECK, GC, DEL, then GC, through the Dispatcher as
// the binary runs it, chained or standalone as the config says.
// CNI_IFNAME is the sandbox interface of prevResult when there is one (as the runtime named it), else eth0.
// Oracles: every answer is one JSON document and an error has the spec's shape; after a successful
// ADD, CHECK (given ADD's result as prevResult, as libcni does) succeeds, GC naming the pod as valid
// keeps its members, DEL succeeds and leaves no member of the pod, GC with no valid attachment leaves
// no member at all; an IPAM plugin randsnat runs is a name without a '/' byte; chained ADD passes
// every top-level member of prevResult it does not own through unchanged, member names compared as
// bytes (read by the reference reader of ReferenceJSON.swift, not by JSONValue).
import CNI
@testable import RandSNATCore

/// FakeIPAM, and the names of the plugins randsnat would exec from CNI_PATH.
final class RecordingIPAM: IPAMRunner {
    let fake = FakeIPAM()
    var plugins: [String] = []
    func start(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> any RunningIPAM {
        plugins.append(plugin)
        return try fake.start(verb, plugin: plugin, environment: environment, config: config)
    }
}

struct Pod {
    /// CNI_IFNAME: the sandbox interface of prevResult, as a runtime would name it, else eth0.
    let ifName: String
    let backend = FakeBackend()
    let nft = FakeBackend(kind: .nftables)
    let network = FakePodNetwork()
    let ipam = RecordingIPAM()

    var dispatcher: Dispatcher {
        let snat = SNATPlugin(makeBackend: { [backend, nft] kind, _ in kind == .iptables ? backend : nft }, lock: NoLock(), log: { _ in },
                              pathExists: { _ in true })
        let plugin = RandSNATPlugin(chained: snat, standalone: StandalonePlugin(snat: snat, network: network, ipam: ipam))
        return Dispatcher(plugin: plugin) { error in
            if let error = error as? ConfigError { return CNIError(error.isDecodingFault ? .decodingFailure : .invalidConfig, error.description) }
            return CNIError(.internal, "\(error)")
        }
    }

    var members: [InstalledMember] { (Array(backend.installed.values) + Array(nft.installed.values)).flatMap(\.members) }

    func run(_ verb: Verb, _ stdin: [UInt8]) -> (exitCode: Int32, answer: JSONValue?) {
        let environment = ["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/ns", "CNI_IFNAME": ifName, "CNI_PATH": "/x"]
        let outcome = dispatcher.run(environment: environment, stdin: stdin)
        for plugin in ipam.plugins {
            let name = utf8(plugin)
            expect(!name.contains(UInt8(ascii: "/")) && name != utf8(".") && name != utf8(".."),
                   "\(verb.rawValue) would exec \(plugin.escapedBytes), a path, not a plugin in CNI_PATH")
        }
        if outcome.stdout.isEmpty {
            expect(outcome.exitCode == 0, "\(verb.rawValue) failed and printed nothing")
            return (0, nil)
        }
        expect(outcome.stdout.last == 0x0A, "\(verb.rawValue) output does not end with a newline")
        guard let answer = try? JSONValue.parse(Array(outcome.stdout.dropLast())) else {
            violated("\(verb.rawValue) printed something that is not JSON: \(String(decoding: outcome.stdout, as: UTF8.self).escapedBytes)")
        }
        if outcome.exitCode != 0 {
            expect(answer["code"]?.intValue != nil && answer["msg"]?.stringValue != nil, "\(verb.rawValue) error without code and msg")
        }
        return (outcome.exitCode, answer)
    }
}

/// `config` with `prevResult` set to `result`.
func withPrevResult(_ config: JSONValue, _ result: JSONValue?) -> [UInt8] {
    guard var members = config.objectValue else { return config.serialized() }
    members["prevResult"] = result
    return JSONValue.object(members).serialized()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let parsed = try? JSONValue.parse(bytes)
    let sandbox = parsed?["prevResult"]?["interfaces"]?.arrayValue?.first { $0["sandbox"] != nil }?["name"]?.stringValue
    let pod = Pod(ifName: sandbox ?? "eth0")
    let (added, result) = pod.run(.add, bytes)
    guard added == 0, let result, let config = parsed, let version = config["cniVersion"]?.stringValue.flatMap(CNIVersion.init)
    else { return 0 }
    expect(result["cniVersion"]?.stringValue.map(utf8) == utf8(version.description), "ADD's result is not in the config's version")
    let standalone = config["ipam"].map { $0 != .null } ?? false
    if !standalone, case .object(let members)? = ReferenceParser.parse(bytes),
       case .object(let previous)? = members.last(where: { $0.name == utf8("prevResult") })?.value {
        for member in previous where ![utf8("cniVersion"), utf8("ips"), utf8("interfaces")].contains(member.name) {
            let passed = result.objectValue?[JSONKey(String(decoding: member.name, as: UTF8.self))]
            expect(passed.map(Reference.init) == member.value,
                   "prevResult member \(String(decoding: member.name, as: UTF8.self).escapedBytes) not passed on unchanged")
        }
    }
    let next = withPrevResult(config, result)
    if version >= CNIVersion(0, 4, 0), config["disableCheck"]?.boolValue != true {
        let (checked, answer) = pod.run(.check, next)
        expect(checked == 0, "CHECK right after ADD failed: \(answer?["msg"]?.stringValue?.escapedBytes ?? "")")
    }
    if version >= CNIVersion(1, 1, 0), var members = config.objectValue {
        let before = pod.members.count
        members["prevResult"] = nil
        members["cni.dev/valid-attachments"] = .array([.object(["containerID": .string("c1"), "ifname": .string(pod.ifName)])])
        let (collected, answer) = pod.run(.gc, JSONValue.object(members).serialized())
        expect(collected == 0, "GC failed: \(answer?["msg"]?.stringValue?.escapedBytes ?? "")")
        expect(pod.members.count == before, "GC removed members of a valid attachment (ifname \(pod.ifName.escapedBytes))")
    }
    let (deleted, answer) = pod.run(.del, next)
    expect(deleted == 0, "DEL after ADD failed: \(answer?["msg"]?.stringValue?.escapedBytes ?? "")")
    let network = config["name"]?.stringValue ?? ""
    expect(!pod.members.contains { Attachment.owner(fromComment: $0.comment, network: network)?.containerID.utf8Equals("c1") == true },
           "DEL left the pod's members")
    if version >= CNIVersion(1, 1, 0) {
        guard var members = config.objectValue else { return 0 }
        members["prevResult"] = nil
        members["cni.dev/valid-attachments"] = .array([])
        let (collected, answer) = pod.run(.gc, JSONValue.object(members).serialized())
        expect(collected == 0, "GC failed: \(answer?["msg"]?.stringValue?.escapedBytes ?? "")")
        expect(pod.members.isEmpty, "GC with no valid attachment left members")
    }
    return 0
}
