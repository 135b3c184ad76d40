internal import CNetlink
internal import Glibc
import SystemCalls
import RandSNATCore

// rtnetlink's attribute numbers, from the C headers once (rtnetlink(7), linux/if_link.h, if_addr.h).

/// `IFLA_*`: a link's attributes (after `struct ifinfomsg`).
struct LinkAttribute: NetlinkAttributeName {
    let type: UInt16
    static let name = LinkAttribute(type: cValue(IFLA_IFNAME))
    static let mtu = LinkAttribute(type: cValue(IFLA_MTU))
    static let address = LinkAttribute(type: cValue(IFLA_ADDRESS))
    static let master = LinkAttribute(type: cValue(IFLA_MASTER))
    static let link = LinkAttribute(type: cValue(IFLA_LINK))
    static let info = LinkAttribute(type: cValue(IFLA_LINKINFO))
    static let protocolInfo = LinkAttribute(type: cValue(IFLA_PROTINFO))
    static let namespaceDescriptor = LinkAttribute(type: cValue(IFLA_NET_NS_FD))
    /// Inside `info`: `IFLA_INFO_KIND`, `IFLA_INFO_DATA`.
    static let infoKind = LinkAttribute(type: cValue(IFLA_INFO_KIND))
    static let infoData = LinkAttribute(type: cValue(IFLA_INFO_DATA))
    /// Inside a veth's `infoData`: `VETH_INFO_PEER`.
    static let vethPeer = LinkAttribute(type: cValue(VETH_INFO_PEER))
    /// Inside AF_BRIDGE's `protocolInfo`: `IFLA_BRPORT_MODE` (hairpin).
    static let bridgePortMode = LinkAttribute(type: cValue(IFLA_BRPORT_MODE))
}

/// `IFA_*`: an address's attributes (after `struct ifaddrmsg`).
struct AddressAttribute: NetlinkAttributeName {
    let type: UInt16
    static let local = AddressAttribute(type: cValue(IFA_LOCAL))
    static let address = AddressAttribute(type: cValue(IFA_ADDRESS))
    static let flags = AddressAttribute(type: cValue(IFA_FLAGS))
}

/// `RTA_*`: a route's attributes (after `struct rtmsg`).
struct RouteAttribute: NetlinkAttributeName {
    let type: UInt16
    static let destination = RouteAttribute(type: cValue(RTA_DST))
    static let gateway = RouteAttribute(type: cValue(RTA_GATEWAY))
    static let outputInterface = RouteAttribute(type: cValue(RTA_OIF))
}

/// A link as rtnetlink reports it.
public struct Link: Equatable, Sendable {
    public let index: Int32
    public let name: String
    /// `IFLA_INFO_KIND`: "bridge", "veth", ...; nil for a physical device.
    public let kind: String?
    public let mac: [UInt8]
    public let mtu: UInt32
    public let flags: UInt32
    /// The bridge a port belongs to (`IFLA_MASTER`).
    public let master: Int32?
    /// For a veth: the peer's index in the peer's namespace (`IFLA_LINK`).
    public let peerIndex: Int32?

    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
    public var macText: String { mac.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: ":") }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Links, addresses and routes through rtnetlink (NETLINK_ROUTE), on the network namespace the
/// socket was made in. Every rtnetlink message layout is in this file.
public final class RouteLink {
    let socket: NetlinkSocket

    public init(socket: NetlinkSocket) { self.socket = socket }

    /// A RouteLink on this thread's current network namespace.
    public static func current() throws(NetlinkError) -> RouteLink {
        RouteLink(socket: try NetlinkSocket(.route))
    }

    /// A RouteLink on the network namespace at `path`; the socket is made on a thread that entered it.
    public static func inNamespace(_ path: String) throws -> RouteLink {
        RouteLink(socket: try NetworkNamespace.run(in: path) { try NetlinkSocket(.route) })
    }

    // MARK: message headers

