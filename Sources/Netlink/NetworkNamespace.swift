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

    /// Moves the calling thread into the namespace at `path` for good. Only for a one-shot command
    /// (`randsnat doctor --netns`) that does all its work there, called before it starts any thread.
    public static func enterForGood(_ path: String) throws(NetlinkError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw NetlinkError(operation: "opening network namespace", object: path, code: errno, reason: String(cString: strerror(errno)))
        }
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
            let fd = open(job.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                job.result = .failure(NetlinkError(operation: "opening network namespace", object: job.path, code: errno,
                                                   reason: String(cString: strerror(errno))))
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
