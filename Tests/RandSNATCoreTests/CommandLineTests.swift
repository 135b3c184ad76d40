import CNI
import Testing
@testable import RandSNATCore

/// The pure parts of the command lines and the agent's log: usage errors, timestamps, config
/// errors as the user wrote the value, the repair line.
struct CommandLineTests {
    @Test func aUsageErrorNamesTheArgumentThenPointsAtHelp() {
        let error = UsageError.badValue("--resync", "0", expected: "SECONDS, a number from 1 to 86400")
        #expect(error.message(command: "randsnat-agent")
                == "randsnat-agent: --resync 0: expected SECONDS, a number from 1 to 86400\nrun 'randsnat-agent --help' for usage\n")
        #expect(UsageError.unknown("--bogus", accepted: ["--once", "--alive"]).problem == "unknown argument --bogus; the options are --once, --alive")
        #expect(UsageError.missingValue("--metrics", form: "--metrics ADDR:PORT").problem == "--metrics needs a value: --metrics ADDR:PORT")
        #expect(UsageError.badValue("--host-root", "", expected: "a directory").problem == "--host-root \"\": expected a directory")
        #expect(UsageError.asksForHelp(["--resync", "3", "-h"]) && UsageError.asksForHelp(["--help"]) && !UsageError.asksForHelp(["--once"]))
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (Int64(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z"),
        (Int64(1_709_251_199_999_999_999), "2024-02-29T23:59:59.999Z"),
        (Int64(1_796_692_803_042_000_000), "2026-12-08T01:20:03.042Z"),
        (Int64(-1_000_000), "1969-12-31T23:59:59.999Z"),
        (Int64(4_102_444_800_000_000_000), "2100-01-01T00:00:00.000Z"),
    ])
    func logTimestampsAreRFC3339InUTC(nanoseconds: Int64, text: String) {
        #expect(LogTimestamp.format(unixNanoseconds: nanoseconds) == text)
    }

    static func members(_ text: String) throws -> [JSONKey: JSONValue] {
        try #require(try JSONValue.parse(Array(text.utf8)).objectValue)
    }

    @Test(arguments: [
        (#"{"toSource":["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4","1.1.1.5","1.1.1.6","1.1.1.7","1.1.1.8","1.1.1.9","1.1.1.10","1.1.1.11","1.1.1.12","1.1.1.13","1.1.1.14","1.1.1.15","1.1.1.16","1.1.1.17"]}"#,
         "toSource has 17 items; at most 16 addresses or ranges"),
        (#"{"lockTimeoutSeconds":0}"#, "lockTimeoutSeconds: 0 must be more than 0 and at most 300 (seconds)"),
        (#"{"lockTimeoutSeconds":301.5}"#, "lockTimeoutSeconds: 301.5 must be more than 0 and at most 300 (seconds)"),
        (#"{"nonMasqueradeCIDRs":{}}"#, "nonMasqueradeCIDRs must be an array of strings, not an object"),
        (#"{"egressInterface":[]}"#, "egressInterface must be a string, not an array"),
        (#"{"masqLinkLocal":"yes"}"#, "masqLinkLocal must be true or false, not a string"),
    ])
    func configErrorsQuoteTheValueAsWritten(text: String, message: String) throws {
        let error = #expect(throws: ConfigError.self) { try PluginConfig.parse(Self.members(text)) }
        #expect(error?.description == message)
    }

    @Test func podTCPTimestampsShowsANumberAsANumberAndAStringAsAString() throws {
        let number = #expect(throws: ConfigError.self) { try PluginConfig.parse(Self.members(#"{"podTCPTimestamps":3}"#)) }
        #expect(number?.description.hasPrefix("podTCPTimestamps: 3 must be the number 0, 1 or 2") == true)
        let string = #expect(throws: ConfigError.self) { try PluginConfig.parse(Self.members(#"{"podTCPTimestamps":"2"}"#)) }
        #expect(string?.description.hasPrefix("podTCPTimestamps: \"2\" is a string; it must be") == true)
    }

    @Test func aRulesRepairNamesWhatWasMissing() {
        let names = Planner.family(.ipv4, network: "n", config: PluginConfig()).names
        let jump = ReconcileReport.rulesRepair(network: "n", names: names, pods: 3, backend: "iptables",
                                               missing: ["iptables nat POSTROUTING has no jump to \(names.chain)"])
        #expect(jump == "network \"n\": repaired generation \(names.generation) (IPv4, 3 pods) in iptables: "
                + "iptables nat POSTROUTING has no jump to \(names.chain)")
        let many = ReconcileReport.rulesRepair(network: "n", names: names, pods: 1, backend: "nftables", missing: ["a", "b", "c", "d", "e"])
        #expect(many.hasSuffix("in nftables: a; b; c; and 2 more"))
        #expect(ReconcileReport.rulesRepair(network: "n", names: names, pods: 1, backend: "iptables", missing: [])
                .hasSuffix("its chain, jump and sets were not in place"))
    }
}
