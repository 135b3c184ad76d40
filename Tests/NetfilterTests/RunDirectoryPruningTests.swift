import Glibc
import Testing
@testable import Netfilter
@testable import RandSNATCore
import SystemCalls

/// Records that cannot be trusted, leftover temp files, and the pruning of networks that are gone
/// (no root needed: the run directory is a temp directory).
struct RunDirectoryPruningTests {
    let directory = RecordFilesTests.temporaryDirectory()
    var files: RecordFiles { RecordFiles(runDirectory: directory) }

    func folder(_ network: String) -> String { directory + "/" + PodRecord.directory(of: NetworkID(network: network)) }
    func recordPath(_ container: String) -> String { folder("net") + "/" + PodRecord.fileName(of: RecordFilesTests.record(container).attachment) }
    func cleanUp() { _ = system("rm -rf \(directory)") }

    @Test func aRecordThatIsALinkIsIgnored() throws {
        defer { cleanUp() }
        try files.write(RecordFilesTests.record("pod9"))
        #expect(symlink(recordPath("pod9"), recordPath("pod8")) == 0)
        let error = #expect(throws: RecordFileError.self) { try files.read(RecordFilesTests.record("pod8").attachment) }
        #expect(error?.description.contains("is a symbolic link") == true)
        #expect(try files.read(RecordFilesTests.record("pod9").attachment) == RecordFilesTests.record("pod9"))
        let listed = try files.records(of: NetworkID(network: "net"))
        #expect(listed.records == [RecordFilesTests.record("pod9")])
        #expect(listed.problems.count == 1)
    }

    @Test func gcRemovesFilesAtTheRecordNamesOfGoneAttachmentsWhateverTheyHold() throws {
        defer { cleanUp() }
        for pod in ["pod7", "pod9"] { try files.write(RecordFilesTests.record(pod)) }
        #expect(symlink(recordPath("pod9"), recordPath("pod8")) == 0)
        #expect(chmod(recordPath("pod7"), 0o666) == 0)
        let valid: Set = [RecordFilesTests.record("pod7").attachment, RecordFilesTests.record("pod9").attachment]
        let removed = try files.removeFiles(of: NetworkID(network: "net"), notNamedFor: valid)
        #expect(removed.count == 1 && removed[0].contains(PodRecord.fileName(of: RecordFilesTests.record("pod8").attachment)))
        #expect(access(recordPath("pod8"), F_OK) != 0 && access(recordPath("pod9"), F_OK) == 0, "the link went, not its target")
        #expect(access(recordPath("pod7"), F_OK) == 0, "a live attachment's file stays, trusted or not")
        #expect(try files.removeFiles(of: NetworkID(network: "net"), notNamedFor: []).count == 2)
        #expect(try Files.names(in: folder("net")) == [])
    }

    @Test func aRecordNamingAnotherAttachmentIsIgnored() throws {
        defer { cleanUp() }
        try files.write(RecordFilesTests.record("pod9"))
        #expect(link(recordPath("pod9"), recordPath("pod8")) == 0)  // a regular file, root's, but pod9's content
        let error = #expect(throws: RecordFileError.self) { try files.read(RecordFilesTests.record("pod8").attachment) }
        #expect(error?.description.contains("it names net/pod9/eth0, not net/pod8/eth0, which it was looked up for") == true)
        let listed = try files.records(of: NetworkID(network: "net"))
        #expect(listed.records == [RecordFilesTests.record("pod9")])
        #expect(listed.problems.first?.contains("whose record is another file") == true)
    }

    @Test func aRecordWritableByOthersIsIgnored() throws {
        defer { cleanUp() }
        try files.write(RecordFilesTests.record("pod8"))
        #expect(chmod(recordPath("pod8"), 0o620) == 0)
        let error = #expect(throws: RecordFileError.self) { try files.read(RecordFilesTests.record("pod8").attachment) }
        #expect(error?.description.contains("writable by group or others (mode 620)") == true)
        #expect(chmod(recordPath("pod8"), 0o600) == 0)
        #expect(try files.read(RecordFilesTests.record("pod8").attachment) == RecordFilesTests.record("pod8"))
    }

    @Test func aRecordThatIsAFIFOIsIgnoredWithoutBlocking() throws {
        defer { cleanUp() }
        try files.write(RecordFilesTests.record("pod9"))
        #expect(mkfifo(recordPath("pod8"), 0o600) == 0)
        #expect(throws: RecordFileError.self) { try files.read(RecordFilesTests.record("pod8").attachment) }
        #expect(try files.networks() == ["net"])
    }

