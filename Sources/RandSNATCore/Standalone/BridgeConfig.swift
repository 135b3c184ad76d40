import CNI

/// The keys of the reference `bridge` plugin that randsnat's standalone mode reads (cni-conf/README.md,
/// "Standalone mode: the reference bridge's keys"). Keys of the reference plugin that would change behaviour randsnat does not
/// implement are refused as unsupported fields (code 2), never silently ignored.
public struct BridgeConfig: Equatable, Sendable {
    public var bridge = "cni0"
    public var isGateway = false
    public var isDefaultGateway = false
    public var forceAddress = false
    public var hairpinMode = false
    public var promiscMode = false
    public var mtu: Int?
    /// SNAT for the pods unless `ipMasq: false`.
    public var ipMasq = true
    /// `ipam.type`: the IPAM plugin randsnat execs from CNI_PATH; nil for `"ipam": {}`, layer 2
    /// only (no IPAM call, no addresses, no routes, no SNAT), as with the reference bridge.
    public var ipamType: String?
    /// The pod interface's MAC address: `runtimeConfig.mac`, else `args.cni.mac`, else `CNI_ARGS`
    /// `MAC=` (the reference bridge's precedence); nil for the kernel's random one.
    public var mac: MACAddress?
    /// The config's `dns` when it sets anything: the result's `dns` instead of IPAM's.
    public var dns: JSONValue?

    public init(ipamType: String?) { self.ipamType = ipamType }

    /// IPAM plugins that need the pod's link to exist, and be up, when they run: the reference
    /// `dhcp` plugin talks DHCP on it. randsnat makes the link before it runs these; any other IPAM
    /// plugin runs while randsnat makes the link (ADD is faster so).
    public static let ipamNeedingTheLink: Set<String> = ["dhcp"]

    public var ipamNeedsLink: Bool { ipamType.map(Self.ipamNeedingTheLink.contains) ?? false }

    /// What the `ipam` section makes randsnat.
    public enum Mode: Equatable, Sendable {
        /// No `ipam`: chained after an interface plugin.
        case chained
        /// The interface plugin, delegating to `ipamType` (nil: layer 2 only).
        case standalone(ipamType: String?)
    }

    public static let keys: [String] = [
        "bridge", "isGateway", "isDefaultGateway", "forceAddress", "hairpinMode", "promiscMode", "mtu", "ipMasq", "ipam",
        "vlan", "vlanTrunk", "preserveDefaultVlan", "macspoofchk", "enabledad", "disableContainerInterface", "portIsolation",
        "ipMasqBackend",
    ]

    /// Reads `ipam` alone: all that DEL and GC need, so that a config whose other keys were edited
    /// after ADD (and are now invalid) still releases what ADD took. An `ipam` with no `type` (or
    /// an empty one) and nothing else is layer 2 only, as with the reference bridge.
    public static func mode(_ members: [JSONKey: JSONValue]) throws(ConfigError) -> Mode {
        guard let ipam = members["ipam"], ipam != .null else { return .chained }
        guard let ipamObject = ipam.objectValue else { throw .wrongType(key: "ipam", expected: "an object", actual: ipam.typeName) }
        if ipamObject["type"] == nil || ipamObject["type"] == .null || ipamObject["type"] == .string("") {
            guard ipamObject.keys.allSatisfy({ $0 == "type" }) else {
                throw .invalidJSON(key: "ipam", value: ipam, reason: "has no \"type\": ipam.type names the IPAM plugin, such as "
                                   + "\"host-local\" (an empty \"ipam\": {} means layer 2 only: no addresses)")
            }
            return .standalone(ipamType: nil)
        }
        guard let type = ipamObject["type"]?.stringValue else {
            throw .wrongType(key: "ipam.type", expected: "a string", actual: ipamObject["type"]?.typeName ?? "missing")
        }
        // By bytes, as execve reads the path: "/\u{301}" is one Character, which is not "/".
        guard !type.utf8Contains("/"), !type.utf8Equals("."), !type.utf8Equals("..") else {
            throw .invalidValue(key: "ipam.type", value: type, reason: "must be a plugin name, not a path")
        }
        return .standalone(ipamType: type)
    }

