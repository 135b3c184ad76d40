import CNI

/// A fault in randsnat's own keys of the network config. Each case names the key and the value (its
/// bytes: non-ASCII and control bytes as \xNN, so the reader sees what randsnat compared).
public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The key holds a JSON value of another type (maps to CNI code 6, like a failed unmarshal).
    case wrongType(key: String, expected: String, actual: String)
    case invalidCIDR(key: String, value: String)
    case invalidAddress(key: String, value: String)
    case invalidValue(key: String, value: String, reason: String)
    /// A value of the right JSON type that randsnat does not allow, shown as JSON, as written
    /// (`lockTimeoutSeconds: 0 must be ...`, `podTCPTimestamps: "2" is a string; ...`).
    case invalidJSON(key: String, value: JSONValue, reason: String)
    /// A list longer than randsnat takes.
    case tooManyItems(key: String, count: Int, limit: Int, of: String)
    case missingPrevResult
    /// A key of the reference bridge plugin whose behaviour randsnat does not implement, with the
    /// value it was given (maps to CNI code 2, "unsupported field", whose message names both).
    case unsupported(key: String, value: JSONValue, reason: String)
    case noPodAddresses(reason: String)

    public var description: String {
        switch self {
        case .wrongType(let key, let expected, let actual):
            "\(key) must be \(expected), not \(Self.withArticle(actual))"
        case .invalidCIDR(let key, let value):
            "\(key): \"\(value.escapedBytes)\" is not a CIDR (ADDRESS/PREFIX, IPv4 prefix 0–32, IPv6 prefix 0–128)"
        case .invalidAddress(let key, let value):
            "\(key): \"\(value.escapedBytes)\" is not an address or an address range FIRST-LAST of one family"
        case .invalidValue(let key, let value, let reason):
            "\(key): \"\(value.escapedBytes)\" \(reason)"
        case .invalidJSON(let key, let value, let reason):
            "\(key): \(Self.excerpt(value)) \(reason)"
        case .tooManyItems(let key, let count, let limit, let of):
            "\(key) has \(count) items; at most \(limit) \(of)"
        case .missingPrevResult:
            "randsnat runs chained here but the config has no prevResult: list it after an interface plugin "
                + "(bridge, ptp, flannel, ...) in a conflist, or give it an \"ipam\" section to run standalone"
        case .noPodAddresses(let reason):
            reason
        case .unsupported(let key, let value, let reason):
            "\(key): \(Self.excerpt(value)) is not supported by randsnat: \(reason); remove the key or use the reference bridge plugin"
        }
    }

    /// A JSON type's name with its article: "an array", "a string".
    static func withArticle(_ typeName: String) -> String {
        (typeName.first.map { "aeiou".contains($0) } ?? false ? "an " : "a ") + typeName
    }

    /// A value as JSON text, cut to 200 bytes.
    static func excerpt(_ value: JSONValue) -> String {
        let bytes = value.serialized()
        return bytes.count <= 200 ? String(decoding: bytes, as: UTF8.self) : String(decoding: bytes.prefix(200), as: UTF8.self) + "…"
    }

    /// True when the fault is a JSON type mismatch rather than a bad value.
    public var isDecodingFault: Bool {
        if case .wrongType = self { return true }
        return false
    }

    /// True when the key is one randsnat does not implement (set to other than its default), as
    /// opposed to a value that is wrong for a key randsnat implements.
    public var isUnsupportedField: Bool {
        if case .unsupported = self { return true }
        return false
    }
}
