import RandSNATCore

/// `randsnat --help`: the commands, the CNI variables a runtime sets, randsnat's own environment and
/// its config keys (from the parser's key lists, so the help cannot miss one).
enum Help {
    static var text: String {
        """
        usage: randsnat                     run by a container runtime: CNI_COMMAND set, the network config on stdin
               randsnat install [OPTIONS]   copy randsnat to the node and chain it into the runtime's network config
               randsnat agent [OPTIONS]     keep every running pod's SNAT in place (randsnat-agent without metrics)
               randsnat doctor [OPTIONS]    say whether the node's SNAT is healthy
               randsnat --version | --help
        Each command's --help lists its options.

        randsnat is a CNI plugin (spec 1.1.0): it source-NATs pod egress with --random-fully, lets chosen
        destinations bypass SNAT, and keeps a pod's ADD and DEL as cheap with 20,000 kube-proxy rules in
        the nat table as with none. Chained after a primary CNI, or standalone (a config with "ipam").

        CNI variables (the runtime sets them):
          CNI_COMMAND       ADD, DEL, CHECK, GC, STATUS or VERSION
          CNI_CONTAINERID   the container's ID (ADD, DEL, CHECK)
          CNI_NETNS         the pod's network namespace, a path (ADD, CHECK; DEL accepts it empty)
          CNI_IFNAME        the pod's interface name (ADD, DEL, CHECK)
          CNI_ARGS          KEY=VALUE pairs separated by ';' (optional; MAC= sets a standalone pod's MAC)
          CNI_PATH          directories, ':'-separated, where standalone mode finds its IPAM plugin

        environment:
          \(RunDirectory.variable)  pod records and locks (default \(RunDirectory.defaultPath))
          XTABLES_LOCKFILE  the xtables lock, as iptables takes it (default /run/xtables.lock)

        network config keys (beside "type"; cni-conf/README.md gives each one's type, default and errors):
        \(wrapped(PluginConfig.keys))
        standalone mode also reads these keys of the reference bridge plugin (cni-conf/README.md says which it refuses):
        \(wrapped(BridgeConfig.keys))

        exit status: 0 success; 1 a CNI error, as JSON on stdout with its code; 2 usage

        """
    }

    /// Names as indented, comma-separated lines of at most 100 columns.
    static func wrapped(_ names: [String]) -> String {
        var lines: [String] = []
        var line = ""
        for (index, name) in names.enumerated() {
            let item = name + (index < names.count - 1 ? "," : "")
            if !line.isEmpty && line.utf8.count + 1 + item.utf8.count > 98 {
                lines.append("  " + line)
                line = item
            } else {
                line += (line.isEmpty ? "" : " ") + item
            }
        }
        if !line.isEmpty { lines.append("  " + line) }
        return lines.joined(separator: "\n")
    }
}
