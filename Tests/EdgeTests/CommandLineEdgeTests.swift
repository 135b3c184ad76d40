import RandSNATCore
import Testing
@testable import AgentCore
@testable import PluginMain

/// The agent's and the plugin's command lines: what a usage error names, what --alive says, what
/// --help lists.
struct CommandLineEdgeTests {
    @Test func theAgentsUsageErrorsNameTheArgument() {
        #expect(throws: UsageError.badValue("--resync", "0", expected: "SECONDS, a number from 1 to 86400")) { try AgentLoop.parse(["--resync", "0"]) }
        #expect(throws: UsageError.missingValue("--resync", form: "--resync SECONDS")) { try AgentLoop.parse(["--resync"]) }
        #expect(throws: UsageError.unknown("--bogus", accepted: AgentLoop.optionForms)) { try AgentLoop.parse(["--once", "--bogus"]) }
        #expect(throws: UsageError("--once and --alive cannot be used together")) { try AgentLoop.parse(["--once", "--alive"]) }
        #expect((try? AgentLoop.parse(["--resync", "5", "--alive"]))?.alive == true)
    }

    @Test func theUsageListsEveryOption() {
        let usage = AgentLoop.usage(command: "randsnat agent")
        let usageLines = usage.split(separator: "\n").prefix(2).joined(separator: " ")
        for form in AgentLoop.optionForms where form != "--help" {
            #expect(usageLines.contains(form.split(separator: " ")[0]), "\(form) is not in the usage lines")
        }
        #expect(usage.contains("\n\n"), "blank lines between sections")
    }

    @Test func aliveStatesTheAgeAndTheLimit() {
        #expect(AgentLoop.aliveFailure(ageSeconds: 17.25, resyncSeconds: 5)
                == "randsnat agent: the last pass ended 17.2 s ago; the limit is 15 s (3 resync periods of 5 s)")
        #expect(AgentLoop.aliveFailure(ageSeconds: 100, resyncSeconds: 30)
                == "randsnat agent: the last pass ended 100 s ago; the limit is 90 s (3 resync periods of 30 s)")
    }

    @Test func randsnatsHelpNamesTheCNIVariablesTheRunDirectoryAndEveryKey() {
        let text = Help.text
        for word in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "RANDSNAT_RUN_DIR"] {
            #expect(text.contains(word))
        }
        for key in PluginConfig.keys + BridgeConfig.keys { #expect(text.contains(key), "\(key) is not in randsnat --help") }
        #expect(text.contains("\n\n"))
        #expect(Help.wrapped(["a", "b"]) == "  a, b")
    }
}
