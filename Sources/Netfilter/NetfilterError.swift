import Netlink
import SystemCalls
import RandSNATCore

/// A failure of the netfilter adapter; each case names the object and the library's reason.
public enum NetfilterError: Error, Equatable, Sendable, CustomStringConvertible {
    case lockTimeout(path: String, waitedSeconds: Double)
    case lockUnusable(path: String, reason: String)
    case tableUnavailable(table: String, family: Family, reason: String)
    case commitFailed(table: String, family: Family, reason: String)
    case ruleRejected(chain: String, rule: String, reason: String)
    case chainOperationFailed(operation: String, chain: String, reason: String)
    case netlink(operation: String, object: String, errno: Int32, reason: String)
    case setUnknown(name: String)

    public var description: String {
        switch self {
        case .lockTimeout(let path, let waited):
            "timed out after \(waited) s waiting for the lock \(path); another program (kube-proxy, iptables, another randsnat) holds it: try again later"
        case .lockUnusable(let path, let reason):
            "cannot use the lock file \(path): \(reason)"
        case .tableUnavailable(let table, let family, let reason):
            "cannot read the \(family == .ipv4 ? "iptables" : "ip6tables") \(table) table: \(reason); is the kernel's legacy xtables (ip\(family == .ipv4 ? "" : "6")table_\(table)) available?"
        case .commitFailed(let table, let family, let reason):
            "the kernel refused randsnat's rules for the \(family == .ipv4 ? "IPv4" : "IPv6") \(table) table: \(reason); check that the kernel supports MASQUERADE/SNAT with --random-fully and the set match (xt_set)"
        case .ruleRejected(let chain, let rule, let reason):
            "libiptc refused the rule for \(chain) (\(rule)): \(reason)"
        case .chainOperationFailed(let operation, let chain, let reason):
            "\(operation) \(chain) failed: \(reason)"
        case .netlink(let operation, let object, let errno, let reason):
            NetlinkError(operation: operation, object: object, code: errno, reason: reason).description
        case .setUnknown(let name):
            "ipset \(name) does not exist in this network namespace"
        }
    }

    /// True for a lock timeout and a kernel that did not answer in time: the runtime should retry
    /// (CNI code 11).
    public var isTransient: Bool {
        switch self {
        case .lockTimeout: return true
        case .netlink(_, _, let code, _): return code == Errno.timedOut.code
        default: return false
        }
    }
}

extension NetfilterError {
    /// A netlink failure of the netfilter adapter (ipset, ctnetlink, nf_tables): the same fields,
    /// the kernel's own message kept in the reason.
    @inline(never)
    init(_ error: NetlinkError) {
        let reason = error.kernelMessage.map { error.reason + "; the kernel says: " + $0 } ?? error.reason
        self = .netlink(operation: error.operation, object: error.object, errno: error.code, reason: reason)
    }

    /// A failed system call of the netfilter adapter, with its errno.
    @inline(never)
    init(_ error: SystemCallError) {
        self = .netlink(operation: error.operation, object: error.object, errno: error.errno.code, reason: error.errno.message)
    }

    /// The netlink failure this is, if it is one (to read its errno by name).
    public var netlinkError: NetlinkError? {
        guard case .netlink(let operation, let object, let errno, let reason) = self else { return nil }
        return NetlinkError(operation: operation, object: object, code: errno, reason: reason)
    }
}

extension NetlinkSocket {
    /// `exchange`, failing with a NetfilterError: the one place the adapter converts netlink errors.
    func netfilterExchange(_ message: NetlinkRequest, operation: String, object: String,
                           describe: (Int32) -> String = { Errno($0).message }) throws(NetfilterError) -> [NetlinkReply] {
        do {
            return try exchange(message, operation: operation, object: object, describe: describe)
        } catch {
            throw NetfilterError(error)
        }
    }

    /// A NETLINK_NETFILTER socket, failing with a NetfilterError.
    static func netfilterSocket() throws(NetfilterError) -> NetlinkSocket {
        do {
            return try NetlinkSocket(.netfilter)
        } catch {
            throw NetfilterError(error)
        }
    }
}
