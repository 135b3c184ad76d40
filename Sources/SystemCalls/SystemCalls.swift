internal import Glibc

// The one place randsnat calls the C library for files and descriptors: errno with its name, EINTR
// retried, reads to the end, writes of everything, atomic file replacement. Every other module uses
// these instead of calling read/write/open itself, so an error always says what was done, to which
// object, and the errno by name and message.

/// An errno value: the C library's message and the symbolic name ("No such file or directory (ENOENT)").
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    /// The calling thread's errno: read it right after the call that failed.
    public static var current: Errno { Errno(errno) }

    public static let notFound = Errno(ENOENT)
    public static let exists = Errno(EEXIST)
    public static let interrupted = Errno(EINTR)
    public static let wouldBlock = Errno(EAGAIN)
    public static let timedOut = Errno(ETIMEDOUT)
    public static let noBufferSpace = Errno(ENOBUFS)
    public static let permissionDenied = Errno(EPERM)
    public static let busy = Errno(EBUSY)
    public static let invalidArgument = Errno(EINVAL)

    /// The symbolic name, "errno N" for one this table does not know.
    public var name: String { Self.names[code] ?? "errno \(code)" }

    /// The C library's message for it.
    public var message: String { String(cString: strerror(code)) }

    public var description: String { "\(message) (\(name))" }

    static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST",
        EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
        ENFILE: "ENFILE", EMFILE: "EMFILE", ETXTBSY: "ETXTBSY", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
        ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE", ERANGE: "ERANGE",
        EDEADLK: "EDEADLK", ENAMETOOLONG: "ENAMETOOLONG", ENOLCK: "ENOLCK", ENOSYS: "ENOSYS",
        ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENOMSG: "ENOMSG", ENODATA: "ENODATA", ETIME: "ETIME",
        EPROTO: "EPROTO", EBADMSG: "EBADMSG", EOVERFLOW: "EOVERFLOW", ENOTSOCK: "ENOTSOCK",
        EMSGSIZE: "EMSGSIZE", EPROTONOSUPPORT: "EPROTONOSUPPORT", EOPNOTSUPP: "EOPNOTSUPP",
        EAFNOSUPPORT: "EAFNOSUPPORT", EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL",
        ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH", ECONNRESET: "ECONNRESET", ENOBUFS: "ENOBUFS",
        EISCONN: "EISCONN", ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT", ECONNREFUSED: "ECONNREFUSED",
        EHOSTUNREACH: "EHOSTUNREACH", EALREADY: "EALREADY", EINPROGRESS: "EINPROGRESS",
        ECANCELED: "ECANCELED", EOWNERDEAD: "EOWNERDEAD",
    ]
}

/// A system call that failed: what randsnat was doing, to which object, and the errno.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was being done, as a verb phrase ("opening", "renaming /a/.b.tmp to").
    public let operation: String
    /// The path, socket or object it was done to.
    public let object: String
    public let errno: Errno

    public init(_ operation: String, _ object: String, _ errno: Errno = .current) {
        self.operation = operation
        self.object = object
        self.errno = errno
    }

    public var description: String { "\(operation) \(object): \(errno)" }
}

/// Calls `call` again while it returns -1 with errno EINTR; returns its result (errno is the
/// failed call's when the result is -1).
@inline(__always)
public func retryingOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}

/// How to open a file (always close-on-exec).
public struct OpenFlags: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let readOnly = OpenFlags([])
    public static let writeOnly = OpenFlags(rawValue: O_WRONLY)
    public static let readWrite = OpenFlags(rawValue: O_RDWR)
    public static let create = OpenFlags(rawValue: O_CREAT)
    public static let truncate = OpenFlags(rawValue: O_TRUNC)
    public static let exclusive = OpenFlags(rawValue: O_EXCL)
    public static let directory = OpenFlags(rawValue: O_DIRECTORY)
    public static let nonBlocking = OpenFlags(rawValue: O_NONBLOCK)
    /// Fails (ELOOP) when the path's last component is a symbolic link, instead of following it.
    public static let noFollow = OpenFlags(rawValue: O_NOFOLLOW)
}

/// An open file descriptor. Not closed on deinit: call `close()` (usually in a `defer`).
public struct FileDescriptor: Hashable, Sendable {
    /// The descriptor number, for the adapters that hand it to a C library.
    package let rawValue: Int32

    package init(rawValue: Int32) { self.rawValue = rawValue }

    /// Opens `path`; `permissions` apply when the file is created.
    public static func open(_ path: String, _ flags: OpenFlags = .readOnly, permissions: UInt32 = 0o600,
                            operation: String = "opening") throws(SystemCallError) -> FileDescriptor {
        let fd = retryingOnInterrupt { Glibc.open(path, flags.rawValue | O_CLOEXEC, mode_t(permissions)) }
        guard fd >= 0 else { throw SystemCallError(operation, path) }
        return FileDescriptor(rawValue: fd)
    }

