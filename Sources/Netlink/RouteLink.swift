import CNetlink
import Glibc
import RandSNATCore

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
        RouteLink(socket: try NetlinkSocket(family: NetlinkSocket.route))
    }

    /// A RouteLink on the network namespace at `path`; the socket is made on a thread that entered it.
    public static func inNamespace(_ path: String) throws -> RouteLink {
        RouteLink(socket: try NetworkNamespace.run(in: path) { try NetlinkSocket(family: NetlinkSocket.route) })
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

    static func le(_ value: UInt32) -> [UInt8] { [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> UInt32($0)) } }

    private func request(_ type: Int, flags: Int32, header: [UInt8]) -> NetlinkRequest {
        NetlinkRequest(type: UInt16(type), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | flags), sequence: socket.nextSequence(), header: header)
    }

    // MARK: links

    public func link(named name: String) throws(NetlinkError) -> Link? {
        var message = request(Int(RTM_GETLINK), flags: 0, header: Self.ifinfomsg())
        message.addString(UInt16(IFLA_IFNAME), name)
        do {
            return try socket.exchange(message, operation: "looking up link", object: name).first.flatMap(Self.parseLink)
        } catch where error.code == ENODEV {
            return nil
        }
    }

    public func link(index: Int32) throws(NetlinkError) -> Link? {
        let message = request(Int(RTM_GETLINK), flags: 0, header: Self.ifinfomsg(index: index))
        do {
            return try socket.exchange(message, operation: "looking up link", object: "#\(index)").first.flatMap(Self.parseLink)
        } catch where error.code == ENODEV {
            return nil
        }
    }

    static func parseLink(_ reply: NetlinkReply) -> Link? {
        guard reply.type == UInt16(RTM_NEWLINK), reply.body.count >= 16 else { return nil }
        let body = reply.body
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(body[at + $1]) << UInt32($1 * 8) } }
        let attributes = reply.attributes(afterHeader: 16)
        let info = attributes[type: UInt16(IFLA_LINKINFO)]?.nested ?? []
        return Link(index: Int32(bitPattern: u32(4)), name: attributes[type: UInt16(IFLA_IFNAME)]?.string ?? "",
                    kind: info[type: UInt16(IFLA_INFO_KIND)]?.string,
                    mac: attributes[type: UInt16(IFLA_ADDRESS)]?.payload ?? [],
                    mtu: attributes[type: UInt16(IFLA_MTU)]?.u32 ?? 0, flags: u32(8),
                    master: attributes[type: UInt16(IFLA_MASTER)]?.u32.map { Int32(bitPattern: $0) },
                    peerIndex: attributes[type: UInt16(IFLA_LINK)]?.u32.map { Int32(bitPattern: $0) })
    }

    /// Creates a bridge; one that appeared meanwhile (another ADD made it) counts as made.
    public func createBridge(_ name: String, mtu: Int?) throws(NetlinkError) {
        var message = request(Int(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL, header: Self.ifinfomsg())
        message.addString(UInt16(IFLA_IFNAME), name)
        if let mtu { message.addU32(UInt16(IFLA_MTU), UInt32(mtu)) }
        message.beginNested(UInt16(IFLA_LINKINFO))
        message.add(UInt16(IFLA_INFO_KIND), Array("bridge".utf8))
        message.endNested()
        do {
            _ = try socket.exchange(message, operation: "creating bridge", object: name)
        } catch where error.code == EEXIST {
        }
    }

    /// Creates a veth pair: `name` here, `peerName` in the namespace open as `peerNamespace`, with
    /// the MAC address `peerMAC` (nil: the kernel's random one).
    public func createVeth(_ name: String, peerName: String, peerNamespace: Int32, mtu: Int?, peerMAC: [UInt8]? = nil) throws(NetlinkError) {
        var message = request(Int(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL, header: Self.ifinfomsg())
        message.addString(UInt16(IFLA_IFNAME), name)
        if let mtu { message.addU32(UInt16(IFLA_MTU), UInt32(mtu)) }
        message.beginNested(UInt16(IFLA_LINKINFO))
        message.add(UInt16(IFLA_INFO_KIND), Array("veth".utf8))
        message.beginNested(UInt16(IFLA_INFO_DATA))
        // VETH_INFO_PEER holds an ifinfomsg followed by the peer's own attributes.
        var peer = NetlinkRequest(type: 0, flags: 0, sequence: 0, header: [])
        peer.addString(UInt16(IFLA_IFNAME), peerName)
        peer.addU32(UInt16(IFLA_NET_NS_FD), UInt32(bitPattern: peerNamespace))
        if let mtu { peer.addU32(UInt16(IFLA_MTU), UInt32(mtu)) }
        if let peerMAC { peer.add(UInt16(IFLA_ADDRESS), peerMAC) }
        message.add(UInt16(VETH_INFO_PEER), Self.ifinfomsg() + Array(peer.finished.dropFirst(16)))
        message.endNested()
        message.endNested()
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
        var message = request(Int(RTM_NEWLINK), flags: 0, header: Self.ifinfomsg(index: link.index, flags: flags, change: change))
        if let master { message.addU32(UInt16(IFLA_MASTER), UInt32(bitPattern: master)) }
        _ = try socket.exchange(message, operation: "configuring link", object: link.name)
    }

    /// Hairpin mode on a bridge port (IFLA_BRPORT_MODE through AF_BRIDGE's IFLA_PROTINFO).
    public func setHairpin(_ link: Link, _ on: Bool) throws(NetlinkError) {
        var message = request(Int(RTM_SETLINK), flags: 0, header: Self.ifinfomsg(index: link.index, family: UInt8(AF_BRIDGE)))
        message.beginNested(UInt16(IFLA_PROTINFO))
        message.addU8(UInt16(IFLA_BRPORT_MODE), on ? 1 : 0)
        message.endNested()
        _ = try socket.exchange(message, operation: "setting hairpin mode on", object: link.name)
    }

    public func delete(_ link: Link) throws(NetlinkError) {
        let message = request(Int(RTM_DELLINK), flags: 0, header: Self.ifinfomsg(index: link.index))
        do {
            _ = try socket.exchange(message, operation: "deleting link", object: link.name)
        } catch where error.code == ENODEV {
        }
    }

    // MARK: addresses

    /// Adds an address without duplicate address detection, so IPv6 addresses are usable at once.
    public func addAddress(_ address: PodAddress, to link: Link) throws(NetlinkError) {
        var message = request(Int(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL,
                              header: Self.ifaddrmsg(family: address.family, prefix: address.prefix, index: link.index))
        message.add(UInt16(IFA_LOCAL), address.address.bytes)
        message.add(UInt16(IFA_ADDRESS), address.address.bytes)
        message.addU32(UInt16(IFA_FLAGS), UInt32(IFA_F_NODAD))
        do {
            _ = try socket.exchange(message, operation: "adding address \(address) to", object: link.name)
        } catch where error.code == EEXIST {
        }
    }

    public func deleteAddress(_ address: PodAddress, from link: Link) throws(NetlinkError) {
        var message = request(Int(RTM_DELADDR), flags: 0, header: Self.ifaddrmsg(family: address.family, prefix: address.prefix, index: link.index))
        message.add(UInt16(IFA_LOCAL), address.address.bytes)
        message.add(UInt16(IFA_ADDRESS), address.address.bytes)
        _ = try socket.exchange(message, operation: "deleting address \(address) from", object: link.name)
    }

    /// The link's global-scope addresses (link-local ones left out).
    public func addresses(of link: Link) throws(NetlinkError) -> [PodAddress] {
        let message = request(Int(RTM_GETADDR), flags: NLM_F_DUMP, header: Self.ifaddrmsg(family: .ipv4, prefix: 0, index: 0).enumerated().map { $0.offset == 0 ? UInt8(AF_UNSPEC) : $0.element })
        var addresses: [PodAddress] = []
        for reply in try socket.exchange(message, operation: "listing addresses of", object: link.name) where reply.body.count >= 8 {
            let body = reply.body
            let index = Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(body[4 + $1]) << UInt32($1 * 8) })
            guard index == link.index, body[3] == UInt8(RT_SCOPE_UNIVERSE.rawValue) else { continue }
            let family: Family = body[0] == UInt8(AF_INET6) ? .ipv6 : .ipv4
            let attributes = reply.attributes(afterHeader: 8)
            guard let bytes = (attributes[type: UInt16(IFA_LOCAL)] ?? attributes[type: UInt16(IFA_ADDRESS)])?.payload,
                  let address = IPAddress(family: family, bytes: bytes) else { continue }
            addresses.append(PodAddress(address: address, prefix: Int(body[1])))
        }
        return addresses
    }

    // MARK: routes

    public func addRoute(_ route: PodRoute, via link: Link) throws(NetlinkError) {
        let destination = route.destination
        var message = request(Int(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_EXCL,
                              header: Self.rtmsg(family: destination.family, prefix: destination.prefix, gateway: route.gateway != nil))
        if destination.prefix > 0 { message.add(UInt16(RTA_DST.rawValue), destination.address.bytes) }
        if let gateway = route.gateway { message.add(UInt16(RTA_GATEWAY.rawValue), gateway.bytes) }
        message.addU32(UInt16(RTA_OIF.rawValue), UInt32(bitPattern: link.index))
        do {
            _ = try socket.exchange(message, operation: "adding route \(destination)\(route.gateway.map { " via \($0)" } ?? "") on", object: link.name)
        } catch where error.code == EEXIST {
        }
    }

    /// The main table's routes through `link`.
    public func routes(via link: Link, family: Family) throws(NetlinkError) -> [PodRoute] {
        let message = request(Int(RTM_GETROUTE), flags: NLM_F_DUMP, header: Self.rtmsg(family: family, prefix: 0, gateway: false))
        var routes: [PodRoute] = []
        for reply in try socket.exchange(message, operation: "listing routes of", object: link.name) where reply.body.count >= 12 {
            let body = reply.body
            guard body[4] == UInt8(RT_TABLE_MAIN.rawValue) else { continue }
            let attributes = reply.attributes(afterHeader: 12)
            guard attributes[type: UInt16(RTA_OIF.rawValue)]?.u32.map({ Int32(bitPattern: $0) }) == link.index else { continue }
            let zero = [UInt8](repeating: 0, count: family.bitCount / 8)
            let destination = IPAddress(family: family, bytes: attributes[type: UInt16(RTA_DST.rawValue)]?.payload ?? zero)
            let gateway = attributes[type: UInt16(RTA_GATEWAY.rawValue)].flatMap { IPAddress(family: family, bytes: $0.payload) }
            if let destination { routes.append(PodRoute(destination: CIDR(address: destination, prefix: Int(body[1])), gateway: gateway)) }
        }
        return routes
    }
}