    @Test func tempFilesOfGoneWritersGoAndThoseOfLiveOnesStay() throws {
        defer { cleanUp() }
        try files.write(RecordFilesTests.record("pod8"))
        let attachment = RecordFilesTests.record("pod8").attachment
        let dead = folder("net") + "/" + PodRecord.tempFileName(of: attachment, writer: 1 << 30)  // above any pid_max
        let live = folder("net") + "/" + PodRecord.tempFileName(of: attachment, writer: ThisProcess.id)
        try Files.replace(dead, with: [1], permissions: 0o600, temp: dead + "x", durable: false)
        try Files.replace(live, with: [1], permissions: 0o600, temp: live + "x", durable: false)
        let removed = try files.removeLeftoverTemps(of: NetworkID(network: "net"))
        #expect(removed.count == 1 && removed[0].contains("left by process \(1 << 30), which is gone"))
        #expect(access(dead, F_OK) != 0)
        #expect(access(live, F_OK) == 0)
        #expect(try files.records(of: NetworkID(network: "net")).records.count == 1)
    }

    @Test func aNetworkThatIsGoneLeavesNoDirectoryOrLockFile() throws {
        defer { cleanUp() }
        let lock = NetworkFileLock(directory: directory)
        for network in ["gone", "configured", "withPods"] {
            try lock.withLock(NetworkID(network: network), timeoutSeconds: 1) {
                try Files.makeDirectories(folder(network))
            }
        }
        try files.write(PodRecord(attachment: RandSNATCore.Attachment(network: "withPods", containerID: "c", ifName: "eth0"),
                                  addresses: [], backend: .iptables, generation: "1234567", config: [:]))
        // A leftover temp file alone does not keep a network.
        let temp = folder("gone") + "/" + PodRecord.tempFileName(of: RandSNATCore.Attachment(network: "gone", containerID: "c", ifName: "eth0"), writer: 1 << 30)
        try Files.replace(temp, with: [1], permissions: 0o600, temp: temp + "x", durable: false)
        // A lock file without a directory (a network whose pods were all deleted before a restart).
        try lock.withLock(NetworkID(network: "lockOnly"), timeoutSeconds: 1) {}
        let lines = RunDirectoryPruning(runDirectory: directory).prune(keeping: ["configured"])
        #expect(lines.count == 4, "\(lines)")
        let hash = { (network: String) in NetworkID(network: network).hash }
        let left = Set(try #require(try Files.names(in: directory)))
        #expect(left == ["records", hash("configured") + ".lock", hash("withPods") + ".lock"])
        #expect(Set(try #require(try Files.names(in: directory + "/records"))) == [hash("configured"), hash("withPods")])
        #expect(RunDirectoryPruning(runDirectory: directory).prune(keeping: ["configured"]).isEmpty, "nothing left to prune")
    }

    /// A waiter that opened the lock file before it was pruned does not hold the removed file: it
    /// locks the path anew, so it never runs beside a holder of the new file.
    @Test func aWaiterOnAPrunedLockFileLocksTheNewOne() throws {
        defer { cleanUp() }
        let lock = FileLock(path: directory + "/a.lock")
        final class Flags: @unchecked Sendable { var holding = false }
        let flags = Flags()
        var thread = pthread_t()
        let box = Unmanaged.passRetained(LockHolder(lock: lock, flags: { flags.holding = $0 })).toOpaque()
        pthread_create(&thread, nil, { raw in
            let holder = Unmanaged<LockHolder>.fromOpaque(raw!).takeRetainedValue()
            holder.run()
            return nil
        }, box)
        while !flags.holding { usleep(1000) }
        // The file exists now: this waiter opens it, then waits for the holder, which removes it.
        try lock.withLock(timeoutSeconds: 5) {
            #expect(access(lock.path, F_OK) == 0, "the waiter holds a file that the path names")
        }
        pthread_join(thread, nil)
    }
}

/// Holds a lock for 300 ms, then lets go removing its file (as the pruning does).
final class LockHolder {
    let lock: FileLock
    let flags: (Bool) -> Void
    init(lock: FileLock, flags: @escaping (Bool) -> Void) {
        self.lock = lock
        self.flags = flags
    }
    func run() {
        _ = try? lock.withLock(timeoutSeconds: 1, removingFileWhen: { $0 }) { () -> Bool in
            flags(true)
            usleep(300_000)
            return true
        }
    }
}
