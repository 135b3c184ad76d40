import CNI
internal import CNetlink
internal import Glibc
import RandSNATCore
import SystemCalls

/// `randsnat install`: puts the binary into `<host-root>/opt/cni/bin` and chains randsnat into the
/// node's primary network config in `<host-root>/etc/cni/net.d`; `--uninstall` takes both off again.
public struct Installer {
    public struct Options: Equatable, Sendable {
        public var hostRoot = "/"
        public var settingsFile: String?
        public var uninstall = false
        public var watch = false
        public var check = false
        public var uninstallOnExit = false
        public var fixMasquerade = false
        public var allowEarlierSNAT = false

        public init() {}
    }

    /// Exit statuses: 0 done (or nothing to do), 1 a file operation failed, 2 bad usage,
    /// 3 refused (config not understood, or a conflict), 4 no primary config yet.
    public enum Status: Int32, Sendable {
        case done = 0, failed = 1, usage = 2, refused = 3, noConfig = 4
    }

    public static let usage = """
        usage: randsnat install [--host-root DIR] [--config FILE] [--turn-off-primary-masquerade] [--allow-earlier-snat]
                                [--watch [--uninstall-on-exit]]
               randsnat install [--host-root DIR] --uninstall | --check
               randsnat install --help

        Copies randsnat to the node's CNI bin directory and chains it into the runtime's network config
        (the lexically first file of DIR/etc/cni/net.d), keeping the original as <file>.randsnat-backup.

        options:
          --host-root DIR   the node's root as mounted in the container (default /)
          --config FILE     a JSON object of randsnat's keys for its chain entry (e.g. nonMasqueradeCIDRs)
          --turn-off-primary-masquerade
                            set the primary's own ipMasq to false instead of refusing to chain
          --allow-earlier-snat
                            chain randsnat even though a SNAT rule runs before randsnat's and takes the
                            pods' traffic (such as the AWS VPC CNI's without AWS_VPC_K8S_CNI_EXTERNALSNAT=true)
          --watch           stay running and chain again whenever the primary CNI rewrites its config
          --uninstall-on-exit
                            with --watch: uninstall on SIGTERM/SIGINT
          --uninstall       restore the node's config to its original bytes and remove the binary
          --check           exit 0 when the binary and the chain are in place (a readiness probe)
          -h, --help        this text

        exit status: 0 done, 1 file error, 2 usage, 3 refused (nothing changed), 4 no network config yet
        """

