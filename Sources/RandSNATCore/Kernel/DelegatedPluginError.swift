/// Running a delegated plugin (IPAM) went wrong before it could answer with a CNI error of its own.
/// (An error the plugin prints is its answer and passes on as the `CNIError` it printed.) The edge,
/// `randsnat/ErrorMapping.swift`, gives each case its CNI code.
public enum DelegatedPluginError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No executable of that name in CNI_PATH.
    case notFound(plugin: String, searchPath: [String])
    /// It exited 0 but printed something that is not JSON.
    case unreadableResult(plugin: String, reason: String)
    /// It printed more than randsnat reads of a plugin (it was ended).
    case oversizedResult(plugin: String, limit: Int)
    /// It exited 0 but printed nothing where a result was needed (ADD).
    case noResult(plugin: String)
    /// It failed without printing a CNI error.
    case failed(plugin: String, verb: String, exitStatus: Int32)
    /// randsnat could not start it: what it was doing (making pipes, running `path`) and why.
    case cannotRun(path: String, what: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(plugin, searchPath):
            "IPAM plugin \"\(plugin)\" not found in CNI_PATH (\(searchPath.joined(separator: ":")))"
        case let .unreadableResult(plugin, _):
            "IPAM plugin \"\(plugin)\" printed a result that is not JSON"
        case let .oversizedResult(plugin, limit):
            "IPAM plugin \"\(plugin)\" printed more than \(limit) bytes; it was stopped and its output ignored"
        case let .noResult(plugin):
            "IPAM plugin \"\(plugin)\" printed no result"
        case let .failed(plugin, verb, exitStatus):
            "IPAM plugin \"\(plugin)\" \(verb) failed with exit status \(exitStatus)"
        case let .cannotRun(path, what, reason):
            "cannot \(what) \(path): \(reason)"
        }
    }

    /// What to do about it (the CNI error's `details`).
    public var details: String {
        switch self {
        case .notFound: "install it (Debian: containernetworking-plugins) or fix ipam.type"
        case let .unreadableResult(_, reason): reason
        case .noResult: "an IPAM plugin's ADD must print its result; check the plugin and its config"
        case .failed, .cannotRun, .oversizedResult: ""
        }
    }
}
