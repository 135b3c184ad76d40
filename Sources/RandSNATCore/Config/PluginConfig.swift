import CNI

/// randsnat's own keys of a network config, flat beside `type` (cni-conf/README.md, "randsnat's keys").
public struct PluginConfig: Equatable, Sendable {
    /// Destinations that bypass SNAT, as ip-masq-agent names them.
    public var nonMasqueradeCIDRs: [CIDR] = []
    /// When false (the default), link-local destinations bypass SNAT.
    public var masqLinkLocal = false
    /// SNAT to these addresses instead of MASQUERADE; per family, a family with none masquerades.
    public var toSource: [AddressRange] = []
    public var portRange: PortRange?
    /// Only traffic leaving by this interface is SNATed.
    public var egressInterface: String?
    /// How long ADD/DEL wait for the xtables lock and randsnat's network lock before code 11.
    public var lockTimeoutSeconds: Double = 10
    /// Which netfilter randsnat writes: the node's (auto), legacy xtables, or native nf_tables.
    public var backend: BackendChoice = .auto
    /// net.ipv4.tcp_timestamps in the pod's network namespace (0, 1 or 2); nil leaves it alone.
    public var podTCPTimestamps: Int?

    public init() {}

    /// The keys this type reads.
    public static let keys: [String] = [
        "nonMasqueradeCIDRs", "masqLinkLocal", "toSource", "portRange", "egressInterface", "lockTimeoutSeconds",
        "backend", "podTCPTimestamps",
    ]

    /// Reads randsnat's keys; keys that neither the spec nor randsnat knows come back as warnings.
    public static func parse(_ members: [JSONKey: JSONValue]) throws(ConfigError) -> (config: PluginConfig, warnings: [String]) {
        var config = PluginConfig()
        if let items = try stringList(members, "nonMasqueradeCIDRs") {
            config.nonMasqueradeCIDRs = try items.enumerated().map { (index, text) throws(ConfigError) in
                guard let cidr = CIDR(text), text.contains("/") else {
                    throw .invalidCIDR(key: "nonMasqueradeCIDRs[\(index)]", value: text)
                }
                return cidr
            }
        }
        if let value = members["masqLinkLocal"], value != .null {
            guard let flag = value.boolValue else { throw .wrongType(key: "masqLinkLocal", expected: "true or false", actual: value.typeName) }
            config.masqLinkLocal = flag
        }
        if let items = try stringList(members, "toSource", allowSingleString: true) {
            config.toSource = try items.enumerated().map { (index, text) throws(ConfigError) in
                guard let range = AddressRange(text) else { throw .invalidAddress(key: "toSource[\(index)]", value: text) }
                return range
            }
            if config.toSource.count > 16 {
                throw .tooManyItems(key: "toSource", count: items.count, limit: 16, of: "addresses or ranges")
            }
        }
        if let text = try string(members, "portRange") {
            guard let range = PortRange(text) else {
                throw .invalidValue(key: "portRange", value: text, reason: "is not a port range FIRST-LAST with 1 ≤ FIRST ≤ LAST ≤ 65535")
            }
            config.portRange = range
        }
        if let name = try string(members, "egressInterface") {
            guard !name.isEmpty, name.utf8.count <= 15,
                  !name.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 >= 0x7F })
            else { throw .invalidValue(key: "egressInterface", value: name, reason: "is not an interface name (1–15 bytes, no '/', ':' or spaces)") }
            config.egressInterface = name
        }
        if let value = members["lockTimeoutSeconds"], value != .null {
            let seconds: Double? = switch value {
            case .int(let number): Double(number)
            case .double(let number): number
            default: nil
            }
            guard let seconds else { throw .wrongType(key: "lockTimeoutSeconds", expected: "a number", actual: value.typeName) }
            guard seconds > 0, seconds <= 300 else {
                throw .invalidJSON(key: "lockTimeoutSeconds", value: value, reason: "must be more than 0 and at most 300 (seconds)")
            }
            config.lockTimeoutSeconds = seconds
        }
        if let text = try string(members, "backend") {
            guard let choice = BackendChoice(rawValue: text) else {
                throw .invalidValue(key: "backend", value: text, reason: "must be \"auto\", \"iptables\" or \"nftables\"")
            }
            config.backend = choice
        }
        // The reference bridge's name for it; both may be set only to the same value.
        if let text = try string(members, "ipMasqBackend") {
            guard let choice = BackendChoice(rawValue: text), choice != .auto else {
                throw .invalidValue(key: "ipMasqBackend", value: text, reason: "must be \"iptables\" or \"nftables\"")
            }
            if let backend = members["backend"], backend != .null, config.backend != choice {
                throw .invalidValue(key: "ipMasqBackend", value: text, reason: "conflicts with \"backend\": \"\(config.backend.rawValue)\"; "
                                    + "set one of them (they name the same thing), or both to the same value")
            }
            config.backend = choice
        }
        if let value = members["podTCPTimestamps"], value != .null {
            // Any other value is a bad value (code 7), a string or a fraction included: the key names a
            // kernel setting whose only meanings are these three.
            guard case .int(let number) = value, TCPTimestamps.values.contains(number) else {
                throw .invalidJSON(key: "podTCPTimestamps", value: value,
                                    reason: (value.stringValue == nil ? "" : "is a string; it ") + "must be the number 0, 1 or 2, the value of "
                                        + "\(TCPTimestamps.name) in the pod's network namespace (2: timestamps without the per-connection "
                                        + "offset); leave the key out to keep the pod's own setting")
            }
            config.podTCPTimestamps = Int(number)
        }
        if let ipMasq = members["ipMasq"], ipMasq != .null, ipMasq.boolValue == nil {
            throw .wrongType(key: "ipMasq", expected: "true or false", actual: ipMasq.typeName)
        }
        let known = NetworkConfig.specKeys.union((keys + BridgeConfig.keys).map { JSONKey($0) })
        let warnings = members.keys.filter { !known.contains($0) }.sorted().map { key in
            var text = "ignoring unknown config key \"\(key.text.escapedBytes)\""
            if let guess = closestKey(to: key.text, among: keys) { text += " (did you mean \"\(guess)\"?)" }
            return text
        }
        return (config, warnings)
    }

    static func string(_ members: [JSONKey: JSONValue], _ key: String) throws(ConfigError) -> String? {
        guard let value = members[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw .wrongType(key: key, expected: "a string", actual: value.typeName) }
        return text
    }

    static func stringList(_ members: [JSONKey: JSONValue], _ key: String, allowSingleString: Bool = false) throws(ConfigError) -> [String]? {
        guard let value = members[key], value != .null else { return nil }
        if allowSingleString, let text = value.stringValue { return [text] }
        guard let items = value.arrayValue else {
            throw .wrongType(key: key, expected: allowSingleString ? "a string or an array of strings" : "an array of strings", actual: value.typeName)
        }
        return try items.enumerated().map { (index, item) throws(ConfigError) in
            guard let text = item.stringValue else { throw .wrongType(key: "\(key)[\(index)]", expected: "a string", actual: item.typeName) }
            return text
        }
    }

    /// The known key a typo most likely meant: same letters ignoring case, or edit distance ≤ 3.
    static func closestKey(to key: String, among candidates: [String]) -> String? {
        let lowered = Array(key.lowercased().utf8)
        var best: (key: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, Array(candidate.lowercased().utf8))
            if distance <= 3, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.key
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + [Int](repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
