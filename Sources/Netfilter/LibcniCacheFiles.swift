internal import Glibc
import RandSNATCore
import SystemCalls

/// libcni's result cache as files (the layout is `LibcniCache`'s). Others write it: each file is
/// opened without blocking and without following a link, must be a regular file, and is read up to
/// `LibcniCache.entryLimit` + 1 bytes.
public struct LibcniCacheFiles: LibcniCacheSource {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func version() -> Int64? {
        var info = stat()
        guard stat(directory, &info) == 0 else { return nil }
        // A timestamp is the kernel's coarse clock: a file made in the same tick as the last change
        // leaves the time as it was. A directory changed in the last second is read every time.
        let changed = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        guard ThisProcess.realTimeNanoseconds() - changed > 1_000_000_000 else { return nil }
        return changed
    }

    public func fileNames() throws -> [String]? {
        try Files.names(in: directory)?.filter { !$0.hasPrefix(".") }
    }

    public func read(_ fileName: String) -> Result<[UInt8], CacheEntryError> {
        let path = directory + "/" + fileName
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { return .failure(.unreadable("\(path) cannot be opened: \(Errno.current.message)")) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            return .failure(.unreadable("\(path) is not a regular file"))
        }
        let limit = LibcniCache.entryLimit
        var bytes = [UInt8](repeating: 0, count: min(Int(info.st_size), limit) + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                retryingOnInterrupt { Glibc.read(fd, buffer.baseAddress! + count, buffer.count - count) }
            }
            guard got >= 0 else { return .failure(.unreadable("\(path) cannot be read: \(Errno.current.message)")) }
            if got == 0 { break }
            count += got
        }
        guard count <= limit else { return .failure(.tooLarge(limit: limit)) }
        return .success(Array(bytes[..<count]))
    }
}
