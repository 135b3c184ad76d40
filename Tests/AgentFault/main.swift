import AgentCore
import Glibc

// randsnat-agent-fault: the agent's pass (`randsnat agent` with the same options and environment)
// that kills itself (SIGKILL) when a move's new members are in and the old ones not yet out, for
// the integration test `agent_killed_mid_move_converges`. A test target's executable: it is built
// with the others (`swift build`) but is no product, and the binaries that ship have no such switch.
var environment: [String: String] = [:]
var pointer = environ
while let entry = pointer.pointee {
    let text = String(cString: entry)
    if let equals = text.firstIndex(of: "=") { environment[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
    pointer += 1
}
let runDirectory = environment["RANDSNAT_RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/randsnat"
let (plugin, records) = AgentLoop.makePlugin(environment: environment, runDirectory: runDirectory)
exit(AgentLoop.run(Array(CommandLine.arguments.dropFirst()), command: "randsnat-agent-fault", plugin: plugin, records: records,
                   runDirectory: runDirectory, midMove: { _ = kill(getpid(), SIGKILL) }))
