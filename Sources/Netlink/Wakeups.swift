internal import CNetlink
internal import Glibc
import SystemCalls

/// What wakes a long-running randsnat process (the agent): a signal to stop, a change in a watched
/// directory (inotify), a change of the nf_tables ruleset (a netlink multicast group), or the end
/// of the resync period. Every descriptor is in this file.
public final class Wakeups {
    public enum Reason: Equatable, Sendable {
        case stop
        case files
        case nftables
        case period
    }

    private let signalFD: Int32
    private let inotifyFD: Int32
    /// nil when nf_tables notifications are not wanted or the kernel has none.
    private let nftables: KernelSocket?

    /// nf_tables' multicast group (NFNLGRP_NFTABLES in linux/netfilter/nfnetlink.h): every
    /// committed ruleset change, from any process, is sent to it.
    static let nftablesGroup = Int32(NFNLGRP_NFTABLES.rawValue)
    /// The nf_tables notifications that take something away (linux/netfilter/nf_tables.h:
    /// NFT_MSG_DELTABLE, DELCHAIN, DELRULE, DELSET, DELSETELEM; the kernel notifies a DESTROY* request
    /// as the DEL* message).
    static let nftablesDeletions: Set<UInt8> = [2, 5, 8, 11, 14]
    /// The table attribute's type in each of those messages (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
    /// NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE are all 1).
    static let nftablesTableAttribute: UInt16 = 1

    /// Deletions are counted in this nf_tables table only (nil: in any).
    private let deletionsTable: String?
    private var deletionSeen = false

    /// - Parameters:
    ///   - directories: watched for files written, renamed, created or removed in them.
    ///   - nftables: subscribe to nf_tables change notifications.
    ///   - deletionsIn: the nf_tables table whose deletions `takeDeletions()` reports (nil: any table).
    public init(directories: [String], nftables: Bool, deletionsIn table: String? = nil) throws(NetlinkError) {
        deletionsTable = table
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigprocmask(SIG_BLOCK, &signals, nil)
        signalFD = signalfd(-1, &signals, Int32(SFD_CLOEXEC))
        inotifyFD = inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK))
        guard signalFD >= 0, inotifyFD >= 0 else {
            throw NetlinkError(SystemCallError("opening", "signalfd/inotify"))
        }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE)
        for directory in directories where inotify_add_watch(inotifyFD, directory, mask) < 0 {
            throw NetlinkError(SystemCallError("watching", directory))
        }
        self.nftables = nftables ? Self.nftablesSocket() : nil
    }

    /// A socket in nf_tables' multicast group; nil when the kernel has none.
    private static func nftablesSocket() -> KernelSocket? {
        guard let socket = try? KernelSocket(.netfilter, nonBlocking: true), (try? socket.join(group: nftablesGroup)) != nil else { return nil }
        return socket
    }

    deinit {
        close(signalFD)
        close(inotifyFD)
    }

    /// True when nf_tables notifications arrive here.
    public var watchesNFTables: Bool { nftables != nil }

    /// Waits for the first wake-up or `seconds`; then lets a burst settle for `settle` seconds and
    /// drains it, so that a writer's several steps (or randsnat's own changes) make one wake-up.
    public func wait(seconds: Double, settle: Double = 0.02) -> Reason {
        var fds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0), pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: nftables?.descriptor.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&fds, nfds_t(fds.count), Int32(max(0, seconds) * 1000))
        guard ready > 0 else { return .period }
        if fds[0].revents != 0 { return .stop }
        let reason: Reason = fds[1].revents != 0 ? .files : .nftables
        usleep(UInt32(settle * 1_000_000))
        drain()
        return reason
    }

    /// Reads away what is queued (the events of randsnat's own writes, after a pass), noting any
    /// nf_tables deletion in the watched table, and lost notifications (ENOBUFS), for `takeDeletions`.
    public func drain() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        let inotify = FileDescriptor(rawValue: inotifyFD)
        while let count = try? inotify.read(into: buffer), count > 0 {}
        guard let nftables else { return }
        while true {
            let count: Int
            do {
                count = try nftables.receive(into: buffer)
            } catch where error == .noBufferSpace {
                deletionSeen = true  // the socket overflowed: some notifications are lost
                continue
            } catch {
                return  // EAGAIN: nothing more queued
            }
            guard count > 0 else { return }
            if !deletionSeen {
                let bytes = ArraySlice(UnsafeRawBufferPointer(rebasing: buffer[..<min(count, buffer.count)]))
                deletionSeen = NetlinkReply.parse(bytes).contains(where: isDeletion)
            }
        }
    }

    /// Whether an nf_tables deletion in the watched table (or a loss of notifications) was seen since
    /// the last call: then something may have taken elements out, and the caller reads its sets again.
    public func takeDeletions() -> Bool {
        defer { deletionSeen = false }
        return deletionSeen
    }

    func isDeletion(_ message: NetlinkReply) -> Bool { Self.isDeletion(message, in: deletionsTable) }

    /// Whether `message` is an nf_tables deletion in `table` (nil: in any table).
    static func isDeletion(_ message: NetlinkReply, in table: String?) -> Bool {
        let type = NetfilterMessageType(type: message.type)
        guard type.subsystem == .nftables, nftablesDeletions.contains(type.command) else { return false }
        guard let table else { return true }
        // A message without the attribute is counted: better one pass too many than a loss unseen.
        return message.nfAttributes[type: nftablesTableAttribute].map { $0.string == table } ?? true
    }
}
