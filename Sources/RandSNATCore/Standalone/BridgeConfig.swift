import CNI

/// The keys of the reference `bridge` plugin that randsnat's standalone mode reads (README,
/// "Standalone mode"). Keys of the reference plugin that would change behaviour randsnat does not
/// implement are refused (code 7), never silently ignored.
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
    /// `ipam.type`: the IPAM plugin randsnat execs from CNI_PATH.
    public var ipamType: String

    public static let keys: [String] = [
        "bridge", "isGateway", "isDefaultGateway", "forceAddress", "hairpinMode", "promiscMode", "mtu", "ipMasq", "ipam",
        "vlan", "vlanTrunk", "preserveDefaultVlan", "macspoofchk", "enabledad", "disableContainerInterface", "portIsolation",
        "ipMasqBackend",
    ]

    /// Reads the keys; nil when the config has no `ipam` (randsnat then runs chained).
    public static func parse(_ members: [JSONKey: JSONValue]) throws(ConfigError) -> BridgeConfig? {
        guard let ipam = members["ipam"], ipam != .null else { return nil }
        guard let ipamObject = ipam.objectValue else { throw .wrongType(key: "ipam", expected: "an object", actual: ipam.typeName) }
        guard let type = ipamObject["type"]?.stringValue, !type.isEmpty else {
            throw .invalidValue(key: "ipam.type", value: ipamObject["type"]?.typeName ?? "missing", reason: "must name an IPAM plugin, such as \"host-local\"")
        }
        // By bytes, as execve reads the path: "/\u{301}" is one Character, which is not "/".
        guard !type.utf8Contains("/"), !type.utf8Equals("."), !type.utf8Equals("..") else {
            throw .invalidValue(key: "ipam.type", value: type, reason: "must be a plugin name, not a path")
        }
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
        config.ipMasq = try flag(members, "ipMasq") ?? true
        if let value = members["mtu"], value != .null {
            guard let mtu = value.intValue else { throw .wrongType(key: "mtu", expected: "an integer", actual: value.typeName) }
            guard mtu == 0 || (68...65535).contains(mtu) else {
                throw .invalidValue(key: "mtu", value: "\(mtu)", reason: "must be between 68 and 65535 (or 0 for the default)")
            }
            config.mtu = mtu == 0 ? nil : Int(mtu)
        }
        // The reference plugin's keys randsnat does not implement: present with a non-default value is an error.
        if let vlan = members["vlan"], vlan != .null, vlan.intValue != 0 {
            throw .unsupported(key: "vlan", reason: "VLAN tagging of bridge ports is not implemented")
        }
        if let trunk = members["vlanTrunk"], trunk != .null, trunk.arrayValue?.isEmpty != true {
            throw .unsupported(key: "vlanTrunk", reason: "VLAN trunks are not implemented")
        }
        for key in ["macspoofchk", "enabledad", "disableContainerInterface", "portIsolation"] where try flag(members, key) == true {
            throw .unsupported(key: key, reason: key == "enabledad"
                ? "randsnat adds IPv6 addresses without duplicate address detection (IFA_F_NODAD), so they are usable at once"
                : "not implemented")
        }
        if let backend = try PluginConfig.string(members, "ipMasqBackend"), backend != "iptables" {
            throw .unsupported(key: "ipMasqBackend", reason: "randsnat writes iptables-legacy rules (a native nftables backend is issue #6)")
        }
        _ = try flag(members, "preserveDefaultVlan")
        return config
    }

    static func flag(_ members: [JSONKey: JSONValue], _ key: String) throws(ConfigError) -> Bool? {
        guard let value = members[key], value != .null else { return nil }
        guard let flag = value.boolValue else { throw .wrongType(key: key, expected: "true or false", actual: value.typeName) }
        return flag
    }
}
