import CNI
import Testing
@testable import RandSNATCore

/// Per-namespace sysctls in memory; `refuse` makes writes fail as a read-only /proc/sys would,
/// `ignore` makes them succeed and change nothing.
final class FakeSysctls: PodSysctls {
    var values: [String: Int] = [:]
    var refuse = false
    var ignore = false
    var writes: [String] = []
    struct Refused: Error {}

    func tcpTimestamps(netns: String) throws -> Int { values[netns] ?? 1 }
    func setTCPTimestamps(_ value: Int, netns: String) throws {
        writes.append("\(netns)=\(value)")
        if refuse { throw Refused() }
        if !ignore { values[netns] = value }
    }
}

struct PodSettingsTests {
    let backend = FakeBackend()
    let sysctls = FakeSysctls()
    let network = FakePodNetwork()
    let ipam = FakeIPAM()
    var chained: SNATPlugin {
        SNATPlugin(makeBackend: { [backend] kind, _ in kind == .iptables ? backend : FakeBackend(kind: .nftables) }, lock: NoLock(),
                   log: { _ in }, pathExists: { _ in true }, sysctls: sysctls)
    }
    var plugin: RandSNATPlugin { RandSNATPlugin(chained: chained, standalone: StandalonePlugin(snat: chained, network: network, ipam: ipam)) }

    static func chainedRequest(_ verb: Verb, _ extra: String) -> Request { SNATPluginTests.request(verb, extra: extra) }
    static func standaloneRequest(_ verb: Verb, _ extra: String) -> Request { StandalonePluginTests.request(verb, extra: extra) }

    /// ADD, then CHECK with ADD's result as prevResult (chained requests carry one already).
    func addThenCheck(standalone: Bool, _ extra: String) throws -> Request {
        guard standalone else {
            _ = try plugin.add(Self.chainedRequest(.add, extra))
            return Self.chainedRequest(.check, extra)
        }
        let result = try plugin.add(Self.standaloneRequest(.add, extra))
        return Self.standaloneRequest(.check, extra + #","prevResult":"# + String(decoding: result.serialized(), as: UTF8.self))
    }

    @Test(arguments: [false, true])
    func addSetsTheValueAndCheckComparesIt(standalone: Bool) throws {
        let check = try addThenCheck(standalone: standalone, #","podTCPTimestamps":2"#)
        #expect(sysctls.values["/ns"] == 2)
        try plugin.check(check)
        sysctls.values["/ns"] = 1
        let failure = #expect(throws: CheckFailure.self) { try plugin.check(check) }
        #expect(failure?.problems == ["net.ipv4.tcp_timestamps in the pod's network namespace is 1 (timestamps with a random "
                                      + "per-connection offset), podTCPTimestamps says 2 (timestamps without the per-connection offset)"])
    }

    @Test(arguments: [false, true])
    func withoutTheKeyThePodsSettingIsLeftAlone(standalone: Bool) throws {
        sysctls.values["/ns"] = 0
        try plugin.check(addThenCheck(standalone: standalone, ""))
        #expect(sysctls.writes.isEmpty)
        #expect(sysctls.values["/ns"] == 0)
    }

    @Test func aValueAlreadyThereIsNotWritten() throws {
        sysctls.values["/ns"] = 2
        _ = try chained.add(Self.chainedRequest(.add, #","podTCPTimestamps":2"#))
        #expect(sysctls.writes.isEmpty)
    }

    @Test(arguments: [false, true], [false, true])
    func aRefusedValueFailsTheAddAndLeavesNothing(standalone: Bool, ignored: Bool) throws {
        let request = standalone ? Self.standaloneRequest : Self.chainedRequest
        if ignored { sysctls.ignore = true } else { sysctls.refuse = true }
        let error = #expect(throws: PodSettingError.self) { try plugin.add(request(.add, #","podTCPTimestamps":2"#)) }
        #expect(error?.description.contains("setting net.ipv4.tcp_timestamps to 2 in the pod's network namespace /ns failed") == true)
        #expect(backend.installed.isEmpty)
        #expect(sysctls.values["/ns"] ?? 1 == 1)
        if standalone {
            #expect(network.calls == ["create cni0", "configure", "remove"])
            #expect(ipam.calls == [.add, .del])
        }
    }

    @Test(arguments: [false, true])
    func aFailedSNATPutsTheOldValueBack(standalone: Bool) throws {
        let request = standalone ? Self.standaloneRequest : Self.chainedRequest
        backend.failOn = "add 198"
        #expect(throws: CNIError.self) { try plugin.add(request(.add, #","podTCPTimestamps":0"#)) }
        #expect(sysctls.writes == ["/ns=0", "/ns=1"])
        #expect(sysctls.values["/ns"] == 1)
        #expect(backend.installed.isEmpty)
    }

    @Test(arguments: [false, true])
    func aBadValueChangesNothing(standalone: Bool) throws {
        let request = standalone ? Self.standaloneRequest : Self.chainedRequest
        #expect(throws: ConfigError.self) { try plugin.add(request(.add, #","podTCPTimestamps":"2""#)) }
        #expect(sysctls.writes.isEmpty)
        #expect(backend.installed.isEmpty)
        #expect(network.calls.isEmpty && ipam.calls.isEmpty)
    }
}
