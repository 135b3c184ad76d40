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

    /// The attachment's record; an error when the file is there but cannot be trusted (DEL then
    /// falls back to the owner comments).
    public func read(_ attachment: Attachment) throws -> PodRecord? {
        let file = path(attachment)
        guard let record = try Self.load(file) else { return nil }
        guard record.attachment == attachment else {
            throw RecordFileError(path: file, reason: "it names \(record.attachment), not \(attachment), which it was looked up for; it is ignored")
        }
        return record
    }

    public func write(_ record: PodRecord) throws {
        let id = NetworkID(network: record.attachment.network)
        do {
            for part in ["", "/" + PodRecord.directoryName, "/" + PodRecord.directory(of: id)] {
                try Files.makeDirectory(directory + part, permissions: 0o700)
            }
            let file = path(record.attachment)
            let temp = "\(directory)/\(PodRecord.directory(of: id))/\(PodRecord.tempFileName(of: record.attachment, writer: ThisProcess.id))"
            try Files.replace(file, with: record.encode(), permissions: 0o600, temp: temp, durable: false)
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
            do {
                guard let record = try Self.load(folder + "/" + name) else { continue }  // removed meanwhile
                guard NetworkID(network: record.attachment.network) == id else {
                    problems.append("\(folder)/\(name) names network \"\(record.attachment.network)\", which does not belong in this directory; it is ignored")
                    continue
                }
                guard PodRecord.fileName(of: record.attachment) == name else {
                    problems.append("\(folder)/\(name) names \(record.attachment), whose record is another file; it is ignored")
                    continue
                }
                records.append(record)
            } catch {
                problems.append("\(error)")
            }
        }
        return (records, problems)
    }

    public func networks() throws -> [String] {
        var networks: Set<String> = []
        for hash in try Self.names(in: directory + "/" + PodRecord.directoryName) where hash.utf8.count == 11 {
            let folder = directory + "/" + PodRecord.directoryName + "/" + hash
            for name in try Self.names(in: folder) where PodRecord.isRecordName(name) {
                // A file that cannot be trusted names no network (`records(of:)` reports it).
                if let record = try? Self.load(folder + "/" + name), NetworkID(network: record.attachment.network).hash == hash,
                   PodRecord.fileName(of: record.attachment) == name {
                    networks.insert(record.attachment.network)
                    break
                }
            }
        }
        return networks.sorted()
    }

    /// Removes the temp files of writers that are gone. Called under the network lock, when no
    /// randsnat process writes a record of the network: a temp file then is a dead writer's (a
    /// writer killed between create and rename). The writer's pid is checked as well, for a writer
    /// that took no lock; a pid in another pid namespace (the agent's container) looks gone, and
    /// the lock is what keeps that case safe.
    public func removeLeftoverTemps(of id: NetworkID) throws -> [String] {
        try removeLeftoverTemps(inFolder: directory + "/" + PodRecord.directory(of: id))
    }

    func removeLeftoverTemps(inFolder folder: String) throws -> [String] {
        var removed: [String] = []
        for name in try Self.names(in: folder) {
            guard let writer = PodRecord.writer(ofTemp: name), !ThisProcess.exists(writer) else { continue }
            do { try Files.remove(folder + "/" + name) } catch { throw RecordFileError(error) }
            removed.append("removed \(folder)/\(name), a pod record's temp file left by process \(writer), which is gone")
        }
        return removed
    }

    public func removeFiles(of id: NetworkID, notNamedFor valid: Set<Attachment>) throws -> [String] {
        let folder = directory + "/" + PodRecord.directory(of: id)
        let kept = Set(valid.filter { $0.network.utf8Equals(id.network) }.map(PodRecord.fileName(of:)))
        var removed: [String] = []
        for name in try Self.names(in: folder) where PodRecord.isRecordName(name) && !kept.contains(name) {
            do { try Files.remove(folder + "/" + name) } catch { throw RecordFileError(error) }  // a link goes, not what it points to
            removed.append("removed \(folder)/\(name), which is no record of a live attachment and cannot be trusted as one")
        }
        return removed
    }

    /// The names in a directory; none when it does not exist.
    static func names(in folder: String) throws -> [String] {
        do { return try Files.names(in: folder) ?? [] } catch { throw RecordFileError(error) }
    }

    /// The record in `file`; nil when it does not exist. A record is trusted only as randsnat writes
    /// it: a regular file (not a link: O_NOFOLLOW), owned by randsnat's own user (root on a node),
    /// writable by no one else, within `PodRecord.maxBytes`. Anything else would let whoever placed
    /// it steer DEL to another pod's members.
    static func load(_ file: String) throws(RecordFileError) -> PodRecord? {
        let found: RegularFile?
        do {
            found = try Files.regularFile(file, limit: PodRecord.maxBytes, followingLinks: false)
        } catch {
            if case .failed(let failure) = error { throw RecordFileError(failure) }
            throw RecordFileError(path: file, reason: "it is \(error.reason), so not a record randsnat wrote; it is ignored")
        }
        guard let found else { return nil }
        guard found.owner == ThisProcess.effectiveUserID else {
            throw RecordFileError(path: file, reason: "it is owned by user \(found.owner), not by randsnat's user \(ThisProcess.effectiveUserID); it is ignored")
        }
        guard !found.writableByOthers else {
            throw RecordFileError(path: file, reason: "it is writable by group or others (mode \(String(found.permissions, radix: 8))); it is ignored")
        }
        do {
            return try PodRecord.decode(found.bytes)
        } catch {
            throw RecordFileError(path: file, reason: error.description)
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
    public func removeLeftoverTemps(of id: NetworkID) throws -> [String] { try files.removeLeftoverTemps(of: id) }
    public func removeFiles(of id: NetworkID, notNamedFor valid: Set<Attachment>) throws -> [String] {
        try files.removeFiles(of: id, notNamedFor: valid)
    }

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
