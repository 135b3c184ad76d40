import CNI
internal import Glibc
import AgentCore
import Installer
import Netfilter
import Netlink
import RandSNATCore

/// The per-pod binary's edge, as a function so that a test executable can run exactly it with one
/// seam set (Tests/DumpCleanup: DEL's conntrack cleanup on the path of kernels without filtered
/// flushes): read env and stdin, build the real adapters, run the verb, print, exit.
public enum PluginMain {
    /// - Parameter flowCleanup: how DEL forgets a pod's flows; the shipped binary always passes `.flush`
    ///   (one filtered flush where the kernel has it, else list and delete).
    public static func run(flowCleanup: FlowCleanup = .flush) -> Never {
        let environment = ProcessEnvironment.read()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let runDirectory = RunDirectory.path(in: environment)
        if arguments.first == "install" {
            let rest = Array(arguments.dropFirst())
            if UsageError.asksForHelp(rest) {
                ProcessEnvironment.write(Installer.usage + "\n", to: 1)
                exit(0)
            }
            let options: Installer.Options
            do { options = try Installer.parse(rest) } catch {
                ProcessEnvironment.write(error.message(command: "randsnat install"), to: 2)
                exit(Installer.Status.usage.rawValue)
            }
            exit(Installer(options: options, files: HostFiles(), log: { ProcessEnvironment.write("\($0)\n", to: 2) },
                           earlierSNAT: NATHookReader.earlierSNAT,
                           earlierLeftovers: { Backends.removeEarlierLeftovers(runDirectory: runDirectory) }).run().rawValue)
        }
        if arguments.first == "doctor" {
            exit(Doctor.run(Array(arguments.dropFirst())))
        }
        if arguments == ["--version"] {
            ProcessEnvironment.write("randsnat \(BuildInfo.version)\n", to: 1)
            exit(0)
        }
        if arguments == ["--help"] || arguments == ["-h"] {
            ProcessEnvironment.write(Help.text, to: 1)
            exit(0)
        }
        let agentMode = arguments.first == "agent"
        if let first = arguments.first, !agentMode {
            let problem = first.hasPrefix("-")
                ? UsageError.unknown(first, accepted: ["--version", "--help"])
                : UsageError("unknown command \(UsageError.quoted(first)); the commands are install, agent and doctor "
                             + "(a runtime runs randsnat with no arguments and CNI_COMMAND set)")
            ProcessEnvironment.write(problem.message(command: "randsnat"), to: 2)
            exit(Installer.Status.usage.rawValue)
        }
        let log = { (line: String) in ProcessEnvironment.write("\(line)\n", to: 2) }
        let makeBackend = Backends.factory(environment: environment, runDirectory: runDirectory, flowCleanup: flowCleanup, log: log)
        if agentMode {
            // `randsnat agent` is randsnat-agent's loop without the metrics endpoint (kept for callers of
            // the per-pod binary; the DaemonSet runs randsnat-agent).
            let (agent, records) = AgentLoop.makePlugin(environment: environment, runDirectory: runDirectory)
            exit(AgentLoop.run(Array(arguments.dropFirst()), command: "randsnat agent", plugin: agent, records: records, runDirectory: runDirectory))
        }
        let chained = SNATPlugin(
            makeBackend: makeBackend,
            lock: NetworkFileLock(directory: runDirectory),
            log: log,
            pathExists: { access($0, F_OK) == 0 },
            isOwnNetworkNamespace: { try NetworkNamespace.isCurrent($0) }, sysctls: NamespaceSysctls(),
            records: RecordFiles(runDirectory: runDirectory),
            libcniCache: LibcniCacheFiles(directory: environment["RANDSNAT_CNI_CACHE"].flatMap { $0.isEmpty ? nil : $0 } ?? LibcniCache.defaultDirectory))
        let plugin = RandSNATPlugin(
            chained: chained,
            standalone: StandalonePlugin(snat: chained, network: BridgeNetwork(), ipam: PluginExec(processEnvironment: ProcessEnvironment.entries())))
        let dispatcher = Dispatcher(plugin: plugin, mapError: ErrorMapping.cniError)
        let isVersion = environment[EnvironmentKey.command.rawValue]?.utf8Equals(Verb.version.rawValue) == true
        let (stdin, tooLarge) = isVersion ? ([], false) : ProcessEnvironment.readStandardInput(limit: Dispatcher.maxInputBytes)
        let outcome = dispatcher.run(environment: environment, stdin: stdin, inputTooLarge: tooLarge)
        ProcessEnvironment.write(outcome.stdout, to: 1)
        exit(outcome.exitCode)
    }
}
