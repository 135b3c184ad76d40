import CNI
import Glibc
import Netfilter
import RandSNATCore

// The edge: read env and stdin, build the real adapters, run the verb, print, exit.
let environment = ProcessEnvironment.read()
let plugin = SNATPlugin(
    makeBackend: { config in
        try IPTablesBackend(xtablesLock: .xtables(environment: environment), lockTimeoutSeconds: config.lockTimeoutSeconds)
    },
    lock: NetworkFileLock(),
    log: { ProcessEnvironment.write("\($0)\n", to: 2) },
    pathExists: { access($0, F_OK) == 0 })
let dispatcher = Dispatcher(plugin: plugin, mapError: ErrorMapping.cniError)
let isVersion = environment[EnvironmentKey.command.rawValue] == Verb.version.rawValue
let (stdin, tooLarge) = isVersion ? ([], false) : ProcessEnvironment.readStandardInput(limit: Dispatcher.maxInputBytes)
let outcome = dispatcher.run(environment: environment, stdin: stdin, inputTooLarge: tooLarge)
ProcessEnvironment.write(outcome.stdout, to: 1)
exit(outcome.exitCode)