    /// `struct ifinfomsg`: family, pad, type, index, flags, change.
    static func ifinfomsg(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0, family: UInt8 = UInt8(AF_UNSPEC)) -> [UInt8] {
        [family, 0, 0, 0] + le(UInt32(bitPattern: index)) + le(flags) + le(change)
    }

    /// `struct ifaddrmsg`: family, prefix length, flags, scope, index.
    static func ifaddrmsg(family: Family, prefix: Int, index: Int32) -> [UInt8] {
        [UInt8(family == .ipv4 ? AF_INET : AF_INET6), UInt8(prefix), 0, 0] + le(UInt32(bitPattern: index))
    }

    /// `struct rtmsg`: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    static func rtmsg(family: Family, prefix: Int, gateway: Bool) -> [UInt8] {
        [UInt8(family == .ipv4 ? AF_INET : AF_INET6), UInt8(prefix), 0, 0, UInt8(RT_TABLE_MAIN.rawValue), UInt8(RTPROT_BOOT),
         UInt8(gateway ? RT_SCOPE_UNIVERSE.rawValue : RT_SCOPE_LINK.rawValue), UInt8(RTN_UNICAST)] + le(UInt32(0))
    }

    static let ifinfomsgSize = 16
    static let ifaddrmsgSize = 8
    static let rtmsgSize = 12

    static func le(_ value: UInt32) -> [UInt8] { [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) } }

    private func request(_ type: Int, flags: NetlinkFlags = [], header: [UInt8]) -> NetlinkRequest {
        NetlinkRequest(type: UInt16(type), flags: NetlinkFlags([.request, .ack, flags]).rawValue, sequence: socket.nextSequence(), header: header)
    }

    // MARK: links

    public func link(named name: String) throws(NetlinkError) -> Link? {
        var message = request(RTM_GETLINK, header: Self.ifinfomsg())
        message.addString(LinkAttribute.name, name)
        do {
            return try socket.exchange(message, operation: "looking up link", object: name).first.flatMap { reply throws(NetlinkError) in try Self.parseLink(reply) }
        } catch where error.code == ENODEV {
            return nil
        }
    }

    public func link(index: Int32) throws(NetlinkError) -> Link? {
        let message = request(RTM_GETLINK, header: Self.ifinfomsg(index: index))
        do {
            return try socket.exchange(message, operation: "looking up link", object: "#\(index)").first.flatMap { reply throws(NetlinkError) in try Self.parseLink(reply) }
        } catch where error.code == ENODEV {
            return nil
        }
    }

    /// A link from an RTM_NEWLINK reply; nil for another message; throws for a malformed one.
    static func parseLink(_ reply: NetlinkReply) throws(NetlinkError) -> Link? {
        guard reply.type == UInt16(RTM_NEWLINK) else { return nil }
        let attributes = try reply.checkedAttributes(afterHeader: Self.ifinfomsgSize)
        let body = reply.body
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(body[at + $1]) << UInt32($1 * 8) } }
        let info = try attributes[LinkAttribute.info]?.nestedAttributes() ?? []
        return Link(index: Int32(bitPattern: u32(4)), name: attributes[LinkAttribute.name]?.string ?? "",
                    kind: info[LinkAttribute.infoKind]?.string,
                    mac: attributes[LinkAttribute.address]?.payload ?? [],
                    mtu: attributes[LinkAttribute.mtu]?.u32 ?? 0, flags: u32(8),
                    master: attributes[LinkAttribute.master]?.u32.map { Int32(bitPattern: $0) },
                    peerIndex: attributes[LinkAttribute.link]?.u32.map { Int32(bitPattern: $0) })
    }

    /// Creates a bridge; one that appeared meanwhile (another ADD made it) counts as made.
    public func createBridge(_ name: String, mtu: Int?) throws(NetlinkError) {
        var message = request(RTM_NEWLINK, flags: [.create, .exclusive], header: Self.ifinfomsg())
        message.addString(LinkAttribute.name, name)
        if let mtu { message.addU32(LinkAttribute.mtu, UInt32(mtu)) }
        message.nested(LinkAttribute.info) { $0.add(LinkAttribute.infoKind, Array("bridge".utf8)) }
        do {
            _ = try socket.exchange(message, operation: "creating bridge", object: name)
        } catch where error.code == EEXIST {
        }
    }

    /// Creates a veth pair: `name` here, `peerName` in the namespace open as `peerNamespace`, with
    /// the MAC address `peerMAC` (nil: the kernel's random one).
    public func createVeth(_ name: String, peerName: String, peerNamespace: FileDescriptor, mtu: Int?, peerMAC: [UInt8]? = nil) throws(NetlinkError) {
        var message = request(RTM_NEWLINK, flags: [.create, .exclusive], header: Self.ifinfomsg())
        message.addString(LinkAttribute.name, name)
        if let mtu { message.addU32(LinkAttribute.mtu, UInt32(mtu)) }
        message.nested(LinkAttribute.info) { info in
            info.add(LinkAttribute.infoKind, Array("veth".utf8))
            info.nested(LinkAttribute.infoData) { data in
                // VETH_INFO_PEER holds an ifinfomsg followed by the peer's own attributes.
                data.add(LinkAttribute.vethPeer, NetlinkRequest.attributes(header: Self.ifinfomsg()) { peer in
                    peer.addString(LinkAttribute.name, peerName)
                    peer.addU32(LinkAttribute.namespaceDescriptor, UInt32(bitPattern: peerNamespace.rawValue))
                    if let mtu { peer.addU32(LinkAttribute.mtu, UInt32(mtu)) }
                    if let peerMAC { peer.add(LinkAttribute.address, peerMAC) }
                })
            }
        }
        _ = try socket.exchange(message, operation: "creating veth", object: "\(name) (peer \(peerName))")
    }

    /// Sets flags (IFF_UP, IFF_PROMISC) and, optionally, the master bridge.
    public func configure(_ link: Link, up: Bool = true, promisc: Bool? = nil, master: Int32? = nil) throws(NetlinkError) {
        var flags: UInt32 = up ? UInt32(IFF_UP) : 0
        var change: UInt32 = UInt32(IFF_UP)
        if let promisc {
            change |= UInt32(IFF_PROMISC)
            if promisc { flags |= UInt32(IFF_PROMISC) }
        }
        var message = request(RTM_NEWLINK, header: Self.ifinfomsg(index: link.index, flags: flags, change: change))
        if let master { message.addU32(LinkAttribute.master, UInt32(bitPattern: master)) }
        _ = try socket.exchange(message, operation: "configuring link", object: link.name)
    }

    /// Hairpin mode on a bridge port (IFLA_BRPORT_MODE through AF_BRIDGE's IFLA_PROTINFO).
    public func setHairpin(_ link: Link, _ on: Bool) throws(NetlinkError) {
        var message = request(RTM_SETLINK, header: Self.ifinfomsg(index: link.index, family: UInt8(AF_BRIDGE)))
        message.nested(LinkAttribute.protocolInfo) { $0.addU8(LinkAttribute.bridgePortMode, on ? 1 : 0) }
        _ = try socket.exchange(message, operation: "setting hairpin mode on", object: link.name)
    }

    public func delete(_ link: Link) throws(NetlinkError) {
        let message = request(RTM_DELLINK, header: Self.ifinfomsg(index: link.index))
        do {
            _ = try socket.exchange(message, operation: "deleting link", object: link.name)
        } catch where error.code == ENODEV {
        }
    }

    // MARK: addresses

    /// Adds an address without duplicate address detection, so IPv6 addresses are usable at once.
    public func addAddress(_ address: PodAddress, to link: Link) throws(NetlinkError) {
        var message = request(RTM_NEWADDR, flags: [.create, .exclusive],
                              header: Self.ifaddrmsg(family: address.family, prefix: address.prefix, index: link.index))
        message.add(AddressAttribute.local, address.address.bytes)
        message.add(AddressAttribute.address, address.address.bytes)
        message.addU32(AddressAttribute.flags, UInt32(IFA_F_NODAD))
        do {
            _ = try socket.exchange(message, operation: "adding address \(address) to", object: link.name)
        } catch where error.code == EEXIST {
        }
    }

    public func deleteAddress(_ address: PodAddress, from link: Link) throws(NetlinkError) {
        var message = request(RTM_DELADDR, header: Self.ifaddrmsg(family: address.family, prefix: address.prefix, index: link.index))
        message.add(AddressAttribute.local, address.address.bytes)
        message.add(AddressAttribute.address, address.address.bytes)
        _ = try socket.exchange(message, operation: "deleting address \(address) from", object: link.name)
    }

    /// The link's global-scope addresses (link-local ones left out).
    public func addresses(of link: Link) throws(NetlinkError) -> [PodAddress] {
        let message = request(RTM_GETADDR, flags: .dump, header: [UInt8(AF_UNSPEC)] + Self.ifaddrmsg(family: .ipv4, prefix: 0, index: 0).dropFirst())
        var addresses: [PodAddress] = []
        for reply in try socket.exchange(message, operation: "listing addresses of", object: link.name) {
            let attributes = try reply.checkedAttributes(afterHeader: Self.ifaddrmsgSize)
            let body = reply.body
            let index = Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(body[4 + $1]) << UInt32($1 * 8) })
            guard index == link.index, body[3] == UInt8(RT_SCOPE_UNIVERSE.rawValue) else { continue }
            let family: Family = body[0] == UInt8(AF_INET6) ? .ipv6 : .ipv4
            guard let bytes = (attributes[AddressAttribute.local] ?? attributes[AddressAttribute.address])?.payload,
                  let address = IPAddress(family: family, bytes: bytes) else { continue }
            addresses.append(PodAddress(address: address, prefix: Int(body[1])))
        }
        return addresses
    }

    // MARK: routes

    public func addRoute(_ route: PodRoute, via link: Link) throws(NetlinkError) {
        let destination = route.destination
        var message = request(RTM_NEWROUTE, flags: [.create, .exclusive],
                              header: Self.rtmsg(family: destination.family, prefix: destination.prefix, gateway: route.gateway != nil))
        if destination.prefix > 0 { message.add(RouteAttribute.destination, destination.address.bytes) }
        if let gateway = route.gateway { message.add(RouteAttribute.gateway, gateway.bytes) }
        message.addU32(RouteAttribute.outputInterface, UInt32(bitPattern: link.index))
        do {
            _ = try socket.exchange(message, operation: "adding route \(destination)\(route.gateway.map { " via \($0)" } ?? "") on", object: link.name)
        } catch where error.code == EEXIST {
        }
    }

    /// The main table's routes through `link`.
    public func routes(via link: Link, family: Family) throws(NetlinkError) -> [PodRoute] {
        let message = request(RTM_GETROUTE, flags: .dump, header: Self.rtmsg(family: family, prefix: 0, gateway: false))
        var routes: [PodRoute] = []
        for reply in try socket.exchange(message, operation: "listing routes of", object: link.name) {
            let attributes = try reply.checkedAttributes(afterHeader: Self.rtmsgSize)
            let body = reply.body
            guard body[4] == UInt8(RT_TABLE_MAIN.rawValue) else { continue }
            guard attributes[RouteAttribute.outputInterface]?.u32.map({ Int32(bitPattern: $0) }) == link.index else { continue }
            let zero = [UInt8](repeating: 0, count: family.bitCount / 8)
            let destination = IPAddress(family: family, bytes: attributes[RouteAttribute.destination]?.payload ?? zero)
            let gateway = attributes[RouteAttribute.gateway].flatMap { IPAddress(family: family, bytes: $0.payload) }
            if let destination { routes.append(PodRoute(destination: CIDR(address: destination, prefix: Int(body[1])), gateway: gateway)) }
        }
        return routes
    }
}
