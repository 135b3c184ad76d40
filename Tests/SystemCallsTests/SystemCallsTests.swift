import Glibc
import Testing
import SystemCalls

/// The system-call layer on a private temp directory (no root needed).
struct SystemCallsTests {
    let directory: String

    init() throws {
        var template = Array("/tmp/randsnat-syscalls-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: try #require(made))
    }

    func cleanUp() {
        for name in (try? Files.names(in: directory)) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    @Test func errnoSaysItsNameAndMessage() {
        #expect(Errno(ENOENT).name == "ENOENT")
        #expect(Errno(ENOENT).description == "No such file or directory (ENOENT)")
        #expect(Errno(ENOBUFS).name == "ENOBUFS")
        #expect(Errno(4242).name == "errno 4242")
    }

    @Test func aMissingFileIsNilAndAnErrorNamesThePathAndTheErrno() throws {
        defer { cleanUp() }
        #expect(try Files.contents(of: directory + "/absent") == nil)
        #expect(try Files.names(in: directory + "/absent") == nil)
        do {
            _ = try Files.contents(of: directory)  // a directory: reading it fails with EISDIR
            Issue.record("reading a directory should fail")
        } catch {
            #expect(error.errno == Errno(EISDIR))
            #expect(error.description == "reading \(directory): Is a directory (EISDIR)")
        }
        do {
            _ = try Files.text(of: directory + "/absent")
            Issue.record("text of a missing file should fail")
        } catch {
            #expect(error.errno == .notFound)
        }
    }

    @Test func replaceWritesEveryByteWithItsPermissionsAndLeavesNoTemp() throws {
        defer { cleanUp() }
        let path = directory + "/file"
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }  // more than one chunk
        let mask = umask(0o022)
        defer { umask(mask) }
        try Files.replace(path, with: big, permissions: 0o666, temp: path + ".tmp", durable: true)  // not cut by the umask
        #expect(try Files.contents(of: path) == big)
        #expect(Files.permissions(of: path) == 0o666)
        try Files.replace(path, with: Array("small".utf8), permissions: 0o600, temp: path + ".tmp", durable: false)
        #expect(try Files.contents(of: path) == Array("small".utf8))
        #expect(Files.permissions(of: path) == 0o600)
        #expect(try Files.names(in: directory) == ["file"])
    }

    @Test func aFailureBeforeTheRenameKeepsTheOldFileAndTheTempAsACrashWould() throws {
        defer { cleanUp() }
        let path = directory + "/file"
        try Files.replace(path, with: [1, 2, 3], permissions: 0o600, temp: path + ".tmp", durable: false)
        #expect(throws: SystemCallError.self) {
            try Files.replace(path, with: [4, 5], permissions: 0o600, temp: path + ".tmp", durable: false) { () throws(SystemCallError) in
                throw SystemCallError("simulated crash before renaming", path + ".tmp", .interrupted)
            }
        }
        #expect(try Files.contents(of: path) == [1, 2, 3])
        #expect(try Files.contents(of: path + ".tmp") == [4, 5])
    }

    @Test func aTempInAMissingDirectorySaysWhichFileAndWhy() throws {
        defer { cleanUp() }
        do {
            try Files.replace(directory + "/file", with: [1], permissions: 0o600, temp: directory + "/no/such/tmp", durable: false)
            Issue.record("should fail")
        } catch {
            #expect(error.description == "creating \(directory)/no/such/tmp: No such file or directory (ENOENT)")
        }
        #expect(try Files.contents(of: directory + "/file") == nil)
    }

    @Test func directoriesAndRemovalAreIdempotent() throws {
        defer {
            rmdir(directory + "/a/b")
            rmdir(directory + "/a")
            cleanUp()
        }
        try Files.makeDirectories(directory + "/a/b")
        try Files.makeDirectories(directory + "/a/b")
        #expect(try Files.names(in: directory + "/a") == ["b"])
        try Files.remove(directory + "/nothing")
        #expect(Files.modificationTime(of: directory + "/a") != nil)
        #expect(Files.modificationTime(of: directory + "/nothing") == nil)
    }

    @Test func readingAPipeToTheEndRetriesShortReads() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let writer = ends[1]
        let bytes = (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        let thread = Thread { bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(writer, raw.baseAddress! + offset, min(1000, raw.count - offset))
                if n <= 0 { break }
                offset += n
                usleep(200)  // the reader sees short reads
            }
            close(writer)
        } }
        let reader = try FileDescriptor.open("/proc/self/fd/\(ends[0])")
        close(ends[0])
        defer { reader.close() }
        #expect(try reader.readToEnd(chunk: 4096) == bytes)
        thread.join()
    }

    /// A bounded read stops after limit + 1 bytes of an endless source.
    @Test func aBoundedReadStopsAfterTheLimit() throws {
        let zero = try FileDescriptor.open("/dev/zero")
        defer { zero.close() }
        #expect(try zero.readToEnd(limit: 10_000, chunk: 4096).count == 10_001)
        let small = try FileDescriptor.open("/proc/self/comm")
        defer { small.close() }
        #expect(try small.readToEnd(limit: 1 << 20).count < 100)
    }
}

/// A plain pthread for the pipe test (no Foundation).
final class Thread {
    private var handle = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&handle, nil, { raw in
            let thread = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
            thread.body()
            return nil
        }, box)
    }

    func join() { pthread_join(handle, nil) }
}
