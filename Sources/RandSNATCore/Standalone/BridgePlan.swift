import CNI

/// A route in the pod: destination and (optional) gateway.
public struct PodRoute: Equatable, Sendable {
    public let destination: CIDR
    public let gateway: IPAddress?

    public init(destination: CIDR, gateway: IPAddress?) {
        self.destination = destination
        self.gateway = gateway
    }
}

/// One address IPAM gave the pod, with the gateway the pod uses for it.
public struct PodIP: Equatable, Sendable {
    public let address: PodAddress
    public let gateway: IPAddress?
}

/// Everything the interface side of standalone ADD must make, as data. Pure.
public struct BridgePlan: Equatable, Sendable {
    public let bridge: String
    public let mtu: Int?
    public let hairpin: Bool
    public let promisc: Bool
    /// The gateways as the bridge's own addresses (isGateway), gateway/prefix of the pod's subnet.
    public let bridgeAddresses: [PodAddress]
    /// Replace another address of the same family and subnet on the bridge (forceAddress).
    public let forceAddress: Bool
    /// Families whose forwarding the node must have on (isGateway).
    public let forwarding: [Family]
    public let ips: [PodIP]
    public let routes: [PodRoute]
    /// The pod interface's MAC address, when the config sets one.
    public let mac: MACAddress?
}

public enum BridgePlanner {
    /// Plans the interfaces from the config and the IPAM result, as the reference bridge does: with
    /// isGateway a missing gateway is the subnet's first address; with isDefaultGateway the pod gets
    /// a default route per family via its gateway; IPAM routes without a gateway use the family's.
    public static func plan(_ config: BridgeConfig, ipam: (ips: [CNIResult.IPConfig], routes: [CNIResult.Route], dns: JSONValue?))
        throws(ConfigError) -> BridgePlan {
        var ips: [PodIP] = []
        for (index, item) in ipam.ips.enumerated() {
            guard let address = PodAddress(item.address), address.prefix > 0 else {
                throw .invalidValue(key: "IPAM result ips[\(index)].address", value: item.address, reason: "is not an address with a prefix length")
            }
            var gateway: IPAddress?
            if let text = item.gateway {
                guard let parsed = IPAddress(text), parsed.family == address.family else {
                    throw .invalidValue(key: "IPAM result ips[\(index)].gateway", value: text, reason: "is not an address of the same family")
                }
                gateway = parsed
            } else if config.isGateway {
                gateway = firstHost(of: address.subnet)
            }
            ips.append(PodIP(address: address, gateway: gateway))
        }
        guard !ips.isEmpty else { throw .noPodAddresses(reason: "IPAM plugin \"\(config.ipamType ?? "")\" returned no IP address") }
        var routes: [PodRoute] = []
        for (index, route) in ipam.routes.enumerated() {
            guard let destination = CIDR(route.dst), route.dst.contains("/") else {
                throw .invalidValue(key: "IPAM result routes[\(index)].dst", value: route.dst, reason: "is not a CIDR")
            }
            var gateway: IPAddress?
            if let text = route.gw {
                guard let parsed = IPAddress(text), parsed.family == destination.family else {
                    throw .invalidValue(key: "IPAM result routes[\(index)].gw", value: text, reason: "is not an address of the route's family")
                }
                gateway = parsed
            } else {
                gateway = ips.first { $0.address.family == destination.family }?.gateway
            }
            routes.append(PodRoute(destination: destination, gateway: gateway))
        }
        if config.isDefaultGateway {
            for family in Family.allCases {
                guard let gateway = ips.first(where: { $0.address.family == family })?.gateway else { continue }
                let everything = CIDR(address: IPAddress(family: family, bytes: [UInt8](repeating: 0, count: family.bitCount / 8))!, prefix: 0)
                if !routes.contains(where: { $0.destination == everything }) {
                    routes.append(PodRoute(destination: everything, gateway: gateway))
                }
            }
        }
        var bridgeAddresses: [PodAddress] = []
        if config.isGateway {
            for ip in ips {
                guard let gateway = ip.gateway else { continue }
                let address = PodAddress(address: gateway, prefix: ip.address.prefix)
                if !bridgeAddresses.contains(address) { bridgeAddresses.append(address) }
            }
        }
        return BridgePlan(bridge: config.bridge, mtu: config.mtu, hairpin: config.hairpinMode, promisc: config.promiscMode,
                          bridgeAddresses: bridgeAddresses, forceAddress: config.forceAddress,
                          forwarding: config.isGateway ? Array(Set(bridgeAddresses.map(\.family))).sorted() : [],
                          ips: ips, routes: routes, mac: config.mac)
    }

    /// The plan of a layer-2 pod (`"ipam": {}`): links only, no address, route or gateway.
    public static func layer2(_ config: BridgeConfig) -> BridgePlan {
        BridgePlan(bridge: config.bridge, mtu: config.mtu, hairpin: config.hairpinMode, promisc: config.promiscMode,
                   bridgeAddresses: [], forceAddress: config.forceAddress, forwarding: [], ips: [], routes: [], mac: config.mac)
    }

    /// The first host address of a subnet (network address + 1).
    static func firstHost(of subnet: CIDR) -> IPAddress {
        var bytes = subnet.address.bytes
        for index in bytes.indices.reversed() {
            bytes[index] &+= 1
            if bytes[index] != 0 { break }
        }
        return IPAddress(family: subnet.family, bytes: bytes)!
    }
}
