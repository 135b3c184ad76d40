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
        let fd = try open()
        defer { fd.close() }  // closing drops the flock
        let deadline = Self.now() + timeoutSeconds
        var pause: UInt32 = 1_000
        while true {
            let held: Bool
            do { held = try fd.tryLockExclusive() } catch { throw NetfilterError.lockUnusable(path: path, reason: error.description) }
            if held { break }
            guard Self.now() < deadline else { throw NetfilterError.lockTimeout(path: path, waitedSeconds: timeoutSeconds) }
            ThisProcess.sleep(microseconds: pause)
            pause = min(pause * 2, 20_000)
        }
        return try body()
    }

    static func now() -> Double { ThisProcess.monotonicSeconds() }
}

/// randsnat's lock per network: `/run/randsnat/<network hash>.lock`.
public struct NetworkFileLock: NetworkLock {
    let directory: String

    public init(directory: String = "/run/randsnat") { self.directory = directory }

    public func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T {
        try FileLock(path: "\(directory)/\(id.hash).lock", makingDirectory: directory).withLock(timeoutSeconds: timeoutSeconds, body)
    }
}
