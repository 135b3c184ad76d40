import AgentCore
internal import Glibc
import Metrics
import NIOCore
import NIOPosix
import RandSNATCore
import SystemCalls

// The node agent: the reconcile loop (AgentCore, issue 11) on the main thread and the metrics
// endpoint (issue 13) on its own threads, fed by the loop's passes.
func write(_ text: String, to descriptor: Int32) {
    try? FileDescriptor(rawValue: descriptor).writeAll(Array(text.utf8))  // nothing to tell when the stream is gone
}
let log: @Sendable (String) -> Void = { AgentLoop.log($0) }

let arguments = Array(CommandLine.arguments.dropFirst())
if UsageError.asksForHelp(arguments) {
    write(AgentOptions.usage + "\n", to: 1)
    exit(0)
}
let options: AgentOptions
do { options = try AgentOptions.parse(arguments) } catch {
    write(error.message(command: "randsnat-agent"), to: 2)
    exit(2)
}
if options.version {
    write("randsnat-agent \(BuildInfo.version)\n", to: 1)
    exit(0)
}
var loop = options.reconcile ? try? AgentLoop.parse(options.loopArguments) : nil  // parsed once already: no error here
loop?.cniCache = options.cniCache
if options.reconcile, let loop, loop.alive || loop.once || !options.metrics {
    // A liveness probe, one pass, or the loop without an endpoint: what `randsnat agent` does.
    let environment = readEnvironment()
    let runDirectory = RunDirectory.path(in: environment)
    let (plugin, records) = AgentLoop.makePlugin(environment: environment, runDirectory: runDirectory)
    exit(AgentLoop.run(loop, plugin: plugin, records: records, runDirectory: runDirectory, pluginBinary: pluginBinary()))
}
guard options.metrics else {
    write(UsageError("--no-reconcile leaves nothing to do without --metrics ADDR:PORT").message(command: "randsnat-agent"), to: 2)
    exit(2)
}

// Enough descriptors for MetricsServer.maxConnections plus the agent's own.
var limit = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(MetricsServer.maxConnections + 256) {
    limit.rlim_cur = min(limit.rlim_max, rlim_t(MetricsServer.maxConnections + 256))
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}
if !options.reconcile {
    signal(SIGTERM) { _ in _exit(0) }
    signal(SIGINT) { _ in _exit(0) }
} else {
    // The loop takes SIGTERM and SIGINT through a signalfd (Wakeups): blocked here, before any thread
    // starts, so that no NIO thread is the one the signal kills.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    sigprocmask(SIG_BLOCK, &signals, nil)
}
signal(SIGPIPE, SIG_IGN)

let collector = Collector(top: options.top, cniCache: options.cniCache, log: log,
                          reconcileInterval: options.reconcile ? loop?.resyncSeconds : nil)
// The HTTP server and the scans each have their own thread: a scan (a second at a million conntrack
// entries) never delays an answer.
let http = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let scans = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel: any Channel
do {
    channel = try MetricsServer.start(host: options.host, port: options.port, group: http, collector: collector)
} catch {
    log("randsnat-agent: cannot listen on \(ListenFailure.endpoint(options.host, options.port)): \(ListenFailure.explain(error))")
    exit(1)
}
log("randsnat-agent \(BuildInfo.version): metrics on http://\(ListenFailure.endpoint(options.host, options.port))/metrics, scans every \(options.scanIntervalSeconds) s")
_ = scans.next().scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(Int64(options.scanIntervalSeconds * 1000))) { _ in
    collector.scan()
}
guard options.reconcile, let loop else {
    try? channel.closeFuture.wait()
    exit(0)
}
// The reconcile loop on the main thread; each pass updates what /metrics shows (under the
// collector's lock, for as long as a copy takes: a scrape never waits for a pass).
let environment = readEnvironment()
let runDirectory = RunDirectory.path(in: environment)
let (plugin, records) = AgentLoop.makePlugin(environment: environment, runDirectory: runDirectory)
exit(AgentLoop.run(loop, plugin: plugin, records: records, runDirectory: runDirectory, pluginBinary: pluginBinary(),
                   afterPass: collector.record))

/// The per-pod binary `--install` copies to the node: `randsnat` in randsnat-agent's own directory
/// (the image ships both in /usr/local/bin).
func pluginBinary() -> String {
    var buffer = [CChar](repeating: 0, count: 4097)
    let count = readlink("/proc/self/exe", &buffer, 4096)
    guard count > 0 else { return "/usr/local/bin/randsnat" }
    let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) + "/randsnat"
}

/// The variables by name (the agent reads RANDSNAT_RUN_DIR and the xtables lock's).
func readEnvironment() -> [String: String] {
    var variables: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") { variables[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
        pointer += 1
    }
    return variables
}
