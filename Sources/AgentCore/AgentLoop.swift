internal import Glibc
import Installer
import Netfilter
import Netlink
import RandSNATCore
import SystemCalls

/// The node agent's reconcile loop, run by `randsnat-agent` (with its metrics endpoint) and by
/// `randsnat agent`: keeps the node's SNAT state equal to its config and its live pods (the
/// reconcile logic is `SNATPlugin.reconcile`, in RandSNATCore; this is the loop around it).
public enum AgentLoop {
    /// The loop's usage text as `randsnat-agent` prints it.
    public static var usage: String { usage(command: "randsnat-agent") }

    /// The usage text under the name the user typed (`randsnat-agent`, or `randsnat agent`).
    public static func usage(command: String) -> String {
        let indent = String(repeating: " ", count: command.utf8.count + 8)
        return """
        usage: \(command) [--host-root DIR] [--resync SECONDS] [--once]
        \(indent)[--install [--config FILE] [--turn-off-primary-masquerade] [--uninstall-on-exit]]
          --host-root DIR   the node's root as mounted in the container (default /): configs in DIR/etc/cni/net.d
          --resync S        reconcile every S seconds (default 30)
          --once            one pass; exit 0 when the node converged, 1 with the reasons when not
          --alive           a liveness probe: exit 0 when the running agent completed a pass within the
                            last 3 resync periods (it marks each pass in $RANDSNAT_RUN_DIR/agent.pass)
          --install         also do what `install --watch` does: install the binary and chain randsnat into
                            the primary config at start and whenever net.d or the settings file changes
                            (--config, --turn-off-primary-masquerade, --uninstall-on-exit as for install)
        records and locks: $RANDSNAT_RUN_DIR (default /run/randsnat)
        exit status: 0 converged (or stopped by SIGTERM), 1 not converged, 2 usage
        """
    }

    /// Every this many resync periods the running agent reads every member set again, whatever the
    /// notifications said (`ReconcileMemory`).
    public static let fullCheckPeriods = 10

    public struct Options {
        public var hostRoot = "/"
        public var resyncSeconds = 30.0
        public var once = false
        public var alive = false
        /// The installer's part, when the agent takes over `install --watch`.
        public var install: Installer.Options?
    }

    /// One pass's outcome as the loop saw it: the report, and its start and end (Unix seconds).
    public struct Pass: Sendable {
        public let report: ReconcileReport
        public let started: Double
        public let ended: Double
        /// Whether the settings file (`--config`) was taken when last read; nil without one.
        public var settingsAccepted: Bool? = nil
    }

    public static func parse(_ arguments: [String]) -> Options? {
        var options = Options()
        var index = 0
        while index < arguments.count {
            let value: String? = index + 1 < arguments.count ? arguments[index + 1] : nil
            switch arguments[index] {
            case "--host-root": guard let value, !value.isEmpty else { return nil }; options.hostRoot = value; index += 1
            case "--resync": guard let value, let seconds = Double(value), seconds >= 1, seconds <= 86400 else { return nil }
                options.resyncSeconds = seconds; index += 1
            case "--once": options.once = true
            case "--alive": options.alive = true
            case "--install": options.install = options.install ?? Installer.Options()
            case "--config": guard let value else { return nil }
                options.install = options.install ?? Installer.Options(); options.install?.settingsFile = value; index += 1
            case "--turn-off-primary-masquerade": options.install = options.install ?? Installer.Options(); options.install?.fixMasquerade = true
            case "--uninstall-on-exit": options.install = options.install ?? Installer.Options(); options.install?.uninstallOnExit = true
            default: return nil
            }
            index += 1
        }
        options.install?.hostRoot = options.hostRoot
        if options.once && options.install?.uninstallOnExit == true { return nil }
        return options
    }

    /// - Parameter midMove: called when a move's new members are in and the old ones not yet out
    ///   (the shipped binaries pass nothing; the integration tests' fault agent, Tests/AgentFault,
    ///   kills itself there).
    /// - Parameter afterPass: called after each pass (the metrics endpoint's state).
    /// - Parameter command: the name the usage text shows.
    public static func run(_ arguments: [String], command: String = "randsnat-agent", plugin: SNATPlugin, records: any RecordStore,
                           runDirectory: String, midMove: @escaping () -> Void = {}, afterPass: (Pass) -> Void = { _ in }) -> Int32 {
        guard let options = parse(arguments) else {
            log(usage(command: command))
            return 2
        }
        return run(options, plugin: plugin, records: records, runDirectory: runDirectory, midMove: midMove, afterPass: afterPass)
    }

