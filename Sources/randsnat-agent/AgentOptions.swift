import AgentCore
import RandSNATCore

/// `randsnat-agent`'s command line.
struct AgentOptions: Equatable {
    /// The metrics endpoint's default port, documented in install/README.md ("Metrics").
    static let defaultMetricsPort = 9469

    static let usage = """
        usage: randsnat-agent [--metrics ADDR:PORT] [--no-reconcile] [--scan-interval SECONDS] [--top K] [--cni-cache DIR]
                              [--host-root DIR] [--resync SECONDS] [--once | --alive]
                              [--install [--config FILE] [--turn-off-primary-masquerade] [--uninstall-on-exit]]
               randsnat-agent --version | --help

        The node agent: the reconcile loop (the same as `randsnat agent`, below) and, with --metrics, the
        Prometheus endpoint, in one process. The DaemonSet runs it.

        metrics options:
          --metrics ADDR:PORT   serve GET /metrics and GET /healthz there; ADDR an IP address (127.0.0.1:\(defaultMetricsPort),
                                [::1]:\(defaultMetricsPort), the node's own address); off when not given. With the reconcile
                                loop, the reconcile metrics come from its passes
          --no-reconcile        serve metrics only (no reconcile loop; then --metrics is required)
          --scan-interval S     seconds between conntrack scans and rule reads (default 15, 1-3600)
          --top K               the K busiest SNAT tuples get port-usage series (default 20, 0-1000; 0: no series names a
                                destination, the node's highest usage ratio stays)
          --cni-cache DIR       libcni's result cache: live pods, and pods to adopt (default \(LibcniCache.defaultDirectory))
          --version             print the version and exit

        exit status: 0 stopped by a signal (reconciling: converged, as below), 1 could not start, 2 usage

        the reconcile loop, as `randsnat agent`:

        """ + AgentLoop.usage

    /// The options this parser reads, as a usage error lists them (the loop's are AgentLoop's).
    static let optionForms = ["--metrics ADDR:PORT", "--no-reconcile", "--scan-interval SECONDS", "--top K", "--cni-cache DIR", "--version"]

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

    static func parse(_ arguments: [String]) throws(UsageError) -> AgentOptions {
        var options = AgentOptions()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            func value(_ form: String) throws(UsageError) -> String {
                index += 1
                guard index < arguments.count else { throw .missingValue(argument, form: form) }
                return arguments[index]
            }
            switch argument {
            case "--version": options.version = true
            case "--no-reconcile": options.reconcile = false
            case "--metrics":
                let text = try value("--metrics ADDR:PORT")
                guard let (host, port) = parseAddress(text) else {
                    throw .badValue(argument, text, expected: "ADDR:PORT with ADDR an IP address, not a name "
                                    + "(127.0.0.1:\(defaultMetricsPort), [::1]:\(defaultMetricsPort)) and PORT from 1 to 65535")
                }
                (options.host, options.port, options.metrics) = (host, port, true)
            case "--scan-interval":
                let text = try value("--scan-interval SECONDS")
                guard let seconds = Double(text), seconds >= 1, seconds <= 3600 else {
                    throw .badValue(argument, text, expected: "SECONDS, a number from 1 to 3600")
                }
                options.scanIntervalSeconds = seconds
            case "--top":
                let text = try value("--top K")
                guard let k = Int(text), k >= 0, k <= 1000 else { throw .badValue(argument, text, expected: "K, a whole number from 0 to 1000") }
                options.top = k
            case "--cni-cache":
                let directory = try value("--cni-cache DIR")
                guard !directory.isEmpty else { throw .badValue(argument, directory, expected: "a directory") }
                options.cniCache = directory
            default:
                // The loop's options: each with its value when it takes one.
                options.loopArguments.append(argument)
                if ["--host-root", "--resync", "--config"].contains(argument), index + 1 < arguments.count {
                    options.loopArguments.append(arguments[index + 1])
                    index += 1
                }
            }
            index += 1
        }
        if !options.version {
            if options.reconcile {
                // An argument neither parser takes is named with both parsers' options.
                var loopIndex = 0
                while loopIndex < options.loopArguments.count {
                    let argument = options.loopArguments[loopIndex]
                    guard let form = AgentLoop.optionForms.first(where: { $0.split(separator: " ").first.map(String.init) == argument }) else {
                        throw .unknown(argument, accepted: optionForms + AgentLoop.optionForms)
                    }
                    loopIndex += form.contains(" ") ? 2 : 1
                }
                _ = try AgentLoop.parse(options.loopArguments)
            } else if let first = options.loopArguments.first {
                throw UsageError("\(UsageError.quoted(first)) is an option of the reconcile loop, which --no-reconcile turns off")
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
