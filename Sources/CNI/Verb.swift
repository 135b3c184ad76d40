/// The operation a runtime asks for in `CNI_COMMAND`.
public enum Verb: String, CaseIterable, Sendable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case status = "STATUS"
    case gc = "GC"
    case version = "VERSION"

    /// The CNI_* variables this verb cannot run without (spec 1.1.0, "Parameters").
    public var requiredVariables: [EnvironmentKey] {
        switch self {
        case .add, .check: [.command, .containerID, .netns, .ifName, .path]
        case .del: [.command, .containerID, .ifName, .path]
        case .gc, .status: [.command, .path]
        case .version: [.command]
        }
    }

    /// The oldest config version in which the spec defines this verb.
    public var minimumVersion: CNIVersion? {
        switch self {
        case .check: CNIVersion(0, 4, 0)
        case .gc, .status: CNIVersion(1, 1, 0)
        case .add, .del, .version: nil
        }
    }
}

/// The names of the CNI_* environment variables.
public enum EnvironmentKey: String, CaseIterable, Sendable {
    case command = "CNI_COMMAND"
    case containerID = "CNI_CONTAINERID"
    case netns = "CNI_NETNS"
    case ifName = "CNI_IFNAME"
    case args = "CNI_ARGS"
    case path = "CNI_PATH"
}
