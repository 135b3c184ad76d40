import RandSNATCore
import SystemCalls

/// What the agent removes from the run directory: the temp files of record writers that are gone,
/// and, for a network that no longer exists (no record, no config in net.d), its empty record
/// directory and its lock file.
///
///     $RANDSNAT_RUN_DIR/<network hash>.lock                  NetworkFileLock
///     $RANDSNAT_RUN_DIR/records/<network hash>/              RecordFiles
///                       <record>.json  <record>.json.tmp<pid>
///
/// Everything is removed under the network's lock, the lock every ADD, DEL and GC of the network
/// holds while it writes records. So no writer is between creating a temp file and renaming it,
/// and no ADD is between making the record directory and writing its record: a temp file found
/// then is a dead writer's, and an empty directory is one no ADD is about to fill (`rmdir` fails on
/// a directory that holds anything, so a record written before the lock was taken keeps it). The
/// lock file goes last, while still held; an ADD that opened it meanwhile gets its flock once the
/// agent let go, sees that the path no longer names its file, and locks a new one
/// (`FileLock.withLock`), after which it makes the directory again. A network whose lock is busy is
/// left for the next pass.
public struct RunDirectoryPruning {
    let runDirectory: String
    let records: RecordFiles
    let lock: NetworkFileLock
    /// How long to wait for a network's lock: a busy network is a live one, pruned later if at all.
    let lockWaitSeconds = 0.05

    public init(runDirectory: String) {
        self.runDirectory = runDirectory
        records = RecordFiles(runDirectory: runDirectory)
        lock = NetworkFileLock(directory: runDirectory)
    }

    /// Prunes the run directory; one sentence per removal or failure.
    /// - Parameter configured: the networks net.d configures with randsnat (kept without pods).
    public func prune(keeping configured: Set<String>) -> [String] {
        let kept = Set(configured.map { NetworkID(network: $0).hash })
        let recordsFolder = runDirectory + "/" + PodRecord.directoryName
        let folders = ((try? Files.names(in: recordsFolder)) ?? []).filter(Self.isNetworkHash)
        let locks = ((try? Files.names(in: runDirectory)) ?? []).compactMap { name -> String? in
            guard name.hasSuffix(NetworkFileLock.suffix) else { return nil }
            let hash = String(name.dropLast(NetworkFileLock.suffix.count))
            return Self.isNetworkHash(hash) ? hash : nil
        }
        var lines: [String] = []
        for hash in Set(folders).union(locks).sorted() {
            let folder = recordsFolder + "/" + hash
            let names = (try? Files.names(in: folder)) ?? []
            let leftovers = names.contains { PodRecord.writer(ofTemp: $0).map { !ThisProcess.exists($0) } ?? false }
            let gone = !kept.contains(hash) && names.allSatisfy { PodRecord.writer(ofTemp: $0) != nil }
            // Only a network with something to remove is locked: an idle pass takes no lock.
            guard leftovers || gone else { continue }
            do {
                try lock.file(hash: hash).withLock(timeoutSeconds: lockWaitSeconds, removingFileWhen: { $0 }) { () throws -> Bool in
                    lines += try records.removeLeftoverTemps(inFolder: folder)
                    guard gone, try Files.removeEmptyDirectory(folder) else { return false }
                    if folders.contains(hash) { lines.append("removed \(folder), the empty record directory of a network that is gone") }
                    if locks.contains(hash) { lines.append("removed \(runDirectory)/\(hash)\(NetworkFileLock.suffix), the lock file of a network that is gone") }
                    return true
                }
            } catch NetfilterError.lockTimeout {
                continue
            } catch {
                lines.append("cannot prune \(folder): \(error)")
            }
        }
        return lines
    }

    /// True for the 11 hex digits of `NetworkID.hash`.
    static func isNetworkHash(_ name: String) -> Bool {
        name.utf8.count == 11 && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}
