import Glibc

/// Work on a second thread while the calling thread does something else: for a netlink request that
/// blocks in the kernel (a veth's teardown waits for RCU grace periods) while randsnat has other
/// work to do.
public enum BackgroundThread {
    private final class Job {
        let body: () throws -> Void
        var error: (any Error)?
        init(_ body: @escaping () throws -> Void) { self.body = body }
    }

    /// Runs `background` on a new thread and `foreground` on this one; returns when both are done.
    /// The background's error is thrown first (it is the step the foreground's work follows from);
    /// if the thread cannot start, `background` runs here, before `foreground`.
    public static func run(_ background: @escaping () throws -> Void, while foreground: () throws -> Void) throws {
        let job = Job(background)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let started = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            do { try job.body() } catch { job.error = error }
            return nil
        }, context)
        guard started == 0 else {
            Unmanaged<Job>.fromOpaque(context).release()
            try background()
            try foreground()
            return
        }
        var foregroundError: (any Error)?
        do { try foreground() } catch { foregroundError = error }
        pthread_join(thread, nil)
        if let error = job.error { throw error }
        if let error = foregroundError { throw error }
    }
}
