import Glibc
import Testing
@testable import Netlink

/// `NetworkNamespace.isCurrent`, against a namespace of the test's own (root only).
struct NetworkNamespaceTests {
    /// unshare(2), which glibc declares only under _GNU_SOURCE (see CNetlink's shim.h); CLONE_NEWNET.
    typealias Unshare = @convention(c) (Int32) -> Int32
    static let cloneNewNet: Int32 = 0x4000_0000

    /// A new network namespace, made by a thread that leaves it at once; the descriptor keeps it.
    static func newNamespace() -> Int32 {
        final class Box { var fd: Int32 = -1 }
        let box = Box()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(box).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            let unshare = unsafeBitCast(dlsym(nil, "unshare"), to: Unshare.self)
            if unshare(NetworkNamespaceTests.cloneNewNet) == 0 { box.fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
            return nil
        }, context)
        pthread_join(thread, nil)
        return box.fd
    }

    @Test(.enabled(if: getuid() == 0, "making a network namespace needs root"))
    func tellsItsOwnNamespaceFromAnother() throws {
        let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let other = Self.newNamespace()
        defer { close(own); close(other) }
        try #require(own >= 0 && other >= 0)
        let ownPath = "/proc/self/fd/\(own)", otherPath = "/proc/self/fd/\(other)"
        #expect(try NetworkNamespace.isCurrent(ownPath))
        #expect(try !NetworkNamespace.isCurrent(otherPath))
        // From inside the other namespace, the answers swap.
        let inside = try NetworkNamespace.run(in: otherPath) {
            (try NetworkNamespace.isCurrent(ownPath), try NetworkNamespace.isCurrent(otherPath))
        }
        #expect(inside == (false, true))
        #expect(try !NetworkNamespace.isCurrent("/nonexistent/netns"))
        #expect(try !NetworkNamespace.isCurrent("/proc/self/status"))
    }

    /// A namespace path that is a plain file (a namespace being removed: unmounted, not yet deleted)
    /// is refused when opened, naming the path; a live namespace opens.
    @Test func openRefusesAPlainFileNamingIt() throws {
        var template = Array("/tmp/randsnat-netns-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        #expect(fd >= 0)
        close(fd)
        let path = String(cString: template)
        defer { unlink(path) }
        let error = #expect(throws: NetlinkError.self) { _ = try NetworkNamespace.open(path) }
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("not a namespace") == true)
        let live = try NetworkNamespace.open("/proc/self/ns/net")
        #expect(live.rawValue >= 0)
        live.close()
    }
}
