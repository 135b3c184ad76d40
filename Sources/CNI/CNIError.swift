/// The error a plugin prints on stdout, in the shape the spec gives (`code`, `msg`, `details`).
public struct CNIError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The spec's well-known error codes.
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let incompatibleVersion = Code(rawValue: 1)
        public static let unsupportedField = Code(rawValue: 2)
        public static let containerUnknown = Code(rawValue: 3)
        public static let invalidEnvironment = Code(rawValue: 4)
        public static let ioFailure = Code(rawValue: 5)
        public static let decodingFailure = Code(rawValue: 6)
        public static let invalidConfig = Code(rawValue: 7)
        /// `CNI_NETNS` is not a namespace the plugin may use (libcni's `ErrInvalidNetNS`, which its
        /// skel returns when `CNI_NETNS` is the plugin's own namespace; reserved, not in the spec's table).
        public static let invalidNetworkNamespace = Code(rawValue: 8)
        public static let tryAgainLater = Code(rawValue: 11)
        /// STATUS: the plugin cannot serve ADD requests.
        public static let pluginNotAvailable = Code(rawValue: 50)
        /// STATUS: the plugin's resources are exhausted for now.
        public static let pluginLimitedConnectivity = Code(rawValue: 51)
        public static let `internal` = Code(rawValue: 999)
    }

    public let code: Code
    public let msg: String
    public let details: String

    public init(_ code: Code, _ msg: String, details: String = "") {
        self.code = code
        self.msg = msg
        self.details = details
    }

    public var description: String {
        details.isEmpty ? "CNI error \(code.rawValue): \(msg)" : "CNI error \(code.rawValue): \(msg): \(details)"
    }

    /// The JSON the spec asks for, in `version` (the config's, or the newest when it is unknown).
    public func json(version: CNIVersion?) -> JSONValue {
        var members: [JSONKey: JSONValue] = [
            "cniVersion": .string((version ?? .current).description),
            "code": .int(Int64(code.rawValue)),
            "msg": .string(msg),
        ]
        if !details.isEmpty { members["details"] = .string(details) }
        return .object(members)
    }
}