    /// Reads the keys; nil when the config has no `ipam` (randsnat then runs chained). `cniArgs`
    /// are the pairs of `CNI_ARGS` (for `MAC=`).
    public static func parse(_ members: [JSONKey: JSONValue], cniArgs: [(key: String, value: String)] = []) throws(ConfigError) -> BridgeConfig? {
        guard case .standalone(let type) = try mode(members) else { return nil }
        var config = BridgeConfig(ipamType: type)
        if let name = try PluginConfig.string(members, "bridge") {
            guard !name.isEmpty, name.utf8.count <= 15,
                  !name.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 >= 0x7F })
            else { throw .invalidValue(key: "bridge", value: name, reason: "is not an interface name (1–15 bytes, no '/', ':' or spaces)") }
            config.bridge = name
        }
        config.isGateway = try flag(members, "isGateway") ?? false
        config.isDefaultGateway = try flag(members, "isDefaultGateway") ?? false
        if config.isDefaultGateway { config.isGateway = true }
        config.forceAddress = try flag(members, "forceAddress") ?? false
        config.hairpinMode = try flag(members, "hairpinMode") ?? false
        config.promiscMode = try flag(members, "promiscMode") ?? false
        if config.hairpinMode && config.promiscMode {
            throw .invalidJSON(key: "hairpinMode", value: .bool(true), reason: "cannot be set with \"promiscMode\": true "
                                + "(the reference bridge refuses both at once too); set one of them")
        }
        config.ipMasq = try flag(members, "ipMasq") ?? true
        if let value = members["mtu"], value != .null {
            guard let mtu = value.intValue else { throw .wrongType(key: "mtu", expected: "an integer", actual: value.typeName) }
            guard mtu == 0 || (68...65535).contains(mtu) else {
                throw .invalidJSON(key: "mtu", value: value, reason: "must be between 68 and 65535 (or 0 for the default)")
            }
            config.mtu = mtu == 0 ? nil : Int(mtu)
        }
        // The reference plugin's keys randsnat does not implement: of the right type and with a
        // non-default value, an unsupported field.
        if let vlan = members["vlan"], vlan != .null {
            guard let number = vlan.intValue else { throw .wrongType(key: "vlan", expected: "an integer", actual: vlan.typeName) }
            if number != 0 { throw .unsupported(key: "vlan", value: vlan, reason: "VLAN tagging of bridge ports is not implemented") }
        }
        if let trunk = members["vlanTrunk"], trunk != .null {
            guard let items = trunk.arrayValue else { throw .wrongType(key: "vlanTrunk", expected: "an array", actual: trunk.typeName) }
            if !items.isEmpty { throw .unsupported(key: "vlanTrunk", value: trunk, reason: "VLAN trunks are not implemented") }
        }
        for key in ["macspoofchk", "enabledad", "disableContainerInterface", "portIsolation"] where try flag(members, key) == true {
            throw .unsupported(key: key, value: .bool(true), reason: key == "enabledad"
                ? "randsnat adds IPv6 addresses without duplicate address detection (IFA_F_NODAD), so they are usable at once"
                : "not implemented")
        }
        // ipMasqBackend is read with `backend` (PluginConfig).
        _ = try flag(members, "preserveDefaultVlan")
        config.mac = try mac(members, cniArgs: cniArgs)
        config.dns = try dns(members)
        return config
    }

    /// The pod's MAC address from the three places the reference bridge reads, the later winning:
    /// `CNI_ARGS` `MAC=`, `args.cni.mac`, `runtimeConfig.mac` (capability "mac").
    static func mac(_ members: [JSONKey: JSONValue], cniArgs: [(key: String, value: String)]) throws(ConfigError) -> MACAddress? {
        var chosen: (key: String, text: String)?
        if let text = cniArgs.last(where: { $0.key.utf8Equals("MAC") })?.value, !text.isEmpty { chosen = ("CNI_ARGS MAC", text) }
        for (key, value) in [("args.cni.mac", members["args"]?["cni"]?["mac"]), ("runtimeConfig.mac", members["runtimeConfig"]?["mac"])] {
            guard let value, value != .null else { continue }
            guard let text = value.stringValue else { throw .wrongType(key: key, expected: "a string", actual: value.typeName) }
            if !text.isEmpty { chosen = (key, text) }
        }
        guard let chosen else { return nil }
        guard let mac = MACAddress(chosen.text) else {
            throw .invalidValue(key: chosen.key, value: chosen.text, reason: "is not a MAC address (six hex bytes separated by ':' or '-')")
        }
        guard !mac.isMulticast, mac.bytes.contains(where: { $0 != 0 }) else {
            throw .invalidValue(key: chosen.key, value: chosen.text, reason: "is not a unicast MAC address (the first byte must be even, and not all bytes zero)")
        }
        return mac
    }

    /// The config's `dns` when it sets something (the reference bridge's rule: nameservers, search or
    /// options present, or a domain), as the result writes it: the four fields, empty ones left out.
    static func dns(_ members: [JSONKey: JSONValue]) throws(ConfigError) -> JSONValue? {
        guard let value = members["dns"], value != .null else { return nil }
        guard let object = value.objectValue else { throw .wrongType(key: "dns", expected: "an object", actual: value.typeName) }
        var isSet = false
        var written: [JSONKey: JSONValue] = [:]
        for key in ["nameservers", "search", "options"] {
            guard let items = try PluginConfig.stringList(object, key) else { continue }
            isSet = true
            if !items.isEmpty { written[key] = .array(items.map { .string($0) }) }
        }
        if let domain = try PluginConfig.string(object, "domain"), !domain.isEmpty {
            isSet = true
            written["domain"] = .string(domain)
        }
        return isSet ? .object(written) : nil
    }

    static func flag(_ members: [JSONKey: JSONValue], _ key: String) throws(ConfigError) -> Bool? {
        guard let value = members[key], value != .null else { return nil }
        guard let flag = value.boolValue else { throw .wrongType(key: key, expected: "true or false", actual: value.typeName) }
        return flag
    }
}

/// A 48-bit Ethernet address.
public struct MACAddress: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Reads "02:42:c6:12:00:07" or "02-42-C6-12-00-07" (the 48-bit forms Go's `net.ParseMAC` reads,
    /// besides "0242.c612.0007"); nil for anything else.
    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var digits: [UInt8] = []
        if utf8.count == 17, [UInt8(ascii: ":"), UInt8(ascii: "-")].contains(utf8[2]) {
            for (index, byte) in utf8.enumerated() {
                if index % 3 == 2 {
                    guard byte == utf8[2] else { return nil }
                } else {
                    guard let digit = hex(byte) else { return nil }
                    digits.append(digit)
                }
            }
        } else if utf8.count == 14 {
            for (index, byte) in utf8.enumerated() {
                if index % 5 == 4 {
                    guard byte == UInt8(ascii: ".") else { return nil }
                } else {
                    guard let digit = hex(byte) else { return nil }
                    digits.append(digit)
                }
            }
        } else {
            return nil
        }
        bytes = stride(from: 0, to: 12, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// The group bit: set for multicast and broadcast addresses, which no interface may have.
    public var isMulticast: Bool { bytes[0] & 1 == 1 }

    /// Lower-case hex with ':' (as `ip link` and CNI results write it).
    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
