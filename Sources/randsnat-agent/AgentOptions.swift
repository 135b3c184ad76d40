import RandSNATCore

/// `randsnat-agent`'s command line.
struct AgentOptions: Equatable {
    /// The metrics endpoint's default port, documented in README ("Metrics").
    static let defaultMetricsPort = 9469

    static let usage = """
        usage: randsnat-agent --metrics ADDR:PORT --no-reconcile [--scan-interval SECONDS] [--top K] [--cni-cache DIR]
               randsnat-agent --version
          --metrics ADDR:PORT   serve GET /metrics and GET /healthz there (e.g. 127.0.0.1:\(defaultMetricsPort), [::]:\(defaultMetricsPort));
                                off when not given
          --no-reconcile        serve metrics only (the reconcile loop, issue 11, is not part of this build yet)
          --scan-interval S     seconds between conntrack scans and rule reads (default 15, 1-3600)
          --top K               the K busiest SNAT tuples get port-usage series (default 20, 1-1000)
          --cni-cache DIR       libcni's result cache, to tell live pods (default /var/lib/cni/results)
        exit status: 0 stopped by a signal, 1 could not start, 2 usage
        """

    var host = ""
    var port = 0
    var metrics = false
    var reconcile = true
    var scanIntervalSeconds = 15.0
    var top = 20
    var cniCache = "/var/lib/cni/results"
    var version = false

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
                guard let value, let k = Int(value), k >= 1, k <= 1000 else { return nil }
                options.top = k
                index += 1
            case "--cni-cache":
                guard let value, !value.isEmpty else { return nil }
                options.cniCache = value
                index += 1
            default: return nil
            }
            index += 1
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
