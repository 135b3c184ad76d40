import SystemCalls

/// A file operation on the host root that failed; says which file and why.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    init(_ failure: SystemCallError) {
        description = failure.description
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

    public func read(_ path: String) throws -> [UInt8]? {
        do { return try Files.contents(of: path, chunk: 1 << 16) } catch { throw FileError(error) }
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
        if try read(path) == bytes, Files.permissions(of: path) == permissions { return false }
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
