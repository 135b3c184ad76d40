import CNetlink
import Glibc
import Testing
@testable import Netlink
@testable import RandSNATCore

/// The rtnetlink layer's bytes, without a kernel, and its thread-bound namespace switch, with one.
struct RouteLinkTests {
    @Test func headersHaveTheKernelLayout() {
        #expect(MemoryLayout<ifinfomsg>.size == 16)
        #expect(MemoryLayout<ifaddrmsg>.size == 8)
        #expect(MemoryLayout<rtmsg>.size == 12)
        #expect(RouteLink.ifinfomsg(index: 7, flags: 1, change: 1) == [0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
        #expect(RouteLink.ifaddrmsg(family: .ipv6, prefix: 64, index: 3) == [UInt8(AF_INET6), 64, 0, 0, 3, 0, 0, 0])
        let route = RouteLink.rtmsg(family: .ipv4, prefix: 0, gateway: true)
        #expect(route.count == 12)
        #expect(route[4] == UInt8(RT_TABLE_MAIN.rawValue) && route[6] == UInt8(RT_SCOPE_UNIVERSE.rawValue) && route[7] == UInt8(RTN_UNICAST))
    }

    @Test func parsesALinkReply() throws {
        var reply = NetlinkRequest(type: UInt16(RTM_NEWLINK), flags: 0, sequence: 5,
                                   header: RouteLink.ifinfomsg(index: 4, flags: UInt32(IFF_UP)))
        reply.addString(UInt16(IFLA_IFNAME), "eth0")
        reply.add(UInt16(IFLA_ADDRESS), [0xde, 0xad, 0, 0, 0xbe, 0xef])
        reply.addU32(UInt16(IFLA_MTU), 1400)
        reply.addU32(UInt16(IFLA_MASTER), 9)
        reply.beginNested(UInt16(IFLA_LINKINFO))
        reply.add(UInt16(IFLA_INFO_KIND), Array("veth".utf8))
        reply.endNested()
        let parsed = try NetlinkReply.parse(reply.finished[...]).first.flatMap(RouteLink.parseLink)
        #expect(parsed == Link(index: 4, name: "eth0", kind: "veth", mac: [0xde, 0xad, 0, 0, 0xbe, 0xef], mtu: 1400,
                               flags: UInt32(IFF_UP), master: 9, peerIndex: nil))
        #expect(parsed?.macText == "de:ad:00:00:be:ef")
        #expect(parsed?.isUp == true)
    }

    @Test(.enabled(if: getuid() == 0, "entering a network namespace needs root"))
    func namespaceSwitchStaysOnItsThread() throws {
        func inode(_ path: String) -> UInt64 {
            var info = stat()
            stat(path, &info)
            return UInt64(info.st_ino)
        }
        let mine = inode("/proc/thread-self/ns/net")
        // Another namespace than this thread's: the body must see it, and this thread must not.
        let other = try #require(Self.newNamespace(), "unshare(CLONE_NEWNET) failed: errno \(errno)")
        defer { close(other.fd) }
        #expect(other.inode != mine)
        let seen = try NetworkNamespace.run(in: "/proc/self/fd/\(other.fd)") { inode("/proc/thread-self/ns/net") }
        #expect(seen == other.inode, "the body ran in namespace \(seen), not in the one it was given (\(other.inode))")
        #expect(inode("/proc/thread-self/ns/net") == mine)
        #expect(throws: NetlinkError.self) { try NetworkNamespace.run(in: "/nonexistent/netns") { 1 } }
        #expect(throws: NetlinkError.self) { try NetworkNamespace.run(in: "/proc/self/status") { 1 } }
    }

    /// A new network namespace, made by `unshare` on a thread of its own that then ends (no test
    /// thread changes namespace, and NetworkNamespace, under test, is not used): an open fd keeps
    /// it alive; its inode names it.
    static func newNamespace() -> (fd: Int32, inode: UInt64)? {
        let box = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        box.initialize(to: -1)
        defer { box.deallocate() }
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let box = raw!.assumingMemoryBound(to: Int32.self)
            // unshare(2) is declared by glibc only under _GNU_SOURCE: taken by name, with its C type.
            typealias Unshare = @convention(c) (Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else { return nil }
            if unsafeBitCast(symbol, to: Unshare.self)(Int32(CLONE_NEWNET)) == 0 { box.pointee = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
            return nil
        }, box)
        guard started == 0 else { return nil }
        pthread_join(thread, nil)
        guard box.pointee >= 0 else { return nil }
        var info = stat()
        guard fstat(box.pointee, &info) == 0 else { close(box.pointee); return nil }
        return (box.pointee, UInt64(info.st_ino))
    }
}
