/// What the running agent learned in its earlier passes, so that an idle nf_tables pass reads no set's elements.
///
/// A pass compares each member set with the records, member by member, which means listing the set
/// (one element dump of that set on nf_tables, one list of that ipset). On nf_tables the agent
/// remembers which addresses it last found to be exactly a set's members, and trusts that while the
/// records ask for the same addresses and the kernel's nf_tables notifications show no deletion in
/// randsnat's table (the loop calls `forgetKernel()` on a deletion, on lost notifications, and every
/// few periods: a member added by hand is found then). ipset sends no notifications: the legacy
/// backend's sets are listed in every pass. Subnet sets are checked when a network's pods changed
/// (a DEL leaves its subnet while the generation has members), and whenever the memory was forgotten.
public final class ReconcileMemory {
    /// Backends whose deletions the loop hears of (nf_tables when the notifications are subscribed).
    let notified: Set<BackendKind>
    /// The addresses last verified to be exactly the members, by backend and member set.
    var members: [String: Set<IPAddress>] = [:]
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
