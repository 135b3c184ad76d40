/// A CNI_NETNS randsnat will not work in, found before anything is changed. The edge,
/// `randsnat/ErrorMapping.swift`, gives each case its CNI code.
public enum NetnsRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist (ADD and CHECK need the pod's namespace).
    case missing(path: String)
    /// The path is randsnat's own network namespace (the node's), not a pod's.
    case ownNamespace(path: String)

    public var description: String {
        switch self {
        case let .missing(path): "CNI_NETNS=\"\(path)\" does not exist"
        case let .ownNamespace(path): "CNI_NETNS=\"\(path)\" is randsnat's own network namespace, not a pod's"
        }
    }

    /// What to do about it (the CNI error's `details`).
    public var details: String {
        switch self {
        case .missing: "the runtime must pass the path of the pod's network namespace"
        case .ownNamespace: "the runtime must pass the pod's network namespace; randsnat changed nothing"
        }
    }
}
