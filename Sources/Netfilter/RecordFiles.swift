import RandSNATCore
import SystemCalls

/// Pod records as files under the run directory (the layout is `PodRecord`'s).
///
/// A write is a temp file renamed over the record, so a reader (or a process killed mid-write)
/// sees the old record or the new one, never part of one. There is no fsync: the run directory is
/// a tmpfs (/run) that a reboot empties along with the pods, and a rename is atomic against a
/// crashed process without it. Measured on this machine: 15 µs per record on tmpfs with or without
/// fsync; on ext4 a new name costs 0.14 ms, an fsync 8–10 ms more (Sources/README.md, "Pod records").
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
        do {
            for part in ["", "/" + PodRecord.directoryName, "/" + PodRecord.directory(of: id)] {
                try Files.makeDirectory(directory + part, permissions: 0o700)
            }
            let file = path(record.attachment)
            try Files.replace(file, with: record.encode(), permissions: 0o600, temp: file + ".tmp\(ThisProcess.id)", durable: false)
        } catch {
            throw RecordFileError(error)
        }
    }

    public func remove(_ attachment: Attachment) throws {
        do { try Files.remove(path(attachment)) } catch { throw RecordFileError(error) }
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
        do { return try Files.names(in: folder) ?? [] } catch { throw RecordFileError(error) }
    }

    /// A file's bytes; nil when it does not exist.
    static func contents(of file: String) throws -> [UInt8]? {
        do { return try Files.contents(of: file, chunk: 4096) } catch { throw RecordFileError(error) }
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

    init(_ failure: SystemCallError) {
        self.init(path: failure.object, reason: "\(failure); check that RANDSNAT_RUN_DIR is a writable directory")
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
    private var cache: [String: (modified: Int64, records: [PodRecord], problems: [String])] = [:]

    public init(runDirectory: String) { files = RecordFiles(runDirectory: runDirectory) }

    public func read(_ attachment: Attachment) throws -> PodRecord? { try files.read(attachment) }
    public func write(_ record: PodRecord) throws { try files.write(record) }
    public func remove(_ attachment: Attachment) throws { try files.remove(attachment) }
    public func networks() throws -> [String] { try files.networks() }

    public func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String]) {
        let folder = files.directory + "/" + PodRecord.directory(of: id)
        guard let modified = Files.modificationTime(of: folder) else { return try files.records(of: id) }
        if let cached = cache[id.hash], cached.modified == modified {
            return (cached.records, cached.problems)
        }
        let now = ThisProcess.realTimeNanoseconds()
        let found = try files.records(of: id)
        let age = Double(now - modified) / 1e9
        if age > 0.1 { cache[id.hash] = (modified, found.records, found.problems) } else { cache[id.hash] = nil }
        return found
    }
}
