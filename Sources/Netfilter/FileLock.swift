import RandSNATCore
import SystemCalls

/// An exclusive `flock` on a file, taken with a bounded wait.
///
/// The xtables lock (`/run/xtables.lock`, or `$XTABLES_LOCKFILE`) is the one iptables, kube-proxy
/// and the reference plugins take around every read-modify-commit of a table: without it two
/// writers each commit a table missing the other's change.
public struct FileLock {
    public let path: String
    /// The directory made (mode 0700) when the lock is first used, not when the value is built: a
    /// verb that never writes makes no directory. nil: the lock file's directory must exist.
    let directory: String?

    public init(path: String, makingDirectory directory: String? = nil) {
        self.path = path
        self.directory = directory
    }

    /// The lock iptables takes.
    public static func xtables(environment: [String: String]) -> FileLock {
        FileLock(path: environment["XTABLES_LOCKFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/xtables.lock")
    }

    /// Opens (creating) the lock file, and its directory first when it has one to make.
    func open() throws(NetfilterError) -> FileDescriptor {
        do {
            if let directory { try Files.makeDirectory(directory, permissions: 0o700) }
            return try FileDescriptor.open(path, [.readWrite, .create], permissions: 0o600)
        } catch {
            throw NetfilterError.lockUnusable(path: error.object, reason: error.errno.description)
        }
    }

    /// Why the lock could not be used, or nil when it can (STATUS's probe: opens it, takes nothing).
    public func unusableReason() -> String? {
        do {
            try open().close()
            return nil
        } catch {
            if case .lockUnusable(_, let reason) = error { return reason }
            return error.description
        }
    }

    /// Runs `body` holding the lock; waits at most `timeoutSeconds` for it.
    public func withLock<T>(timeoutSeconds: Double, _ body: () throws -> T) throws -> T {
        try withLock(timeoutSeconds: timeoutSeconds, removingFileWhen: { _ in false }, body)
    }

    /// Runs `body` holding the lock, then removes the lock file, still holding it, when `remove`
    /// says so of the body's result (a network that is gone: `RunDirectoryPruning`).
    ///
    /// A lock file may be removed, so a lock is held only once its file is still the one the path
    /// names: a waiter that opened the file before it was removed gets its flock after the remover
    /// let go, sees that the path no longer names that file, and locks the path anew (creating it).
    /// So two holders never hold two different files of the same path at once.
    public func withLock<T>(timeoutSeconds: Double, removingFileWhen remove: (T) -> Bool, _ body: () throws -> T) throws -> T {
        let deadline = Self.now() + timeoutSeconds
        while true {
            let fd = try open()
            defer { fd.close() }  // closing drops the flock
            try wait(for: fd, until: deadline, timeoutSeconds: timeoutSeconds)
            guard fd.isStillNamed(path) else {  // removed while waited for: lock the new one
                guard Self.now() < deadline else { throw NetfilterError.lockTimeout(path: path, waitedSeconds: timeoutSeconds) }
                continue
            }
            let result = try body()
            if remove(result) { try? Files.remove(path) }
            return result
        }
    }

    /// Takes the flock on `fd`, waiting until `deadline`.
    private func wait(for fd: FileDescriptor, until deadline: Double, timeoutSeconds: Double) throws(NetfilterError) {
        var pause: UInt32 = 1_000
        while true {
            let held: Bool
            do { held = try fd.tryLockExclusive() } catch { throw NetfilterError.lockUnusable(path: path, reason: error.description) }
            if held { return }
            guard Self.now() < deadline else { throw NetfilterError.lockTimeout(path: path, waitedSeconds: timeoutSeconds) }
            ThisProcess.sleep(microseconds: pause)
            pause = min(pause * 2, 20_000)
        }
    }

    static func now() -> Double { ThisProcess.monotonicSeconds() }
}

/// randsnat's lock per network: `/run/randsnat/<network hash>.lock`.
public struct NetworkFileLock: NetworkLock {
    let directory: String

    public init(directory: String = RunDirectory.defaultPath) { self.directory = directory }

    public func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T {
        try file(hash: id.hash).withLock(timeoutSeconds: timeoutSeconds, body)
    }

    /// The lock file of the network whose hash is `hash` (`NetworkID.hash`).
    func file(hash: String) -> FileLock {
        FileLock(path: "\(directory)/\(hash)\(Self.suffix)", makingDirectory: directory)
    }

    /// The lock files' suffix: `<network hash>.lock` in the run directory.
    static let suffix = ".lock"
}
