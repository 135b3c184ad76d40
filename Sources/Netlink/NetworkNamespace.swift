import CNetlink
import Glibc

/// Entering a network namespace. A namespace belongs to a thread: randsnat enters one only on a
/// thread of its own, made for that purpose and ended right after, so no other thread (and no
/// error path) can ever be left in the pod's namespace.
public enum NetworkNamespace {
    private final class Job {
        let path: String
        let body: () throws -> Any
        var result: Result<Any, any Error> = .failure(NetlinkError(operation: "entering", object: "", code: 0, reason: "not run"))
        init(path: String, body: @escaping () throws -> Any) {
            self.path = path
            self.body = body
        }
    }

    /// True when `path` is the network namespace the calling thread is in: the same device and inode
    /// as `/proc/thread-self/ns/net` (what libcni's skel compares). False for a path that cannot be
    /// read (the caller reports a missing namespace on its own terms).
    public static func isCurrent(_ path: String) throws(NetlinkError) -> Bool {
        var own = stat()
        guard stat("/proc/thread-self/ns/net", &own) == 0 else {
            throw NetlinkError(operation: "reading randsnat's own network namespace", object: "/proc/thread-self/ns/net",
                               code: errno, reason: String(cString: strerror(errno)))
        }
        var other = stat()
        guard stat(path, &other) == 0 else { return false }
        return other.st_dev == own.st_dev && other.st_ino == own.st_ino
    }

    /// nsfs's filesystem magic: what a bind-mounted namespace file is (linux/magic.h NSFS_MAGIC).
    static let nsfsMagic = 0x6e73_6673

    /// Opens the network namespace at `path`. A path that is not a namespace (a runtime that removes
    /// one unmounts it first and deletes the file after, so for a moment it is an empty plain file)
    /// is refused here, naming the path, instead of failing later in a kernel call with EINVAL.
    public static func open(_ path: String) throws(NetlinkError) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw NetlinkError(operation: "opening network namespace", object: path, code: errno, reason: String(cString: strerror(errno)))
        }
        var fs = statfs()
        guard fstatfs(fd, &fs) == 0, fs.f_type == nsfsMagic else {
            close(fd)
            throw NetlinkError(operation: "opening network namespace", object: path, code: 0,
                               reason: "it is not a namespace (it is being removed, or it is a plain file): the runtime must pass a live network namespace")
        }
        return fd
    }

    /// Moves the calling thread into the namespace at `path` for good. Only for a one-shot command
    /// (`randsnat doctor --netns`) that does all its work there, called before it starts any thread.
    public static func enterForGood(_ path: String) throws(NetlinkError) {
        let fd = try open(path)
        defer { close(fd) }
        guard setns(fd, CLONE_NEWNET) == 0 else {
            throw NetlinkError(operation: "entering network namespace", object: path, code: errno, reason: String(cString: strerror(errno)))
        }
    }

    /// Runs `body` on a new thread that has entered the network namespace at `path`; an empty path
    /// gives the thread a new, private network namespace (unshare), which goes when the thread ends.
    public static func run<T>(in path: String, _ body: @escaping () throws -> T) throws -> T {
        let job = Job(path: path, body: { try body() })
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let started = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            if job.path.isEmpty {
                guard unshare(CLONE_NEWNET) == 0 else {
                    job.result = .failure(NetlinkError(operation: "making", object: "a private network namespace", code: errno,
                                                       reason: String(cString: strerror(errno))))
                    return nil
                }
                job.result = Result { try job.body() }
                return nil
            }
            let fd: Int32
            do { fd = try NetworkNamespace.open(job.path) } catch {
                job.result = .failure(error)
                return nil
            }
            defer { close(fd) }
            guard setns(fd, CLONE_NEWNET) == 0 else {
                job.result = .failure(NetlinkError(operation: "entering network namespace", object: job.path, code: errno,
                                                   reason: String(cString: strerror(errno))))
                return nil
            }
            job.result = Result { try job.body() }
            return nil
        }, context)
        guard started == 0 else {
            Unmanaged<Job>.fromOpaque(context).release()
            throw NetlinkError(operation: "starting a thread for", object: path, code: started, reason: String(cString: strerror(started)))
        }
        pthread_join(thread, nil)
        return try job.result.get() as! T
    }
}
