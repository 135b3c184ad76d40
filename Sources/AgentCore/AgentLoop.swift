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
        usage: \(command) [--host-root DIR] [--resync SECONDS] [--once | --alive] [--cni-cache DIR]
        \(indent)[--install [--config FILE] [--turn-off-primary-masquerade] [--uninstall-on-exit]]
               \(command) --help

        Keeps every running pod's SNAT equal to its network's config: repairs flushes, moves pods into a
        changed config, the moment it sees the change (inotify, nf_tables notifications) or every resync period.

        options:
          --host-root DIR   the node's root as mounted in the container (default /): configs in DIR/etc/cni/net.d
          --resync S        reconcile every S seconds, 1 to 86400 (default 30)
          --once            one pass; exit 0 when the node converged, 1 with the reasons when not
          --cni-cache DIR   libcni's result cache: pods of randsnat's networks that randsnat never saw are
                            adopted from it (default \(LibcniCache.defaultDirectory))
          --alive           a liveness probe: exit 0 when the running agent completed a pass within the
                            last 3 resync periods (it marks each pass in $RANDSNAT_RUN_DIR/agent.pass)
          --install         also do what `install --watch` does: install the binary and chain randsnat into
                            the primary config at start and whenever net.d or the settings file changes
          --config FILE, --turn-off-primary-masquerade, --uninstall-on-exit
                            with --install: as for `randsnat install`
          -h, --help        this text

        environment:
          \(RunDirectory.variable)  pod records and locks (default \(RunDirectory.defaultPath))

        exit status: 0 converged (or stopped by SIGTERM), 1 not converged or could not start, 2 usage
        """
    }

    /// The options, with their values' forms, as a usage error lists them.
    public static let optionForms = ["--host-root DIR", "--resync SECONDS", "--once", "--alive", "--cni-cache DIR", "--install", "--config FILE",
                              "--turn-off-primary-masquerade", "--uninstall-on-exit", "--help"]

    /// Every this many resync periods the running agent reads every member set again, whatever the
    /// notifications said (`ReconcileMemory`).
    public static let fullCheckPeriods = 10

    public struct Options {
        public var hostRoot = "/"
        public var resyncSeconds = 30.0
        public var once = false
        public var alive = false
        /// libcni's result cache (adoption).
        public var cniCache = LibcniCache.defaultDirectory
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

    public static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var options = Options()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            func value(_ form: String) throws(UsageError) -> String {
                index += 1
                guard index < arguments.count else { throw .missingValue(argument, form: form) }
                return arguments[index]
            }
            switch argument {
            case "--host-root":
                let root = try value("--host-root DIR")
                guard !root.isEmpty else { throw .badValue(argument, root, expected: "a directory, the node's root (default /)") }
                options.hostRoot = root
            case "--resync":
                let text = try value("--resync SECONDS")
                guard let seconds = Double(text), seconds >= 1, seconds <= 86400 else {
                    throw .badValue(argument, text, expected: "SECONDS, a number from 1 to 86400")
                }
                options.resyncSeconds = seconds
            case "--once": options.once = true
            case "--cni-cache":
                let directory = try value("--cni-cache DIR")
                guard !directory.isEmpty else { throw .badValue(argument, directory, expected: "a directory, libcni's result cache") }
                options.cniCache = directory
            case "--alive": options.alive = true
            case "--install": options.install = options.install ?? Installer.Options()
            case "--config":
                let file = try value("--config FILE")
                options.install = options.install ?? Installer.Options(); options.install?.settingsFile = file
            case "--turn-off-primary-masquerade": options.install = options.install ?? Installer.Options(); options.install?.fixMasquerade = true
            case "--uninstall-on-exit": options.install = options.install ?? Installer.Options(); options.install?.uninstallOnExit = true
            default: throw .unknown(argument, accepted: optionForms)
            }
            index += 1
        }
        options.install?.hostRoot = options.hostRoot
        if options.once && options.install?.uninstallOnExit == true { throw UsageError("--once cannot be used with --uninstall-on-exit") }
        if options.once && options.alive { throw UsageError("--once and --alive cannot be used together") }
        return options
    }

    /// - Parameter midMove: called when a move's new members are in and the old ones not yet out
    ///   (the shipped binaries pass nothing; the integration tests' fault agent, Tests/AgentFault,
    ///   kills itself there).
    /// - Parameter afterPass: called after each pass (the metrics endpoint's state).
    /// - Parameter command: the name the usage text shows.
    public static func run(_ arguments: [String], command: String = "randsnat-agent", plugin: SNATPlugin, records: any RecordStore,
                           runDirectory: String, midMove: @escaping () -> Void = {}, afterPass: (Pass) -> Void = { _ in }) -> Int32 {
        if UsageError.asksForHelp(arguments) {
            try? FileDescriptor(rawValue: 1).writeAll(Array((usage(command: command) + "\n").utf8))
            return 0
        }
        let options: Options
        do { options = try parse(arguments) } catch {
            try? FileDescriptor(rawValue: 2).writeAll(Array(error.message(command: command).utf8))
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
                log(aliveFailure(ageSeconds: age, resyncSeconds: options.resyncSeconds))
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
        let adoption = CacheAdoption(cache: LibcniCacheFiles(directory: options.cniCache))
        // The cache's attachments as of the adoption's last read: a member no record backs is removed
        // only when its attachment is not among them.
        let pass = AgentPass(plugin: plugin, records: records, memory: memory, liveAttachments: { adoption.liveAttachments },
                             adoption: adoption, midMove: midMove)
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
            if reason == "start" {
                for line in Backends.removeEarlierLeftovers(runDirectory: runDirectory) { log("randsnat agent: \(line)") }
            }
            if let install = options.install, reason == "start" || reason.hasPrefix("a change") {
                let installer = Installer(options: install, files: HostFiles(executable: pluginBinary), log: log)
                _ = installer.run()
                if install.settingsFile != nil { settingsAccepted = installer.settingsRefusal() == nil }
            }
            if let wakeups, wakeups.takeDeletions() || (reason == "the resync period" && periods % fullCheckPeriods == 0) {
                memory?.forgetKernel()
                adoption.forget()
            }
            let (files, refused) = configFiles(configDirectory)
            var report = pass.run(configFiles: files)
            report.problems += refused
            report.configRefusals += refused  // a file that cannot be read is refused as one that does not parse
            // The run directory is pruned at start and every resync period (not on each notification).
            if let files, reason == "start" || reason == "the resync period" {
                let configured = Set(NodeConfigs.parse(files).networks.keys)
                for line in RunDirectoryPruning(runDirectory: runDirectory).prune(keeping: configured) { log("randsnat agent: \(line)") }
            }
            if !report.repairs.isEmpty {
                log("randsnat agent: pass after \(reason): \(report.repairs.count) repair(s) in \(Int((now() - started) * 1000)) ms")
            }
            for line in report.adoption?.adopted ?? [] { log("randsnat agent: \(line)") }
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

    /// What `--alive` says when the last pass is too old: its age and the limit, 3 resync periods.
    static func aliveFailure(ageSeconds: Double, resyncSeconds: Double) -> String {
        "randsnat agent: the last pass ended \(seconds(ageSeconds)) s ago; the limit is \(seconds(3 * resyncSeconds)) s "
            + "(3 resync periods of \(seconds(resyncSeconds)) s)"
    }

    /// Seconds as a person reads them: whole when whole, else to one decimal.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(Double(Int(value * 10)) / 10)
    }

    /// The loadable files of net.d (nil when the directory cannot be read), and the files refused,
    /// one sentence each: a file that is no regular file or is larger than the config limit is
    /// skipped, never waited on or read whole (a FIFO, a link to /dev/zero), and the pass goes on.
    public static func configFiles(_ directory: String) -> (files: [(name: String, bytes: [UInt8])]?, refused: [String]) {
        let files = HostFiles()
        guard let names = try? files.list(directory) else { return (nil, []) }
        var found: [(name: String, bytes: [UInt8])] = []
        var refused: [String] = []
        for name in names where ChainPlan.isLoadable(name) {
            do {
                if let bytes = try files.readConfig(directory + "/" + name) { found.append((name, bytes)) }
            } catch {
                refused.append("skipping \(error)")
            }
        }
        return (found, refused)
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

    /// One line of the agent's log on stderr, after its RFC 3339 timestamp.
    public static func log(_ line: String) {
        let stamped = LogTimestamp.format(unixNanoseconds: ThisProcess.realTimeNanoseconds()) + " " + line + "\n"
        try? FileDescriptor(rawValue: 2).writeAll(Array(stamped.utf8))  // nothing to tell when stderr is gone
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
