/// What the running agent learned in its earlier passes, so that an idle pass reads no set's elements.
///
/// nf_tables gives no element count with a set, so a member count there means listing the set. The
/// agent instead remembers the count it last verified per member set, and trusts it while the
/// kernel's nf_tables notifications show no deletion in randsnat's table (the loop calls
/// `forgetKernel()` on a deletion, on lost notifications, and every few periods). The legacy
/// backend reads an ipset's count from its header, cheaply, and sends no notifications: it is always
/// asked. Subnet sets are checked when a network's pods changed (a DEL leaves its subnet while the
/// generation has members), and whenever the memory was forgotten.
public final class ReconcileMemory {
    /// Backends whose deletions the loop hears of (nf_tables when the notifications are subscribed).
    let notified: Set<BackendKind>
    /// Verified member counts, by backend and member set.
    var members: [String: Int] = [:]
    /// Per network, the attachments whose subnets were last checked.
    var subnetsCheckedFor: [String: Set<Attachment>] = [:]
    /// Networks whose stray chains were looked for (a whole-table read on legacy).
    var straysCheckedFor: Set<String> = []

    public init(notified: Set<BackendKind>) {
        self.notified = notified
    }

    /// Forgets every count and check: the next pass reads the sets again.
    public func forgetKernel() {
        members = [:]
        subnetsCheckedFor = [:]
        straysCheckedFor = []
    }

    static func key(_ kind: BackendKind, _ names: ObjectNames) -> String { kind.rawValue + " " + names.memberSet }
}
