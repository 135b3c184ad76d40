import CNetlink
import Testing
@testable import Netlink

/// Which nf_tables notifications make the agent read its sets again: deletions (DELTABLE, DELCHAIN,
/// DELRULE, DELSET, DELSETELEM: 2, 5, 8, 11, 14 in linux/netfilter/nf_tables.h) in the watched table.
struct WakeupsDeletionTests {
    static func notification(subsystem: Int32 = NFNL_SUBSYS_NFTABLES, command: UInt16, table: String?) -> NetlinkReply {
        let body = [UInt8(1 /* NFPROTO_INET */), 0, 0, 0] + NetlinkRequest.attributes { attributes in
            if let table { attributes.addString(UInt16(1), table) }  // NFTA_*_TABLE
        }
        return NetlinkReply(type: UInt16(subsystem) << 8 | command, flags: 0, sequence: 0, body: body)
    }

    static let rows: [(name: String, message: NetlinkReply, table: String?, deletion: Bool)] = [
        ("an element deleted in the table", notification(command: 14, table: "randsnat"), "randsnat", true),
        ("a rule deleted in the table", notification(command: 8, table: "randsnat"), "randsnat", true),
        ("a table deleted, any table watched", notification(command: 2, table: "other"), nil, true),
        ("a deletion without the table attribute counts", notification(command: 11, table: nil), "randsnat", true),
        ("an element added", notification(command: 12, table: "randsnat"), "randsnat", false),
        ("a deletion in another table", notification(command: 14, table: "other"), "randsnat", false),
        ("ipset's command 2 is not nf_tables'", notification(subsystem: NFNL_SUBSYS_IPSET, command: 2, table: "randsnat"), "randsnat", false),
    ]

    @Test(arguments: 0..<7)
    func deletionsInTheWatchedTableAreSeen(row: Int) {
        #expect(Self.rows.count == 7)
        let row = Self.rows[row]
        #expect(Wakeups.isDeletion(row.message, in: row.table) == row.deletion, "\(row.name)")
    }
}