    /// - Parameter pluginBinary: what `--install` copies to the node (the per-pod binary).
    public static func run(_ options: Options, plugin: SNATPlugin, records: any RecordStore, runDirectory: String,
                           pluginBinary: String = "/proc/self/exe",
                           midMove: @escaping () -> Void = {}, afterPass: (Pass) -> Void = { _ in }) -> Int32 {
        let heartbeat = runDirectory + "/agent.pass"
        if options.alive {
            var info = stat()
            guard stat(heartbeat, &info) == 0 else {
                log("randsnat agent: no pass recorded (\(heartbeat) is missing): the agent has not completed a pass")
                return 1
            }
            var clock = timespec()
            clock_gettime(CLOCK_REALTIME, &clock)
            let age = Double(clock.tv_sec - info.st_mtim.tv_sec) + Double(clock.tv_nsec - info.st_mtim.tv_nsec) / 1e9
            guard age <= 3 * options.resyncSeconds else {
                log("randsnat agent: the last pass ended \(Int(age)) s ago, more than 3 resync periods (\(Int(options.resyncSeconds)) s)")
                return 1
            }
            return 0
        }
        let root = options.hostRoot.hasSuffix("/") ? String(options.hostRoot.dropLast()) : options.hostRoot
        let configDirectory = root + "/etc/cni/net.d"
        var wakeups: Wakeups?
        if !options.once {
            do {
                try HostFiles().makeDirectories(configDirectory)
                var directories = [configDirectory]
                if let settings = options.install?.settingsFile, let slash = settings.lastIndex(of: "/") {
                    // A ConfigMap volume swaps a symlinked directory: watch the file's directory.
                    directories.append(slash == settings.startIndex ? "/" : String(settings[..<slash]))
                }
                wakeups = try Wakeups(directories: directories, nftables: true, deletionsIn: Backends.nftablesTable)
            } catch {
                log("randsnat agent: \(error)")
                return 1
            }
        }
        // The running agent trusts the member counts it verified while nf_tables reports no deletion
        // in randsnat's table; `--once` checks everything.
        let memory = wakeups.map { ReconcileMemory(notified: $0.watchesNFTables ? [.nftables] : []) }
        let pass = AgentPass(plugin: plugin, records: records, memory: memory, midMove: midMove)
        var periods = 0
        if let wakeups {
            log("randsnat agent: watching \(configDirectory)" + (wakeups.watchesNFTables ? " and nf_tables changes" : " (nf_tables notifications unavailable)")
                + ", resync every \(Int(options.resyncSeconds)) s")
        }
        var lastProblems: [String] = []
        // The settings file is read at start and on a change of the watched files (with the installer).
        var settingsAccepted: Bool?
        var reason = "start"
        while true {
            let started = now()
            let startedWall = wallClock()
            if let install = options.install, reason == "start" || reason.hasPrefix("a change") {
                let installer = Installer(options: install, files: HostFiles(executable: pluginBinary), log: log)
                _ = installer.run()
                if install.settingsFile != nil { settingsAccepted = installer.settingsRefusal() == nil }
            }
            if let wakeups, wakeups.takeDeletions() || (reason == "the resync period" && periods % fullCheckPeriods == 0) {
                memory?.forgetKernel()
            }
            let report = pass.run(configFiles: configFiles(configDirectory))
            if !report.repairs.isEmpty {
                log("randsnat agent: pass after \(reason): \(report.repairs.count) repair(s) in \(Int((now() - started) * 1000)) ms")
            }
            for line in report.repairs { log("randsnat agent: repaired: \(line)") }
            markPass(heartbeat)
            afterPass(Pass(report: report, started: startedWall, ended: wallClock(), settingsAccepted: settingsAccepted))
            if options.once {
                for line in report.problems { log("randsnat agent: not converged: \(line)") }
                return report.problems.isEmpty ? 0 : 1
            }
            // A problem that stays is logged once, not every period.
            for line in report.problems where !lastProblems.contains(line) { log("randsnat agent: \(line)") }
            lastProblems = report.problems
            // The notifications of this pass's own writes wake the next (idle) pass: a flush during
            // this pass is never lost in them.
            switch wakeups!.wait(seconds: options.resyncSeconds) {
            case .stop:
                log("randsnat agent: signal received, stopping")
                if var install = options.install, install.uninstallOnExit {
                    install.uninstallOnExit = false
                    install.uninstall = true
                    return Installer(options: install, files: HostFiles(executable: pluginBinary), log: log).run() == .done ? 0 : 1
                }
                return 0
            case .files: reason = "a change in the watched files"
            case .nftables: reason = "an nf_tables change"
            case .period: reason = "the resync period"; periods += 1
            }
        }
    }

    /// The loadable files of net.d; nil when the directory cannot be read.
    public static func configFiles(_ directory: String) -> [(name: String, bytes: [UInt8])]? {
        let files = HostFiles()
        guard let names = try? files.list(directory) else { return nil }
        return names.filter(ChainPlan.isLoadable).compactMap { name in
            (try? files.read(directory + "/" + name)).flatMap { $0 }.map { (name, $0) }
        }
    }

    /// Marks a completed pass for `--alive` (the file's mtime).
    static func markPass(_ path: String) {
        if let slash = path.lastIndex(of: "/") { mkdir(String(path[..<slash]), 0o700) }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return log("randsnat agent: cannot mark the pass in \(path): \(Errno.current.message); --alive will fail") }
        futimens(fd, nil)
        close(fd)
    }

    public static func wallClock() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func log(_ line: String) {
        try? FileDescriptor(rawValue: 2).writeAll(Array((line + "\n").utf8))  // nothing to tell when stderr is gone
    }

    /// The plugin and record store the agent reconciles with, as the per-pod binary builds its own
    /// (the same backends, locks and record directory).
    public static func makePlugin(environment: [String: String], runDirectory: String) -> (SNATPlugin, CachedRecordFiles) {
        let log = { (line: String) in AgentLoop.log(line) }
        let makeBackend = Backends.factory(environment: environment, runDirectory: runDirectory, log: log)
        // The agent reads records through a cache: a pass re-reads a network's records only when its
        // directory changed (the per-pod path reads only its own record).
        let records = CachedRecordFiles(runDirectory: runDirectory)
        let plugin = SNATPlugin(makeBackend: makeBackend, lock: NetworkFileLock(directory: runDirectory), log: log,
                                pathExists: { access($0, F_OK) == 0 }, records: records)
        return (plugin, records)
    }
}
