import Glibc
import RandSNATCore

/// An exclusive `flock` on a file, taken with a bounded wait.
///
/// The xtables lock (`/run/xtables.lock`, or `$XTABLES_LOCKFILE`) is the one iptables, kube-proxy
/// and the reference plugins take around every read-modify-commit of a table: without it two
/// writers each commit a table missing the other's change.
public struct FileLock {
    public let path: String

    public init(path: String) { self.path = path }

    /// The lock iptables takes.
    public static func xtables(environment: [String: String]) -> FileLock {
        FileLock(path: environment["XTABLES_LOCKFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/xtables.lock")
    }

    /// Runs `body` holding the lock; waits at most `timeoutSeconds` for it.
    public func withLock<T>(timeoutSeconds: Double, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw NetfilterError.lockUnusable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }  // closing drops the flock
        let deadline = Self.now() + timeoutSeconds
        var pause: UInt32 = 1_000
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw NetfilterError.lockUnusable(path: path, reason: String(cString: strerror(errno)))
            }
            guard Self.now() < deadline else { throw NetfilterError.lockTimeout(path: path, waitedSeconds: timeoutSeconds) }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        return try body()
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

/// randsnat's lock per network: `/run/randsnat/<network hash>.lock`.
public struct NetworkFileLock: NetworkLock {
    let directory: String

    public init(directory: String = "/run/randsnat") { self.directory = directory }

    public func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw NetfilterError.lockUnusable(path: directory, reason: String(cString: strerror(errno)))
        }
        return try FileLock(path: "\(directory)/\(id.hash).lock").withLock(timeoutSeconds: timeoutSeconds, body)
    }
}
