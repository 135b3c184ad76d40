import CNetlink
import Glibc

/// A file operation on the host root that failed; says which file and why.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    init(_ operation: String, _ path: String, _ code: Int32 = errno) {
        description = "\(operation) \(path): \(String(cString: strerror(code)))"
    }
}

/// The installer's file operations. Writes are atomic: a temp file in the same directory, fsync,
/// rename, fsync of the directory, so a reader (the runtime) sees the old file or the new one, never
/// part of one, even if the installer dies in between.
public struct HostFiles {
    /// Set RANDSNAT_INSTALL_FAULT=before-rename to stop after the temp file is written (tests).
    let faultBeforeRename: Bool

    /// The binary the installer copies to the node: the running one (`randsnat install`), or the
    /// per-pod binary beside randsnat-agent when the agent installs.
    let executable: String

    public init(faultBeforeRename: Bool = false, executable: String = "/proc/self/exe") {
        self.faultBeforeRename = faultBeforeRename
        self.executable = executable
    }

    public func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw FileError("reading", path)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw FileError("reading", path) }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }

    /// The names in a directory (nil when it does not exist).
    public func list(_ directory: String) throws -> [String]? {
        guard let handle = opendir(directory) else {
            if errno == ENOENT { return nil }
            throw FileError("listing", directory)
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    public func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw FileError("creating", current) }
        }
    }

    /// Writes `bytes` to `path` atomically with `mode`, unless the file already holds exactly them.
    /// - Returns: true when it wrote.
    @discardableResult
    public func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws -> Bool {
        if try read(path) == bytes, Self.mode(of: path) == mode { return false }
        let directory = String(path[..<path.lastIndex(of: "/")!])
        let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
        let temp = "\(directory)/.\(name).randsnat-tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileError("creating", temp) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let code = errno
                close(fd)
                unlink(temp)
                throw FileError("writing", temp, code)
            }
            offset += written
        }
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temp)
            throw FileError("syncing", temp, code)
        }
        close(fd)
        if faultBeforeRename {
            throw FileError("simulated crash before renaming", temp, EINTR)
        }
        guard rename(temp, path) == 0 else {
            let code = errno
            unlink(temp)
            throw FileError("renaming \(temp) to", path, code)
        }
        syncDirectory(directory)
        return true
    }

    public func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw FileError("removing", path) }
    }

    /// Temp files a crashed run left behind.
    public func removeStaleTemps(in directory: String) throws {
        for name in try list(directory) ?? [] where name.hasPrefix(".") && name.hasSuffix(".randsnat-tmp") {
            try remove(directory + "/" + name)
        }
    }

    func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    /// The bytes of the binary the installer copies to the node (`executable`).
    public func ownExecutable() throws -> [UInt8] {
        guard let bytes = try read(executable) else { throw FileError("reading", executable, ENOENT) }
        return bytes
    }
}
