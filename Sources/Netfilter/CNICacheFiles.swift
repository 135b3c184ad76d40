import RandSNATCore
import SystemCalls

/// libcni's result cache (`/var/lib/cni/results/<network>-<container>-<ifname>`), which the runtime
/// (containerd, CRI-O, podman) writes: read as every file randsnat does not write.
public enum CNICacheFiles {
    /// A cache file's bytes: a regular file (links followed) of at most `LibcniCache.entryLimit`,
    /// opened without blocking; nil when it does not exist. Anything else is refused with the file
    /// and the reason (log it and go on to the next file).
    public static func read(_ path: String) throws(FileRefusal) -> [UInt8]? {
        try Files.regularFile(path, limit: LibcniCache.entryLimit)?.bytes
    }
}
