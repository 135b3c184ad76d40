internal import Glibc

// What tells a leftover file from one in use: the process that wrote it is gone, a directory is
// empty, a lock file is still the one its name points to. Used to remove what dead writers and gone
// networks leave in the run directory without racing a live one.

extension ThisProcess {
    /// The effective user id: the owner a file this process writes gets (root on a node).
    public static var effectiveUserID: UInt32 { UInt32(geteuid()) }

    /// True while a process with this id exists in this process's pid namespace (kill(pid, 0)
    /// succeeds, or fails only for lack of permission). A process in another pid namespace is not
    /// seen: callers decide under a lock that excludes it as well.
    public static func exists(_ pid: Int) -> Bool {
        guard pid > 0, pid <= Int(Int32.max) else { return false }
        return kill(pid_t(pid), 0) == 0 || errno == EPERM
    }
}

extension FileDescriptor {
    /// True when `path` still names the file this descriptor has open (same device and inode): false
    /// once the name was removed or now names another file (a pruned lock file, say).
    public func isStillNamed(_ path: String) -> Bool {
        var open = stat()
        var named = stat()
        guard fstat(rawValue, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }
}

extension Files {
    /// Removes a directory when it is empty: true when it is gone (or was not there), false when it
    /// holds something.
    public static func removeEmptyDirectory(_ path: String) throws(SystemCallError) -> Bool {
        if rmdir(path) == 0 || errno == ENOENT { return true }
        if errno == ENOTEMPTY || errno == EEXIST { return false }
        throw SystemCallError("removing the directory", path)
    }
}
