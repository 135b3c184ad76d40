internal import CNetlink
internal import Glibc
import SystemCalls
import RandSNATCore

/// The interface side of standalone mode on Linux: bridge, veth pair, addresses, routes.
public struct BridgeNetwork: PodNetwork {
    public init() {}

    func failure(_ operation: String, _ object: String, _ reason: String) -> NetlinkError {
        NetlinkError(operation: operation, object: object, errno: nil, reason: reason)
    }

    /// The bridge, made if missing; an existing link of that name must be a bridge.
    func bridge(_ name: String, mtu: Int?, on host: RouteLink) throws -> Link {
        if let existing = try host.link(named: name) {
            guard existing.kind == "bridge" else {
                throw failure("using", name, "\(name) exists and is not a bridge (it is a \(existing.kind ?? "device")); set \"bridge\" to another name")
            }
            return existing
        }
        try host.createBridge(name, mtu: mtu)
        guard let made = try host.link(named: name), made.kind == "bridge" else {
            throw failure("creating bridge", name, "it is not there after creating it")
        }
        return made
    }

    public func createLinks(_ plan: LinkPlan, netns: String, ifName: String) throws -> CreatedLinks {
        let host = try RouteLink.current()
        let bridge = try bridge(plan.bridge, mtu: plan.mtu, on: host)
        try host.configure(bridge, up: true, promisc: plan.promisc ? true : nil)
        let namespace = try NetworkNamespace.open(netns)
        defer { namespace.close() }
        let hostName = "veth" + Self.randomHex(8)
        try host.createVeth(hostName, peerName: ifName, peerNamespace: namespace, mtu: plan.mtu, peerMAC: plan.mac?.bytes)
        guard let hostVeth = try host.link(named: hostName) else { throw failure("creating veth", hostName, "it is not there after creating it") }
        do {
            try host.configure(hostVeth, up: true, master: bridge.index)
            if plan.hairpin { try host.setHairpin(hostVeth, true) }
            // (The kernel refuses IFF_UP in the peer's header of the veth request: the pair is not
            // linked yet when it applies it, ENOTCONN.)
            if plan.podUp {
                let pod = try RouteLink.inNamespace(netns)
                guard let podLink = try pod.link(named: ifName) else { throw failure("finding", ifName, "the pod end of the veth is missing") }
                try pod.configure(podLink, up: true)
            }
        } catch {
            try? host.delete(hostVeth)
            throw error
        }
        return CreatedLinks(bridgeIndex: bridge.index, hostVeth: hostName, netns: netns, ifName: ifName)
    }

