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

    @Test func parsesALinkReply() {
        var reply = NetlinkRequest(type: UInt16(RTM_NEWLINK), flags: 0, sequence: 5,
                                   header: RouteLink.ifinfomsg(index: 4, flags: UInt32(IFF_UP)))
        reply.addString(UInt16(IFLA_IFNAME), "eth0")
        reply.add(UInt16(IFLA_ADDRESS), [0xde, 0xad, 0, 0, 0xbe, 0xef])
        reply.addU32(UInt16(IFLA_MTU), 1400)
        reply.addU32(UInt16(IFLA_MASTER), 9)
        reply.beginNested(UInt16(IFLA_LINKINFO))
        reply.add(UInt16(IFLA_INFO_KIND), Array("veth".utf8))
        reply.endNested()
        let parsed = NetlinkReply.parse(reply.finished[...]).first.flatMap(RouteLink.parseLink)
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
        let seen = try NetworkNamespace.run(in: "/proc/self/ns/net") { inode("/proc/thread-self/ns/net") }
        #expect(seen == mine)
        #expect(inode("/proc/thread-self/ns/net") == mine)
        #expect(throws: NetlinkError.self) { try NetworkNamespace.run(in: "/nonexistent/netns") { 1 } }
        #expect(throws: NetlinkError.self) { try NetworkNamespace.run(in: "/proc/self/status") { 1 } }
    }
}
