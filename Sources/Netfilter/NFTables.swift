import CNetfilter
import Netlink
import RandSNATCore

/// The little randsnat reads of nf_tables (for telling an iptables-nft node from a legacy one).
struct NFTables {
    let socket: NetlinkSocket

    /// Rules in the tables where node nat rules live under nf_tables: `ip nat`/`ip6 nat` (iptables-nft)
    /// and `kube-proxy` (kube-proxy's nftables mode).
    func natRuleCount() throws(NetfilterError) -> Int {
        var count = 0
        for (family, table) in [(NFPROTO_IPV4, "nat"), (NFPROTO_IPV6, "nat"), (NFPROTO_IPV4, "kube-proxy"),
                                (NFPROTO_IPV6, "kube-proxy"), (NFPROTO_INET, "kube-proxy")] {
            var request = NetlinkRequest(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_GETRULE.rawValue),
                                         flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP),
                                         sequence: socket.nextSequence(), family: UInt8(family))
            request.addString(UInt16(NFTA_RULE_TABLE.rawValue), table)
            do {
                count += try socket.exchange(request, operation: "nf_tables rule dump", object: "table \(table)").count
            } catch where error.code == 2 /* ENOENT: no such table */ {
            } catch {
                throw .netlink(operation: error.operation, object: error.object, errno: error.code, reason: error.reason)
            }
        }
        return count
    }
}