    /// The options, with their values' forms, as a usage error lists them.
    static let optionForms = ["--host-root DIR", "--config FILE", "--turn-off-primary-masquerade", "--allow-earlier-snat", "--watch",
                              "--uninstall-on-exit", "--uninstall", "--check", "--help"]

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
            case "--config": options.settingsFile = try value("--config FILE")
            case "--uninstall": options.uninstall = true
            case "--watch": options.watch = true
            case "--check": options.check = true
            case "--uninstall-on-exit": options.uninstallOnExit = true
            case "--turn-off-primary-masquerade": options.fixMasquerade = true
            case "--allow-earlier-snat": options.allowEarlierSNAT = true
            default: throw .unknown(argument, accepted: optionForms)
            }
            index += 1
        }
        if options.uninstall && (options.watch || options.check) { throw UsageError("--uninstall cannot be used with --watch or --check") }
        if options.uninstallOnExit && !options.watch { throw UsageError("--uninstall-on-exit needs --watch") }
        return options
    }

    let options: Options
    let files: HostFiles
    let log: (String) -> Void
    /// The shadowing check on the node (`EarlierSNAT`) for the backend the settings choose, with what
    /// could not be read; nil: no check.
    let earlierSNAT: ((BackendChoice) -> (found: [EarlierSNAT], unreadable: [String]))?
    /// Removes what an earlier build left in the kernel (`Backends.removeEarlierLeftovers`), with
    /// lines for the log; nil: nothing removed.
    let earlierLeftovers: (() -> [String])?

    public init(options: Options, files: HostFiles, log: @escaping (String) -> Void,
                earlierSNAT: ((BackendChoice) -> (found: [EarlierSNAT], unreadable: [String]))? = nil,
                earlierLeftovers: (() -> [String])? = nil) {
        self.options = options
        self.files = files
        self.log = log
        self.earlierSNAT = earlierSNAT
        self.earlierLeftovers = earlierLeftovers
    }

    var root: String { options.hostRoot.hasSuffix("/") ? String(options.hostRoot.dropLast()) : options.hostRoot }
    var binDirectory: String { root + "/opt/cni/bin" }
    var binary: String { binDirectory + "/randsnat" }
    var configDirectory: String { root + "/etc/cni/net.d" }

    public func run() -> Status {
        do {
            if options.uninstall { return try uninstall() }
            if options.check { return try check() }
            if options.watch { return try watch() }
            return try install()
        } catch let refusal as Refusal {
            return outcome(of: refusal)
        } catch {
            log("randsnat install: \(error)")
            return .failed
        }
    }

    /// The exit status of a refusal, chosen by its reason (never by its text), and its line on stderr.
    func outcome(of refusal: Refusal) -> Status {
        switch refusal.reason {
        case .noNetworkConfig:
            log("randsnat install: \(refusal)")
            return .noConfig
        case .conflict:
            log("randsnat install: refused: \(refusal)")
            return .refused
        }
    }

    /// Why the settings file is refused (absent, not JSON, an invalid key); nil when it is taken or
    /// there is none. The installer's own run logs the same reason.
    public func settingsRefusal() -> String? {
        do {
            _ = try settings()
            return nil
        } catch {
            return "\(error)"
        }
    }

    func settings() throws -> [JSONKey: JSONValue] {
        guard let path = options.settingsFile else { return [:] }
        let found: [UInt8]?
        do { found = try files.readConfig(path) } catch { throw Refusal(description: "the settings file is refused: \(error)") }
        guard let bytes = found else { throw Refusal(description: "the settings file \(path) does not exist") }
        let (settings, warnings) = try ChainPlanner.settings(bytes)
        for warning in warnings { log("randsnat install: \(path): \(warning)") }
        return settings
    }

    /// The files of net.d the installer looks at; one that is no regular file, or too large, is
    /// skipped with a line naming it (as libcni would fail on it, it is no network config).
    func configFiles() throws -> [ConfigFile] {
        try (files.list(configDirectory) ?? []).compactMap { name in
            guard ChainPlan.isLoadable(name) || name.hasSuffix(ChainPlan.backupSuffix) else { return nil }
            do {
                return try files.readConfig(configDirectory + "/" + name).map { ConfigFile(name: name, bytes: $0) }
            } catch {
                log("randsnat install: skipping \(error)")
                return nil
            }
        }
    }

    /// Copies the binary (if it differs), then chains randsnat into the primary config.
    public func install() throws -> Status {
        let settings = try settings()
        try files.makeDirectories(binDirectory)
        if try files.write(try files.ownExecutable(), to: binary, permissions: 0o755) { log("randsnat install: wrote \(binary) (randsnat \(BuildInfo.version))") }
        try files.removeStaleTemps(in: configDirectory)
        for line in earlierLeftovers?() ?? [] { log("randsnat install: \(line)") }
        guard let plan = try ChainPlanner.plan(try configFiles(), settings: settings, fixMasquerade: options.fixMasquerade) else {
            log("randsnat install: the primary config is randsnat itself; nothing to chain")
            return .done
        }
        for warning in plan.warnings { log("randsnat install: \(warning)") }
        try checkEarlierSNAT(settings)
        let backup = configDirectory + "/" + plan.backupName
        if (try? files.readConfig(backup)) != plan.original.bytes {
            // The backup keeps the original's mode, which uninstall gives back with its bytes.
            let mode = files.permissions(of: configDirectory + "/" + plan.original.name) ?? 0o644
            try files.write(plan.original.bytes, to: backup, permissions: mode)
        }
        if try files.write(plan.bytes, to: configDirectory + "/" + plan.target, permissions: 0o644) {
            log("randsnat install: chained randsnat into \(configDirectory)/\(plan.target) (original kept as \(plan.backupName))")
        }
        for name in plan.remove { try files.remove(configDirectory + "/" + name) }
        return .done
    }

    /// Refuses to chain while a SNAT rule runs before randsnat's and takes the pods' traffic (randsnat's
    /// rule would never match it), unless `--allow-earlier-snat`; rules that may take some of it are
    /// warnings.
    func checkEarlierSNAT(_ settings: [JSONKey: JSONValue]) throws {
        guard let earlierSNAT else { return }
        let (found, unreadable) = earlierSNAT(settings["backend"]?.stringValue.flatMap(BackendChoice.init) ?? .auto)
        for line in unreadable {
            log("randsnat install: warning: \(line) (reading the nat tables needs CAP_NET_ADMIN and CAP_NET_RAW in the node's network namespace)")
        }
        for shadow in found where !shadow.certain || options.allowEarlierSNAT { log("randsnat install: warning: \(shadow.text)") }
        if let first = found.first(where: \.certain), !options.allowEarlierSNAT {
            throw Refusal(description: "\(first.text); the network config was not changed (or run with --allow-earlier-snat to chain randsnat anyway)")
        }
    }

    /// Puts the node's config back to its original bytes and removes the binary.
    public func uninstall() throws -> Status {
        for name in try files.list(configDirectory) ?? [] where name.hasSuffix(ChainPlan.backupSuffix) {
            let original = String(name.dropLast(ChainPlan.backupSuffix.count))
            let found: [UInt8]?
            do { found = try files.readConfig(configDirectory + "/" + name) } catch {
                log("randsnat install: skipping \(error)")
                continue
            }
            guard let bytes = found else { continue }
            try files.write(bytes, to: configDirectory + "/" + original, permissions: files.permissions(of: configDirectory + "/" + name) ?? 0o644)
            // A .conf that was turned into a conflist: remove the conflist randsnat wrote.
            if !original.hasSuffix(".conflist") {
                let base = original.split(separator: ".", omittingEmptySubsequences: false).dropLast().joined(separator: ".")
                try files.remove(configDirectory + "/" + base + ".conflist")
            }
            try files.remove(configDirectory + "/" + name)
            log("randsnat install: restored \(configDirectory)/\(original)")
        }
        try files.removeStaleTemps(in: configDirectory)
        try files.remove(binary)
        return .done
    }

    /// A readiness probe: the binary is there and the runtime's config chains randsnat.
    public func check() throws -> Status {
        guard try files.read(binary) != nil else {
            log("randsnat install: \(binary) is missing")
            return .failed
        }
        guard let primary = ChainPlan.primary(of: try configFiles()) else {
            log("randsnat install: no network config in \(configDirectory)")
            return .noConfig
        }
        let document = try? JSONValue.parse(primary.bytes)
        let plugins = document?["plugins"]?.arrayValue ?? []
        guard plugins.contains(where: { $0["type"]?.stringValue == "randsnat" }) else {
            log("randsnat install: \(primary.name) does not chain randsnat")
            return .failed
        }
        return .done
    }

    /// Installs, then installs again whenever something in net.d changes, until SIGTERM or SIGINT.
    public func watch() throws -> Status {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigprocmask(SIG_BLOCK, &signals, nil)
        let signalFD = signalfd(-1, &signals, Int32(SFD_CLOEXEC))
        guard signalFD >= 0 else { throw FileError(SystemCallError("receiving SIGTERM and SIGINT while watching", configDirectory)) }
        defer { FileDescriptor(rawValue: signalFD).close() }
        let inotifyFD = inotify_init1(Int32(IN_CLOEXEC))
        guard inotifyFD >= 0 else { throw FileError(SystemCallError("watching", configDirectory)) }
        let inotify = FileDescriptor(rawValue: inotifyFD)
        defer { inotify.close() }
        try files.makeDirectories(configDirectory)
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE)
        guard inotify_add_watch(inotifyFD, configDirectory, mask) >= 0 else { throw FileError(SystemCallError("watching", configDirectory)) }
        // inotify's events only wake the loop; what changed is read from net.d itself.
        let events = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { events.deallocate() }
        var last = Status.done
        while true {
            do {
                last = try install()
            } catch let refusal as Refusal {
                last = outcome(of: refusal)
            }
            // Wait for a change (or a minute, as a fallback), then let the writer finish.
            var fds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0), pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 60_000)
            if fds[0].revents != 0 {
                log("randsnat install: signal received, stopping")
                if options.uninstallOnExit { return try uninstall() }
                return last == .failed ? .failed : .done
            }
            if fds[1].revents != 0 {
                _ = try? inotify.read(into: events)
                usleep(200_000)
                while true {  // drain what came meanwhile
                    var quick = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0)]
                    guard poll(&quick, 1, 0) > 0 else { break }
                    _ = try? inotify.read(into: events)
                }
            }
        }
    }
}
