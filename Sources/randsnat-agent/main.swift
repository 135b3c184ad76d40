import Glibc
import NIOCore
import NIOPosix
import RandSNATCore

// The node agent: today its metrics endpoint (issue 13); the reconcile loop (issue 11) joins it here.
func write(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        bytes = bytes.dropFirst(written)
    }
}
let log: @Sendable (String) -> Void = { write($0 + "\n", to: 2) }

guard let options = AgentOptions.parse(Array(CommandLine.arguments.dropFirst())) else {
    write(AgentOptions.usage + "\n", to: 2)
    exit(2)
}
if options.version {
    write("randsnat-agent \(BuildInfo.version)\n", to: 1)
    exit(0)
}
guard !options.reconcile else {
    log("randsnat-agent: this build has no reconcile loop yet (issue 11): run it with --no-reconcile to serve metrics only")
    exit(2)
}
guard options.metrics else {
    log("randsnat-agent: with --no-reconcile there is nothing to do without --metrics ADDR:PORT")
    write(AgentOptions.usage + "\n", to: 2)
    exit(2)
}

// Enough descriptors for MetricsServer.maxConnections plus the agent's own.
var limit = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(MetricsServer.maxConnections + 256) {
    limit.rlim_cur = min(limit.rlim_max, rlim_t(MetricsServer.maxConnections + 256))
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}
signal(SIGTERM) { _ in _exit(0) }
signal(SIGINT) { _ in _exit(0) }
signal(SIGPIPE, SIG_IGN)

let collector = Collector(top: options.top, cniCache: options.cniCache, log: log)
// The HTTP server and the scans each have their own thread: a scan (a second at a million conntrack
// entries) never delays an answer.
let http = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let scans = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel: any Channel
do {
    channel = try MetricsServer.start(host: options.host, port: options.port, group: http, collector: collector)
} catch {
    log("randsnat-agent: cannot serve metrics on \(options.host):\(options.port): \(error); is the address this node's, and the port free?")
    exit(1)
}
log("randsnat-agent \(BuildInfo.version): metrics on http://\(options.host.contains(":") ? "[\(options.host)]" : options.host):\(options.port)/metrics, scans every \(options.scanIntervalSeconds) s")
_ = scans.next().scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(Int64(options.scanIntervalSeconds * 1000))) { _ in
    collector.scan()
}
try? channel.closeFuture.wait()
