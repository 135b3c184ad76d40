internal import Glibc
import RandSNATCore
import SystemCalls

/// libcni's result cache as files (the layout is `LibcniCache`'s). Others write it: each file is
/// read as `CNICacheFiles.read` reads it (a regular file, without blocking, bounded).
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
        do {
            guard let bytes = try CNICacheFiles.read(directory + "/" + fileName) else { return .failure(.unreadable("gone")) }
            return .success(bytes)
        } catch {
            if case .tooLarge(_, let limit) = error { return .failure(.tooLarge(limit: limit)) }
            return .failure(.unreadable(error.reason))
        }
    }
}
