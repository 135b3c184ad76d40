import CNI
internal import CNetlink
internal import Glibc
import RandSNATCore
import SystemCalls

/// Runs a delegated plugin (IPAM) the way libcni does: found in CNI_PATH, this process's
/// environment with CNI_COMMAND set to the verb, the config on stdin, the result on stdout.
public struct PluginExec: IPAMRunner {
    /// The most a delegated plugin may print: the most randsnat takes on stdin (a result is smaller
    /// than the config that carries it as prevResult).
    static let outputLimit = Dispatcher.maxInputBytes

    /// This process's environ entries, as bytes.
    let processEnvironment: [[UInt8]]

    public init(processEnvironment: [[UInt8]]) { self.processEnvironment = processEnvironment }

    public func start(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> any RunningIPAM {
        guard let path = environment.path.map({ $0 + "/" + plugin }).first(where: { access($0, X_OK) == 0 }) else {
            throw DelegatedPluginError.notFound(plugin: plugin, searchPath: environment.path)
        }
        let variables = Environment.delegatedEntries(processEnvironment, verb: verb)
        return RunningPlugin(name: plugin, verb: verb, process: try Self.spawn(path, environment: variables, input: config))
    }

    /// A spawned plugin; `wait` collects its output once and keeps the answer.
    final class RunningPlugin: RunningIPAM {
        let name: String
        let verb: Verb
        let process: Spawned
        var answer: Result<JSONValue?, any Error>?

        init(name: String, verb: Verb, process: Spawned) {
            self.name = name
            self.verb = verb
            self.process = process
        }

        func wait() throws -> JSONValue? {
            if let answer { return try answer.get() }
            let outcome = Result { try interpret(process.finish(plugin: name)) }
            answer = outcome
            return try outcome.get()
        }

        func interpret(_ finished: (status: Int32, output: [UInt8])) throws -> JSONValue? {
            let (status, output) = finished
            if status == 0 {
                guard output.contains(where: { $0 > 0x20 }) else { return nil }
                do {
                    return try JSONValue.parse(output)
                } catch {
                    throw DelegatedPluginError.unreadableResult(plugin: name, reason: error.description)
                }
            }
            if let error = try? JSONValue.parse(output), let code = error["code"]?.intValue {
                throw CNIError(CNIError.Code(rawValue: Int(code)), error["msg"]?.stringValue ?? "IPAM plugin \"\(name)\" failed",
                               details: error["details"]?.stringValue ?? "")
            }
            throw DelegatedPluginError.failed(plugin: name, verb: verb.rawValue, exitStatus: status)
        }
    }

    /// A child process with its stdout on a pipe.
    struct Spawned {
        let pid: Int32
        let stdout: FileDescriptor

        /// Reads stdout to EOF (at most `outputLimit` bytes) and reaps the child.
        func finish(plugin name: String) throws(DelegatedPluginError) -> (status: Int32, output: [UInt8]) {
            // A read error ends the output as EOF does: the exit status says whether the plugin succeeded.
            let output = (try? stdout.readToEnd(limit: PluginExec.outputLimit, chunk: 65536)) ?? []
            stdout.close()
            var status: Int32 = 0
            if output.count > PluginExec.outputLimit {
                // A plugin that writes without end would block on the closed pipe or spin on EPIPE: it is
                // ended, reaped, and its output refused.
                kill(pid, SIGKILL)
                _ = retryingOnInterrupt { waitpid(pid, &status, 0) }
                throw DelegatedPluginError.oversizedResult(plugin: name, limit: PluginExec.outputLimit)
            }
            _ = retryingOnInterrupt { waitpid(pid, &status, 0) }
            let exited = (status & 0x7F) == 0
            return (exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), output)
        }
    }

    /// posix_spawn with stdin and stdout on pipes; stderr is shared, so the plugin's logs reach the
    /// runtime. Writes `input` and closes stdin; the caller collects stdout with `finish`.
    ///
    /// A plugin may exit without reading its stdin (an old skel answers GC and STATUS so): the write
    /// then fails with EPIPE, and randsnat ignores SIGPIPE (from here on) so that it is not killed
    /// by it. The plugin gets the default SIGPIPE back.
    static func spawn(_ path: String, environment: [[UInt8]], input: [UInt8]) throws -> Spawned {
        signal(SIGPIPE, SIG_IGN)
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe2(&toChild, O_CLOEXEC) == 0, pipe2(&fromChild, O_CLOEXEC) == 0 else {
            throw DelegatedPluginError.cannotRun(path: path, what: "make pipes to run", reason: Errno.current.description)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { entry in
            let copy = malloc(entry.count + 1)!.assumingMemoryBound(to: CChar.self)
            for (index, byte) in entry.enumerated() { copy[index] = CChar(bitPattern: byte) }
            copy[entry.count] = 0
            return copy
        } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(toChild[0])
        close(fromChild[1])
        guard spawned == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw DelegatedPluginError.cannotRun(path: path, what: "run", reason: Errno(spawned).description)
        }
        // A plugin that stops reading (EPIPE) gets what was written; its exit status tells the rest.
        let stdin = FileDescriptor(rawValue: toChild[1])
        try? stdin.writeAll(input)
        stdin.close()
        return Spawned(pid: pid, stdout: FileDescriptor(rawValue: fromChild[0]))
    }
}
