/// What a binary says about itself: `randsnat --version`, the installer's log of the binary it copies,
/// and the agent's `randsnat_build_info` metric all read this one place.
public enum BuildInfo {
    /// The release; the image tag, the Helm chart's appVersion and the DaemonSet's image follow it.
    public static let version = "0.1.0"
}
