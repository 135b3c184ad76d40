import CNI
import SystemCalls

/// A file operation on the host root that failed; says which file and why.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    init(_ failure: SystemCallError) {
        description = failure.description
    }

    init(_ refusal: FileRefusal) {
        description = refusal.description
    }
}

/// The installer's file operations. Writes are atomic: a temp file in the same directory, fsync,
/// rename, fsync of the directory, so a reader (the runtime) sees the old file or the new one, never
/// part of one, even if the installer dies in between.
public struct HostFiles {
    /// The binary the installer copies to the node: the running one (`randsnat install`), or the
    /// per-pod binary beside randsnat-agent when the agent installs.
    let executable: String

    public init(executable: String = "/proc/self/exe") {
        self.executable = executable
    }

    /// The largest network config or settings file read: the largest config randsnat takes on stdin
    /// (a net.d file is what the runtime hands a plugin, less the prevResult).
    public static let configLimit = Dispatcher.maxInputBytes

    /// A file randsnat writes itself (the binary), read whole.
    public func read(_ path: String) throws -> [UInt8]? {
        do { return try Files.contents(of: path, chunk: 1 << 16) } catch { throw FileError(error) }
    }

    /// A file someone else writes (a net.d file, the settings file): a regular file (links followed:
    /// a ConfigMap volume's files are links) of at most `configLimit` bytes, opened without blocking.
    /// nil when it does not exist; anything else is refused with the file and the reason.
    public func readConfig(_ path: String) throws(FileRefusal) -> [UInt8]? {
        try Files.regularFile(path, limit: Self.configLimit)?.bytes
    }

    /// The names in a directory (nil when it does not exist).
    public func list(_ directory: String) throws -> [String]? {
        do {
            return try Files.names(in: directory)?.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } catch {
            throw FileError(error)
        }
    }

    public func makeDirectories(_ path: String) throws {
        do { try Files.makeDirectories(path) } catch { throw FileError(error) }
    }

    /// A file's permission bits (`0o644`); nil when it cannot be read.
    public func permissions(of path: String) -> UInt32? { Files.permissions(of: path) }

    /// Writes `bytes` to `path` atomically with `permissions`, unless the file already holds exactly them.
    /// - Returns: true when it wrote.
    @discardableResult
    public func write(_ bytes: [UInt8], to path: String, permissions: UInt32) throws -> Bool {
        // What is there is read no further than what would be written: a longer file, or one that
        // is no regular file, differs from it.
        if (try? Files.regularFile(path, limit: bytes.count))?.bytes == bytes, Files.permissions(of: path) == permissions { return false }
        let directory = String(path[..<path.lastIndex(of: "/")!])
        let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
        let temp = "\(directory)/.\(name).randsnat-tmp"
        do {
            try Files.replace(path, with: bytes, permissions: permissions, temp: temp, durable: true)
        } catch {
            throw FileError(error)
        }
        return true
    }

    public func remove(_ path: String) throws {
        do { try Files.remove(path) } catch { throw FileError(error) }
    }

    /// Temp files a crashed run left behind.
    public func removeStaleTemps(in directory: String) throws {
        for name in try list(directory) ?? [] where name.hasPrefix(".") && name.hasSuffix(".randsnat-tmp") {
            try remove(directory + "/" + name)
        }
    }

    /// The bytes of the binary the installer copies to the node (`executable`).
    public func ownExecutable() throws -> [UInt8] {
        guard let bytes = try read(executable) else { throw FileError(SystemCallError("reading", executable, .notFound)) }
        return bytes
    }
}
