import CNI
import Netfilter
import Netlink
import SystemCalls
@testable import RandSNATCore
import Testing
@testable import PluginMain

/// Every typed error of the lower layers and the CNI code the edge gives it, as one table.
struct ErrorMappingTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let error: any Error & Sendable
        let code: CNIError.Code
        /// Words the printed message (msg and details) must hold.
        let words: [String]
        var testDescription: String { "\(error) → \(code.rawValue)" }
    }

    static let rows: [Row] = [
        Row(error: CNIError(.invalidNetworkNamespace, "CNI_NETNS=\"/x\""), code: .invalidNetworkNamespace, words: ["/x"]),
        Row(error: NetnsRefusal.missing(path: "/var/run/netns/gone"), code: .invalidEnvironment,
            words: ["/var/run/netns/gone", "does not exist", "the runtime must pass"]),
        Row(error: NetnsRefusal.ownNamespace(path: "/proc/1/ns/net"), code: .invalidNetworkNamespace,
            words: ["/proc/1/ns/net", "own network namespace", "randsnat changed nothing"]),
        Row(error: ConfigError.wrongType(key: "mtu", expected: "a number", actual: "a string"), code: .decodingFailure, words: ["mtu"]),
        Row(error: ConfigError.unsupported(key: "x", value: .null, reason: "r"), code: .unsupportedField, words: ["x"]),
        Row(error: ConfigError.invalidCIDR(key: "nonMasqueradeCIDRs[2]", value: "10.0.0.0/33"), code: .invalidConfig, words: ["10.0.0.0/33"]),
        Row(error: NetfilterError.lockTimeout(path: "/run/xtables.lock", waitedSeconds: 3), code: .tryAgainLater, words: ["/run/xtables.lock"]),
        Row(error: NetfilterError.setUnknown(name: "RANDSNAT-x"), code: .internal, words: ["RANDSNAT-x"]),
        // A kernel that did not answer within NetlinkSocket.answerTimeout: retry; other netlink refusals are not transient.
        Row(error: NetlinkError(operation: "committing", object: "set s", errno: .timedOut, reason: "no answer"), code: .tryAgainLater,
            words: ["set s", "ETIMEDOUT"]),
        Row(error: NetfilterError.netlink(operation: "adding", object: "set s", errno: Errno.timedOut.code, reason: "no answer"),
            code: .tryAgainLater, words: ["set s", "ETIMEDOUT"]),
        Row(error: NetfilterError.netlink(operation: "adding", object: "set s", errno: Errno.exists.code, reason: "there"), code: .internal,
            words: ["set s", "EEXIST"]),
        Row(error: NetlinkError(operation: "reading", object: "link eth0", errno: .notFound, reason: "gone"), code: .internal,
            words: ["link eth0", "ENOENT"]),
        Row(error: DelegatedPluginError.notFound(plugin: "no-such-ipam", searchPath: ["/opt/cni/bin"]), code: .internal,
            words: ["not found in CNI_PATH", "/opt/cni/bin", "containernetworking-plugins"]),
        Row(error: DelegatedPluginError.unreadableResult(plugin: "host-local", reason: "at byte 0"), code: .decodingFailure,
            words: ["not JSON", "at byte 0"]),
        Row(error: DelegatedPluginError.oversizedResult(plugin: "host-local", limit: 1 << 20), code: .decodingFailure,
            words: ["host-local", "more than 1048576 bytes"]),
        Row(error: DelegatedPluginError.noResult(plugin: "host-local"), code: .internal, words: ["host-local", "printed no result"]),
        Row(error: DelegatedPluginError.failed(plugin: "host-local", verb: "ADD", exitStatus: 2), code: .internal, words: ["exit status 2"]),
        Row(error: DelegatedPluginError.cannotRun(path: "/opt/cni/bin/x", what: "run", reason: "Permission denied (EACCES)"), code: .internal,
            words: ["/opt/cni/bin/x", "EACCES"]),
        Row(error: NodeNotReady(problems: ["no ipset"]), code: .pluginNotAvailable, words: ["no ipset"]),
        Row(error: PodsWithoutSNAT(problems: ["missing"]), code: .pluginLimitedConnectivity, words: ["missing"]),
        Row(error: CheckFailure(problems: ["gone"]), code: .internal, words: ["gone"]),
        Row(error: GCFailure(network: "n", steps: [.init(what: "a", error: NetfilterError.lockTimeout(path: "/l", waitedSeconds: 1))]),
            code: .tryAgainLater, words: ["\"n\""]),
        Row(error: GCFailure(network: "n", steps: [.init(what: "a", error: NetfilterError.lockTimeout(path: "/l", waitedSeconds: 1)),
                                                   .init(what: "b", error: NetfilterError.setUnknown(name: "s"))]),
            code: .internal, words: ["2 step(s)"]),
    ]

    @Test(arguments: rows)
    func codes(row: Row) {
        let mapped = ErrorMapping.cniError(row.error)
        #expect(mapped.code == row.code)
        for word in row.words { #expect(mapped.description.contains(word), "\(mapped)") }
    }
}
