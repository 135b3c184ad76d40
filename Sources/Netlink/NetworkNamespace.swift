internal import CNetlink
internal import Glibc
public import SystemCalls

/// Entering a network namespace. A namespace belongs to a thread: randsnat enters one only on a
/// thread of its own, made for that purpose and ended right after, so no other thread (and no
/// error path) can ever be left in the pod's namespace.
public enum NetworkNamespace {
    /// True when `path` is the network namespace the calling thread is in: the same device and inode
    /// as `/proc/thread-self/ns/net` (what libcni's skel compares). False for a path that cannot be
    /// read (the caller reports a missing namespace on its own terms).
    public static func isCurrent(_ path: String) throws(NetlinkError) -> Bool {
        var own = stat()
        guard stat("/proc/thread-self/ns/net", &own) == 0 else {
            throw NetlinkError(SystemCallError("reading randsnat's own network namespace", "/proc/thread-self/ns/net"))
        }
        var other = stat()
        guard stat(path, &other) == 0 else { return false }
        return other.st_dev == own.st_dev && other.st_ino == own.st_ino
    }

    /// nsfs's filesystem magic: what a bind-mounted namespace file is (linux/magic.h NSFS_MAGIC).
    static let nsfsMagic = 0x6e73_6673

    /// Opens the network namespace at `path`; the caller closes it. A path that is not a namespace (a
    /// runtime that removes one unmounts it first and deletes the file after, so for a moment it is
    /// an empty plain file) is refused here, naming the path, instead of failing later in a kernel
    /// call with EINVAL.
    public static func open(_ path: String) throws(NetlinkError) -> FileDescriptor {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, operation: "opening network namespace")
        } catch {
            throw NetlinkError(error)
        }
        var fs = statfs()
        guard fstatfs(fd.rawValue, &fs) == 0, fs.f_type == nsfsMagic else {
            fd.close()
            throw NetlinkError(operation: "opening network namespace", object: path, errno: nil,
                               reason: "it is not a namespace (it is being removed, or it is a plain file): the runtime must pass a live network namespace")
        }
        return fd
    }

    /// Moves the calling thread into the namespace at `path` for good. Only for a one-shot command
    /// (`randsnat doctor --netns`) that does all its work there, called before it starts any thread.
    public static func enterForGood(_ path: String) throws(NetlinkError) {
        try enter(path)
    }

    /// setns(2) of the calling thread into the namespace at `path`.
    private static func enter(_ path: String) throws(NetlinkError) {
        let fd = try open(path)
        defer { fd.close() }
        guard setns(fd.rawValue, CLONE_NEWNET) == 0 else {
            throw NetlinkError(SystemCallError("entering network namespace", path))
        }
    }

    /// Runs `body` on a new thread that has entered the network namespace at `path`; an empty path
    /// gives the thread a new, private network namespace (unshare), which goes when the thread ends.
    public static func run<T>(in path: String, _ body: @escaping () throws -> T) throws -> T {
        try SystemThread.run(path.isEmpty ? "a private network namespace" : path) { () throws -> T in
            if path.isEmpty {
                guard unshare(CLONE_NEWNET) == 0 else {
                    throw NetlinkError(SystemCallError("making", "a private network namespace"))
                }
            } else {
                try enter(path)
            }
            return try body()
        }
    }
}
