internal import Glibc

// Files that someone else writes (net.d, the settings file, pod records, libcni's cache) may be
// anything: a FIFO that blocks `open` until a writer comes, a link to /dev/zero that never ends, a
// device whose mere opening acts (opening /dev/watchdog arms the node's watchdog), a file of
// gigabytes. Every such read goes through `Files.regularFile(_:limit:followingLinks:)`:
//   1. stat (or lstat) the path, and refuse what is not a regular file before opening it;
//   2. open with O_NONBLOCK (a FIFO swapped in meanwhile does not block), O_NOCTTY, and O_NOFOLLOW
//      where a link is refused;
//   3. fstat the descriptor: it must still be a regular file (the name may have been swapped
//      between 1 and 2), and not larger than the limit;
//   4. read at most limit + 1 bytes (st_size is not proof: a file may grow, procfs says 0), and
//      refuse the file when the last byte came.

/// A file randsnat did not read: which file and why, as a sentence.
public enum FileRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a regular file (after following links, when they are followed); `kind` names what it is.
    case notRegular(path: String, kind: String)
    /// A symbolic link where none is followed.
    case symbolicLink(path: String)
    /// More than `limit` bytes.
    case tooLarge(path: String, limit: Int)
    /// A system call failed.
    case failed(SystemCallError)

    public var path: String {
        switch self {
        case .notRegular(let path, _), .symbolicLink(let path), .tooLarge(let path, _): path
        case .failed(let failure): failure.object
        }
    }

    /// Why, without the path: "a FIFO, not a regular file".
    public var reason: String {
        switch self {
        case .notRegular(_, let kind): "\(kind), not a regular file"
        case .symbolicLink: "a symbolic link, which is not followed here"
        case .tooLarge(_, let limit): "larger than \(limit) bytes"
        case .failed(let failure): "unreadable: \(failure.errno)"
        }
    }

    public var description: String {
        if case .failed(let failure) = self { return failure.description }
        return "\(path) is \(reason); it is not read"
    }
}

/// A regular file's bytes and who may change it.
public struct RegularFile: Equatable, Sendable {
    public let bytes: [UInt8]
    /// The owner's user id.
    public let owner: UInt32
    /// The permission bits (`st_mode & 0o7777`).
    public let permissions: UInt32

    /// True when a user other than the owner may write it (group- or world-writable).
    public var writableByOthers: Bool { permissions & 0o022 != 0 }
}

extension Files {
    /// Reads a file someone else writes, bounded: a regular file of at most `limit` bytes, opened
    /// without blocking. nil when it does not exist.
    /// - Parameter followingLinks: false refuses a symbolic link (O_NOFOLLOW) instead of reading
    ///   what it points to; true follows links (ConfigMap volumes are links into `..data/`).
    public static func regularFile(_ path: String, limit: Int, followingLinks: Bool = true) throws(FileRefusal) -> RegularFile? {
        var info = stat()
        let found = followingLinks ? stat(path, &info) : lstat(path, &info)
        if found != 0 {
            if errno == ENOENT { return nil }
            throw .failed(SystemCallError("reading", path))
        }
        try refuseUnlessRegular(path, mode: info.st_mode)
        let flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (followingLinks ? 0 : O_NOFOLLOW)
        let fd = retryingOnInterrupt { open(path, flags) }
        guard fd >= 0 else {
            if errno == ENOENT { return nil }  // removed meanwhile
            if errno == ELOOP && !followingLinks { throw .symbolicLink(path: path) }  // swapped for a link meanwhile
            throw .failed(SystemCallError("opening", path))
        }
        defer { close(fd) }
        guard fstat(fd, &info) == 0 else { throw .failed(SystemCallError("reading the status of", path)) }
        try refuseUnlessRegular(path, mode: info.st_mode)
        guard info.st_size <= limit else { throw .tooLarge(path: path, limit: limit) }
        // Sized for what fstat says plus the one byte that tells a file that grew meanwhile; grown
        // (never past limit + 1) while the file goes on.
        var bytes = [UInt8](repeating: 0, count: min(limit, Int(info.st_size)) + 1)
        var filled = 0
        while filled <= limit {
            if filled == bytes.count { bytes += [UInt8](repeating: 0, count: min(limit + 1, bytes.count * 2) - bytes.count) }
            let got = bytes.withUnsafeMutableBytes { buffer in
                retryingOnInterrupt { read(fd, buffer.baseAddress! + filled, buffer.count - filled) }
            }
            guard got >= 0 else { throw .failed(SystemCallError("reading", path)) }
            if got == 0 { break }
            filled += got
        }
        guard filled <= limit else { throw .tooLarge(path: path, limit: limit) }
        return RegularFile(bytes: Array(bytes[..<filled]), owner: UInt32(info.st_uid), permissions: UInt32(info.st_mode & 0o7777))
    }

    private static func refuseUnlessRegular(_ path: String, mode: mode_t) throws(FileRefusal) {
        switch mode & S_IFMT {
        case S_IFREG: return
        case S_IFLNK: throw .symbolicLink(path: path)
        case S_IFIFO: throw .notRegular(path: path, kind: "a FIFO")
        case S_IFCHR: throw .notRegular(path: path, kind: "a character device")
        case S_IFBLK: throw .notRegular(path: path, kind: "a block device")
        case S_IFDIR: throw .notRegular(path: path, kind: "a directory")
        case S_IFSOCK: throw .notRegular(path: path, kind: "a socket")
        default: throw .notRegular(path: path, kind: "of an unknown type")
        }
    }
}
