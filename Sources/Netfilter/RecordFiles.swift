import Glibc
import RandSNATCore

/// Pod records as files under the run directory (the layout is `PodRecord`'s).
///
/// A write is a temp file renamed over the record, so a reader (or a process killed mid-write)
/// sees the old record or the new one, never part of one. There is no fsync: the run directory is
/// a tmpfs (/run) that a reboot empties along with the pods, and a rename is atomic against a
/// crashed process without it. Measured on this machine: 15 µs per record on tmpfs with or without
/// fsync; on ext4 a new name costs 0.14 ms, an fsync 8–10 ms more (README, "Records").
public struct RecordFiles: RecordStore {
    let directory: String

    public init(runDirectory: String) { directory = runDirectory }

    func path(_ attachment: Attachment) -> String {
        "\(directory)/\(PodRecord.directory(of: NetworkID(network: attachment.network)))/\(PodRecord.fileName(of: attachment))"
    }

    public func read(_ attachment: Attachment) throws -> PodRecord? {
        let file = path(attachment)
        guard let bytes = try Self.contents(of: file) else { return nil }
        do {
            return try PodRecord.decode(bytes)
        } catch {
            throw RecordFileError(path: file, reason: error.description)
        }
    }

    public func write(_ record: PodRecord) throws {
        let id = NetworkID(network: record.attachment.network)
        for part in ["", "/" + PodRecord.directoryName, "/" + PodRecord.directory(of: id)] {
            if mkdir(directory + part, 0o700) != 0 && errno != EEXIST { throw RecordFileError(path: directory + part, errno: errno, "creating") }
        }
        let file = path(record.attachment)
        let temp = file + ".tmp\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RecordFileError(path: temp, errno: errno, "creating") }
        let bytes = record.encode()
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let code = errno
                close(fd)
                unlink(temp)
                throw RecordFileError(path: temp, errno: code, "writing")
            }
            offset += written
        }
        close(fd)
        guard rename(temp, file) == 0 else {
            let code = errno
            unlink(temp)
            throw RecordFileError(path: file, errno: code, "renaming \(temp) onto it")
        }
    }

    public func remove(_ attachment: Attachment) throws {
        let file = path(attachment)
        if unlink(file) != 0 && errno != ENOENT { throw RecordFileError(path: file, errno: errno, "removing") }
    }

    public func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String]) {
        let folder = directory + "/" + PodRecord.directory(of: id)
        var records: [PodRecord] = []
        var problems: [String] = []
        for name in try Self.names(in: folder) where PodRecord.isRecordName(name) {
            guard let bytes = try Self.contents(of: folder + "/" + name) else { continue }  // removed meanwhile
            do {
                let record = try PodRecord.decode(bytes)
                guard NetworkID(network: record.attachment.network) == id else {
                    problems.append("\(folder)/\(name) names network \"\(record.attachment.network)\", which does not belong in this directory")
                    continue
                }
                records.append(record)
            } catch {
                problems.append("\(folder)/\(name): \(error)")
            }
        }
        return (records, problems)
    }

    public func networks() throws -> [String] {
        var networks: Set<String> = []
        for hash in try Self.names(in: directory + "/" + PodRecord.directoryName) where hash.utf8.count == 11 {
            let folder = directory + "/" + PodRecord.directoryName + "/" + hash
            for name in try Self.names(in: folder) where PodRecord.isRecordName(name) {
                if let bytes = try Self.contents(of: folder + "/" + name), let record = try? PodRecord.decode(bytes) {
                    networks.insert(record.attachment.network)
                    break
                }
            }
        }
        return networks.sorted()
    }

    /// The names in a directory; none when it does not exist.
    static func names(in folder: String) throws -> [String] {
        guard let handle = opendir(folder) else {
            if errno == ENOENT { return [] }
            throw RecordFileError(path: folder, errno: errno, "listing")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// A file's bytes; nil when it does not exist.
    static func contents(of file: String) throws -> [UInt8]? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw RecordFileError(path: file, errno: errno, "reading")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw RecordFileError(path: file, errno: errno, "reading") }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }
}

/// A record file operation that failed: which file, what, why, and what to do.
public struct RecordFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String

    init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    init(path: String, errno code: Int32, _ operation: String) {
        self.init(path: path, reason: "\(operation) failed: \(String(cString: strerror(code))); check that RANDSNAT_RUN_DIR is a writable directory")
    }

    public var description: String { "pod record \(path): \(reason)" }
}

/// `RecordFiles` for a long-running reader (the agent): a network's records are read again only
/// when its directory changed. Every write, rename and removal in the directory changes its mtime;
/// a listing is trusted only when that mtime is older than the listing by more than the
/// filesystem's timestamp granularity (a change in the same tick would not show), as git does with
/// its index ("racy git").
public final class CachedRecordFiles: RecordStore {
    let files: RecordFiles
    private var cache: [String: (modified: timespec, records: [PodRecord], problems: [String])] = [:]

    public init(runDirectory: String) { files = RecordFiles(runDirectory: runDirectory) }

    public func read(_ attachment: Attachment) throws -> PodRecord? { try files.read(attachment) }
    public func write(_ record: PodRecord) throws { try files.write(record) }
    public func remove(_ attachment: Attachment) throws { try files.remove(attachment) }
    public func networks() throws -> [String] { try files.networks() }

    public func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String]) {
        let folder = files.directory + "/" + PodRecord.directory(of: id)
        var info = stat()
        guard stat(folder, &info) == 0 else { return try files.records(of: id) }
        if let cached = cache[id.hash], cached.modified.tv_sec == info.st_mtim.tv_sec, cached.modified.tv_nsec == info.st_mtim.tv_nsec {
            return (cached.records, cached.problems)
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let found = try files.records(of: id)
        let age = Double(now.tv_sec - info.st_mtim.tv_sec) + Double(now.tv_nsec - info.st_mtim.tv_nsec) / 1e9
        if age > 0.1 { cache[id.hash] = (info.st_mtim, found.records, found.problems) } else { cache[id.hash] = nil }
        return found
    }
}
