/// One invocation's checked inputs.
public struct Request: Sendable {
    public let environment: Environment
    public let config: NetworkConfig

    public init(environment: Environment, config: NetworkConfig) {
        self.environment = environment
        self.config = config
    }
}

/// What a plugin does for each verb; the dispatcher handles the contract around it.
public protocol CNIPlugin {
    /// Returns the result to print (for a chained plugin, `prevResult` passed on).
    func add(_ request: Request) throws -> JSONValue
    func del(_ request: Request) throws
    func check(_ request: Request) throws
    func status(_ request: Request) throws
    func gc(_ request: Request) throws
}

/// Runs one invocation the way the spec describes it: env and stdin in, one JSON document and an
/// exit status out. Holds no global state, so tests run it with a dictionary and a byte array.
public struct Dispatcher {
    /// The largest config accepted on stdin; a config with a large prevResult is a few kB.
    public static let maxInputBytes = 1 << 20

    public struct Outcome: Sendable {
        public let stdout: [UInt8]
        public let exitCode: Int32
    }

    let plugin: any CNIPlugin
    /// Turns an error of a lower layer into the CNI error to print (CNIError passes through).
    let mapError: (any Error) -> CNIError

    public init(plugin: any CNIPlugin, mapError: @escaping (any Error) -> CNIError) {
        self.plugin = plugin
        self.mapError = mapError
    }

    /// Runs the verb named in `environment`. `inputTooLarge` says stdin held more than
    /// `maxInputBytes` (the caller stops reading there).
    public func run(environment: [String: String], stdin: [UInt8], inputTooLarge: Bool = false) -> Outcome {
        var version: CNIVersion?
        do {
            if environment[EnvironmentKey.command.rawValue]?.utf8Equals(Verb.version.rawValue) == true {
                return Outcome(stdout: versionInfo().serialized() + [0x0A], exitCode: 0)
            }
            if inputTooLarge {
                throw CNIError(.decodingFailure, "network config on stdin is larger than \(Self.maxInputBytes) bytes",
                               details: "a CNI config with prevResult is a few kilobytes; check what the runtime sends")
            }
            version = NetworkConfig.versionHint(stdin)
            let env = try Environment.parse(environment)
            let config = try NetworkConfig.parse(stdin)
            version = config.cniVersion
            if let minimum = env.verb.minimumVersion, config.cniVersion < minimum {
                throw CNIError(.incompatibleVersion,
                               "\(env.verb.rawValue) needs cniVersion \(minimum) or later; the config says \(config.cniVersion)",
                               details: "raise cniVersion in the network config")
            }
            let request = Request(environment: env, config: config)
            switch env.verb {
            case .add:
                let result = try plugin.add(request)
                return Outcome(stdout: result.serialized() + [0x0A], exitCode: 0)
            case .del: try plugin.del(request)
            case .check: try plugin.check(request)
            case .status: try plugin.status(request)
            case .gc: try plugin.gc(request)
            case .version: break
            }
            return Outcome(stdout: [], exitCode: 0)
        } catch {
            let cniError = (error as? CNIError) ?? mapError(error)
            return Outcome(stdout: cniError.json(version: version).serialized() + [0x0A], exitCode: 1)
        }
    }

    func versionInfo() -> JSONValue {
        .object([
            "cniVersion": .string(CNIVersion.current.description),
            "supportedVersions": .array(CNIVersion.supported.map { .string($0.description) }),
        ])
    }
}
