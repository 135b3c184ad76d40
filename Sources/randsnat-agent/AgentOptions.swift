import AgentCore
import RandSNATCore

/// `randsnat-agent`'s command line.
struct AgentOptions: Equatable {
    /// The metrics endpoint's default port, documented in install/README.md ("Metrics").
    static let defaultMetricsPort = 9469

    static let usage = """
        usage: randsnat-agent [--metrics ADDR:PORT] [--no-reconcile] [--scan-interval SECONDS] [--top K] [--cni-cache DIR]
                              [reconcile options, below]
               randsnat-agent --version
          --metrics ADDR:PORT   serve GET /metrics and GET /healthz there (e.g. 127.0.0.1:\(defaultMetricsPort), 0.0.0.0:\(defaultMetricsPort));
                                off when not given. With the reconcile loop, the reconcile metrics come from its passes
          --no-reconcile        serve metrics only (no reconcile loop; then --metrics is required)
          --scan-interval S     seconds between conntrack scans and rule reads (default 15, 1-3600)
          --top K               the K busiest SNAT tuples get port-usage series (default 20, 0-1000; 0: no series names a
                                destination, the node's highest usage ratio stays)
          --cni-cache DIR       libcni's result cache: live pods, and pods to adopt (default \(LibcniCache.defaultDirectory))
        exit status: 0 stopped by a signal (reconciling: converged, as below), 1 could not start, 2 usage
        the reconcile loop (the same as `randsnat agent`):
        """ + AgentLoop.usage

    var host = ""
    var port = 0
    var metrics = false
    var reconcile = true
    var scanIntervalSeconds = 15.0
    var top = 20
    var cniCache = LibcniCache.defaultDirectory
    var version = false
    /// The reconcile loop's arguments (the options this parser does not know), parsed by AgentLoop.
    var loopArguments: [String] = []

    /// Nil for a command line it cannot use.
    static func parse(_ arguments: [String]) -> AgentOptions? {
        var options = AgentOptions()
        var index = 0
        while index < arguments.count {
            let value: String? = index + 1 < arguments.count ? arguments[index + 1] : nil
            switch arguments[index] {
            case "--version": options.version = true
            case "--no-reconcile": options.reconcile = false
            case "--metrics":
                guard let value, let (host, port) = parseAddress(value) else { return nil }
                (options.host, options.port, options.metrics) = (host, port, true)
                index += 1
            case "--scan-interval":
                guard let value, let seconds = Double(value), seconds >= 1, seconds <= 3600 else { return nil }
                options.scanIntervalSeconds = seconds
                index += 1
            case "--top":
                guard let value, let k = Int(value), k >= 0, k <= 1000 else { return nil }
                options.top = k
                index += 1
            case "--cni-cache":
                guard let value, !value.isEmpty else { return nil }
                options.cniCache = value
                index += 1
            default:
                // The loop's options: each with its value when it takes one.
                options.loopArguments.append(arguments[index])
                if ["--host-root", "--resync", "--config"].contains(arguments[index]), let value {
                    options.loopArguments.append(value)
                    index += 1
                }
            }
            index += 1
        }
        if !options.version {
            if options.reconcile {
                guard AgentLoop.parse(options.loopArguments) != nil else { return nil }
            } else if !options.loopArguments.isEmpty {
                return nil
            }
        }
        return options
    }

    /// "ADDR:PORT", "[IPv6]:PORT": the address must be an IP address (no names: the agent binds before
    /// DNS may work on a node).
    static func parseAddress(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), port > 0, port < 65536 else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        else if host.contains(":") { return nil }
        guard IPAddress(host) != nil else { return nil }
        return (host, port)
    }
}
