import Glibc
import Testing
import SystemCalls

/// `Files.regularFile`: what someone else writes is read only when it is a regular file within its
/// limit, without blocking and without reading more than limit + 1 bytes (no root needed).
struct BoundedFilesTests {
    let directory: String

    init() throws {
        var template = Array("/tmp/randsnat-bounded-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        directory = String(cString: try #require(made))
    }

    func cleanUp() {
        for name in (try? Files.names(in: directory)) ?? [] {
            if unlink(directory + "/" + name) != 0 { rmdir(directory + "/" + name) }
        }
        rmdir(directory)
    }

    func write(_ bytes: [UInt8], to name: String, permissions: UInt32 = 0o600) throws {
        try Files.replace(directory + "/" + name, with: bytes, permissions: permissions, temp: directory + "/.tmp", durable: false)
    }

    @Test func aRegularFileWithinItsLimitIsReadWithItsOwnerAndPermissions() throws {
        defer { cleanUp() }
        try write(Array("{}".utf8), to: "a.conf", permissions: 0o644)
        let file = try #require(try Files.regularFile(directory + "/a.conf", limit: 2))
        #expect(file.bytes == Array("{}".utf8))
        #expect(file.owner == ThisProcess.effectiveUserID)
        #expect(file.permissions == 0o644)
        #expect(!file.writableByOthers)
        try write([], to: "empty", permissions: 0o664)
        #expect(try Files.regularFile(directory + "/empty", limit: 0)?.bytes == [])
        #expect(try Files.regularFile(directory + "/empty", limit: 0)?.writableByOthers == true)
        #expect(try Files.regularFile(directory + "/absent", limit: 10) == nil)
    }

    @Test func aFileOverItsLimitIsRefused() throws {
        defer { cleanUp() }
        try write([UInt8](repeating: 0x20, count: 3), to: "big")
        #expect(throws: FileRefusal.tooLarge(path: directory + "/big", limit: 2)) { try Files.regularFile(directory + "/big", limit: 2) }
        #expect(try Files.regularFile(directory + "/big", limit: 3)?.bytes.count == 3)
        let refusal = FileRefusal.tooLarge(path: directory + "/big", limit: 2)
        #expect(refusal.description == "\(directory)/big is larger than 2 bytes; it is not read")
    }

    @Test func aFIFODoesNotBlockAndIsRefused() throws {
        defer { cleanUp() }
        let path = directory + "/05-x.conflist"
        #expect(mkfifo(path, 0o600) == 0)
        // No writer ever opens it: a blocking open would never return.
        let started = ThisProcess.monotonicSeconds()
        #expect(throws: FileRefusal.notRegular(path: path, kind: "a FIFO")) { try Files.regularFile(path, limit: 1 << 20) }
        #expect(ThisProcess.monotonicSeconds() - started < 1)
        #expect(FileRefusal.notRegular(path: path, kind: "a FIFO").description == "\(path) is a FIFO, not a regular file; it is not read")
    }

    @Test func aLinkToDevZeroIsRefusedWithoutReadingIt() throws {
        defer { cleanUp() }
        let path = directory + "/zero.conflist"
        #expect(symlink("/dev/zero", path) == 0)
        let started = ThisProcess.monotonicSeconds()
        #expect(throws: FileRefusal.notRegular(path: path, kind: "a character device")) { try Files.regularFile(path, limit: 1 << 20) }
        #expect(ThisProcess.monotonicSeconds() - started < 1)
    }

    @Test func aDirectoryIsRefused() throws {
        defer { cleanUp() }
        #expect(mkdir(directory + "/d.conf", 0o700) == 0)
        #expect(throws: FileRefusal.notRegular(path: directory + "/d.conf", kind: "a directory")) {
            try Files.regularFile(directory + "/d.conf", limit: 10)
        }
    }

    @Test func aLinkToARegularFileIsFollowedUnlessLinksAreRefused() throws {
        defer {
            unlink(directory + "/..data/a.json")
            rmdir(directory + "/..data")
            cleanUp()
        }
        // A ConfigMap volume: the file is a link into `..data/`.
        #expect(mkdir(directory + "/..data", 0o700) == 0)
        try Files.replace(directory + "/..data/a.json", with: Array("{\"a\":1}".utf8), permissions: 0o644, temp: directory + "/.tmp", durable: false)
        #expect(symlink("..data/a.json", directory + "/a.json") == 0)
        #expect(try Files.regularFile(directory + "/a.json", limit: 100)?.bytes == Array("{\"a\":1}".utf8))
        #expect(throws: FileRefusal.symbolicLink(path: directory + "/a.json")) {
            try Files.regularFile(directory + "/a.json", limit: 100, followingLinks: false)
        }
        // A dangling link is a missing file.
        #expect(symlink("..data/gone.json", directory + "/gone.json") == 0)
        #expect(try Files.regularFile(directory + "/gone.json", limit: 100) == nil)
    }

    @Test func aFileReadAtItsLimitPlusOneByteIsNotReadWhole() throws {
        // /proc files report size 0, so fstat lets them through: the read itself stops at limit + 1.
        #expect(throws: FileRefusal.tooLarge(path: "/proc/self/maps", limit: 8)) { try Files.regularFile("/proc/self/maps", limit: 8) }
        let status = try #require(try Files.regularFile("/proc/self/status", limit: 1 << 20))
        #expect(status.bytes.starts(with: Array("Name:".utf8)))
    }

    @Test func replaceDoesNotWriteThroughALinkAtTheTempName() throws {
        defer { cleanUp() }
        try write(Array("keep".utf8), to: "target")
        #expect(symlink(directory + "/target", directory + "/file.tmp1") == 0)
        #expect(throws: SystemCallError.self) {
            try Files.replace(directory + "/file", with: Array("new".utf8), permissions: 0o600, temp: directory + "/file.tmp1", durable: false)
        }
        #expect(try Files.contents(of: directory + "/target") == Array("keep".utf8))
    }
}