    public func configure(_ links: CreatedLinks, plan: BridgePlan) throws -> AttachedPod {
        let host = try RouteLink.current()
        guard let bridge = try host.link(index: links.bridgeIndex), let hostVeth = try host.link(named: links.hostVeth) else {
            let why = access(links.netns, F_OK) != 0 ? ": the pod's network namespace \(links.netns) no longer exists" : ""
            throw failure("configuring", links.hostVeth, "the bridge or the veth pair disappeared during ADD\(why)")
        }
        if !plan.bridgeAddresses.isEmpty {
            let existing = try host.addresses(of: bridge)
            for address in plan.bridgeAddresses where !existing.contains(address) {
                for other in existing where other.family == address.family && other.subnet == address.subnet {
                    guard plan.forceAddress else {
                        throw failure("adding gateway address \(address) to", plan.bridge,
                                      "\(plan.bridge) already has \(other) in that subnet; set \"forceAddress\": true to replace it")
                    }
                    try host.deleteAddress(other, from: bridge)
                }
                try host.addAddress(address, to: bridge)
            }
        }
        for family in plan.forwarding {
            try Sysctl.write(family == .ipv4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding", "1")
        }
        let pod = try RouteLink.inNamespace(links.netns)
        guard let podLink = try pod.link(named: links.ifName) else { throw failure("finding", links.ifName, "the pod end of the veth is missing") }
        for ip in plan.ips { try pod.addAddress(ip.address, to: podLink) }
        try pod.configure(podLink, up: true)
        for route in plan.routes { try pod.addRoute(route, via: podLink) }
        let bridgeNow = try host.link(index: bridge.index) ?? bridge
        return AttachedPod(bridge: ResultInterface(name: plan.bridge, mac: bridgeNow.macText, sandbox: nil),
                           hostVeth: ResultInterface(name: links.hostVeth, mac: hostVeth.macText, sandbox: nil),
                           pod: ResultInterface(name: links.ifName, mac: podLink.macText, sandbox: links.netns))
    }

    public func remove(_ links: CreatedLinks) throws {
        let host = try RouteLink.current()
        if let hostVeth = try host.link(named: links.hostVeth) { try host.delete(hostVeth) }
    }

    public func detach(netns: String, ifName: String, meanwhile: () throws -> Void) throws {
        let pod: RouteLink
        do {
            pod = try RouteLink.inNamespace(netns)
        } catch let error as NetlinkError where error.code == ENOENT {
            return try meanwhile()  // the namespace is gone, and the veth with it
        }
        guard let link = try pod.link(named: ifName) else { return try meanwhile() }
        // The kernel's teardown of a veth takes 15-30 ms, mostly waiting for RCU grace periods.
        try BackgroundThread.run({ try pod.delete(link) }, while: meanwhile)
    }

    public func problems(with plan: BridgePlan, netns: String, ifName: String) throws -> [String] {
        var problems: [String] = []
        let host = try RouteLink.current()
        guard let bridge = try host.link(named: plan.bridge), bridge.kind == "bridge" else {
            return ["bridge \(plan.bridge) does not exist"]
        }
        if !bridge.isUp { problems.append("bridge \(plan.bridge) is down") }
        let bridgeAddresses = try host.addresses(of: bridge)
        for address in plan.bridgeAddresses where !bridgeAddresses.contains(address) {
            problems.append("bridge \(plan.bridge) lacks its gateway address \(address)")
        }
        let pod = try RouteLink.inNamespace(netns)
        guard let podLink = try pod.link(named: ifName) else { return problems + ["\(ifName) does not exist in \(netns)"] }
        if podLink.kind != "veth" { problems.append("\(ifName) in \(netns) is not a veth") }
        if !podLink.isUp { problems.append("\(ifName) in \(netns) is down") }
        if let mac = plan.mac, podLink.mac != mac.bytes { problems.append("\(ifName) in \(netns) has MAC \(podLink.macText), not \(mac)") }
        let addresses = try pod.addresses(of: podLink)
        for ip in plan.ips where !addresses.contains(ip.address) {
            problems.append("\(ifName) lacks the address \(ip.address)")
        }
        for family in Family.allCases {
            let routes = try pod.routes(via: podLink, family: family)
            for route in plan.routes where route.destination.family == family && !routes.contains(route) {
                problems.append("the pod has no route to \(route.destination)\(route.gateway.map { " via \($0)" } ?? "")")
            }
        }
        if let peer = podLink.peerIndex, let hostVeth = try host.link(index: peer) {
            if hostVeth.master != bridge.index { problems.append("the host end \(hostVeth.name) is not a port of \(plan.bridge)") }
        } else {
            problems.append("the host end of \(ifName) is missing")
        }
        return problems
    }

    static func randomHex(_ digits: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: (digits + 1) / 2)
        _ = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress, $0.count, 0) }
        return String(bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined().prefix(digits))
    }
}

/// Writes under /proc/sys (of the calling thread's network namespace).
enum Sysctl {
    static func write(_ key: String, _ value: String) throws(NetlinkError) {
        let path = "/proc/sys/" + key
        do throws(SystemCallError) {
            let fd = try FileDescriptor.open(path, .writeOnly)
            defer { fd.close() }
            do { try fd.writeAll(Array(value.utf8)) } catch { throw SystemCallError("writing \(value) to", path, error) }
        } catch {
            throw NetlinkError(error)
        }
    }
}
