/// Where randsnat keeps its pod records and network locks on a node: one place for the default and
/// for the variable that moves it (tests and the demo point it into their own work directories).
public enum RunDirectory {
    /// The default: tmpfs, gone at reboot with the pods it describes.
    public static let defaultPath = "/run/randsnat"
    /// The variable that overrides it (an empty value counts as unset).
    public static let variable = "RANDSNAT_RUN_DIR"

    /// The run directory this process uses, from its environment.
    public static func path(in environment: [String: String]) -> String {
        environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath
    }
}
