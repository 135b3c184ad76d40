internal import Glibc
import SystemCalls

/// A thread of randsnat's own (pthread): for work that must not run on the caller's thread (a
/// namespace switch) or that blocks in the kernel while the caller does other work. The one place
/// a closure is handed to pthread_create.
struct SystemThread {
    private let thread: pthread_t

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread.
    /// - Throws: the errno pthread_create returned (EAGAIN: too many threads).
    static func start(_ body: @escaping () -> Void) throws(Errno) -> SystemThread {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        guard started == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            throw Errno(started)
        }
        return SystemThread(thread: thread)
    }

    /// Waits for the thread to end.
    func join() { pthread_join(thread, nil) }

    /// Runs `body` on a new thread and waits for it; returns what it returned or throws what it threw.
    static func run<T>(_ what: String, _ body: @escaping () throws -> T) throws -> T {
        let result = ResultBox<T>()
        do {
            try start { result.value = Result { try body() } }.join()
        } catch {
            throw NetlinkError(operation: "starting a thread for", object: what, errno: error)
        }
        return try result.value!.get()
    }
}

/// The result of a thread's work, read after the join.
private final class ResultBox<T> {
    var value: Result<T, any Error>?
}

/// Work on a second thread while the calling thread does something else: for a netlink request that
/// blocks in the kernel (a veth's teardown waits for RCU grace periods) while randsnat has other
/// work to do.
public enum BackgroundThread {
    /// Runs `background` on a new thread and `foreground` on this one; returns when both are done.
    /// The background's error is thrown first (it is the step the foreground's work follows from);
    /// if the thread cannot start, `background` runs here, before `foreground`.
    public static func run(_ background: @escaping () throws -> Void, while foreground: () throws -> Void) throws {
        let outcome = ResultBox<Void>()
        let thread: SystemThread
        do {
            thread = try SystemThread.start { outcome.value = Result { try background() } }
        } catch {
            try background()
            try foreground()
            return
        }
        var foregroundError: (any Error)?
        do { try foreground() } catch { foregroundError = error }
        thread.join()
        try outcome.value?.get()
        if let error = foregroundError { throw error }
    }
}