    /// Reads what is there, up to `buffer.count` bytes; 0 at the end of the file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let count = retryingOnInterrupt { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
        guard count >= 0 else { throw Errno.current }
        return count
    }

    /// Reads until the end of the file (files randsnat or the kernel writes: see `readToEnd(limit:)` for
    /// what others write).
    public func readToEnd(chunk: Int = 8192) throws(Errno) -> [UInt8] {
        try readToEnd(limit: Int.max - 1, chunk: chunk)
    }

    /// Reads until the end of the file, or until more than `limit` bytes came: then it stops reading
    /// and returns `limit + 1` bytes, so that the caller can tell an over-long input from one at the limit.
    public func readToEnd(limit: Int, chunk: Int = 8192) throws(Errno) -> [UInt8] {
        var bytes: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 1)
        defer { buffer.deallocate() }
        while bytes.count <= limit {
            let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(chunk, limit + 1 - bytes.count)]))
            if count == 0 { return bytes }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    /// Writes every byte (a short write is continued).
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = retryingOnInterrupt { Glibc.write(rawValue, bytes.baseAddress! + offset, bytes.count - offset) }
            guard written > 0 else { throw written == 0 ? Errno(EIO) : Errno.current }
            offset += written
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        var failure: Errno?
        bytes.withUnsafeBytes { raw in
            do throws(Errno) { try writeAll(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public func sync() throws(Errno) {
        guard fsync(rawValue) == 0 else { throw Errno.current }
    }

    public func setPermissions(_ permissions: UInt32) throws(Errno) {
        guard fchmod(rawValue, mode_t(permissions)) == 0 else { throw Errno.current }
    }

    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// Takes an exclusive `flock` without waiting: false when another holder has it (or a signal
    /// interrupted the call: the caller's wait loop asks again).
    public func tryLockExclusive() throws(Errno) -> Bool {
        if flock(rawValue, LOCK_EX | LOCK_NB) == 0 { return true }
        let failure = Errno.current
        guard failure == .wouldBlock || failure == .interrupted else { throw failure }
        return false
    }
}

/// The process's clock, sleep and identity, for the layers above that import no C module.
public enum ThisProcess {
    /// Seconds on the monotonic clock (for deadlines; not a date).
    public static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Nanoseconds since the epoch on the real-time clock (the clock of files' modification times).
    public static func realTimeNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Sleeps about `microseconds`.
    public static func sleep(microseconds: UInt32) {
        _ = usleep(microseconds)
    }

    /// This process's id (for names that must not collide between processes, such as temp files).
    public static var id: Int { Int(getpid()) }
}

/// Files and directories by path.
public enum Files {
    /// A file's bytes; nil when it does not exist.
    public static func contents(of path: String, chunk: Int = 8192) throws(SystemCallError) -> [UInt8]? {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, operation: "reading")
        } catch where error.errno == .notFound {
            return nil
        }
        defer { fd.close() }
        do {
            return try fd.readToEnd(chunk: chunk)
        } catch {
            throw SystemCallError("reading", path, error)
        }
    }

    /// A small text file (procfs, sysfs) as text; fails when it does not exist.
    public static func text(of path: String) throws(SystemCallError) -> String {
        guard let bytes = try contents(of: path) else { throw SystemCallError("reading", path, .notFound) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The names in a directory, without "." and "..", in the directory's order; nil when it does not exist.
    public static func names(in directory: String) throws(SystemCallError) -> [String]? {
        guard let handle = opendir(directory) else {
            if errno == ENOENT { return nil }
            throw SystemCallError("listing", directory)
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Makes a directory; one that exists already is fine.
    public static func makeDirectory(_ path: String, permissions: UInt32 = 0o755) throws(SystemCallError) {
        if mkdir(path, mode_t(permissions)) != 0 && errno != EEXIST { throw SystemCallError("creating", path) }
    }

    /// Makes a directory and its parents (an absolute path).
    public static func makeDirectories(_ path: String, permissions: UInt32 = 0o755) throws(SystemCallError) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            try makeDirectory(current, permissions: permissions)
        }
    }

    /// Removes a file; one that does not exist is fine.
    public static func remove(_ path: String) throws(SystemCallError) {
        if unlink(path) != 0 && errno != ENOENT { throw SystemCallError("removing", path) }
    }

    /// The permission bits of a file; nil when it cannot be read.
    public static func permissions(of path: String) -> UInt32? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt32(info.st_mode & 0o7777)
    }

    /// The modification time of a file or directory, in nanoseconds since the epoch; nil when it cannot be read.
    public static func modificationTime(of path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    /// Replaces `path` with `bytes` atomically: written to `temp` (in the same directory), renamed over
    /// `path`, so a reader sees the old file or the new one, never part of one, even if the writer dies
    /// in between. `durable` adds an fsync of the file before the rename and of the directory after
    /// (for files that must survive a power loss; not needed on a tmpfs).
    /// `beforeRename` runs when the temp file is complete; when it throws, the temp file stays, as a
    /// crash there would leave it (fault injection in tests).
    public static func replace(_ path: String, with bytes: [UInt8], permissions: UInt32, temp: String,
                               durable: Bool, beforeRename: () throws(SystemCallError) -> Void = {}) throws(SystemCallError) {
        // Not through a link planted at the temp's name: that would write wherever it points.
        let fd = try FileDescriptor.open(temp, [.writeOnly, .create, .truncate, .noFollow], permissions: permissions, operation: "creating")
        do throws(SystemCallError) {
            defer { fd.close() }
            do { try fd.writeAll(bytes) } catch { throw SystemCallError("writing", temp, error) }
            do { try fd.setPermissions(permissions) } catch { throw SystemCallError("setting permissions of", temp, error) }
            if durable {
                do { try fd.sync() } catch { throw SystemCallError("syncing", temp, error) }
            }
        } catch {
            _ = unlink(temp)
            throw error
        }
        try beforeRename()
        guard rename(temp, path) == 0 else {
            let failure = SystemCallError("renaming \(temp) to", path)
            _ = unlink(temp)
            throw failure
        }
        if durable, let slash = path.lastIndex(of: "/") {
            let directory = slash == path.startIndex ? "/" : String(path[..<slash])
            if let dir = try? FileDescriptor.open(directory, [.directory]) {
                try? dir.sync()
                dir.close()
            }
        }
    }
}
