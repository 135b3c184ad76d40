internal import CNetfilterUAPI
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
                count += try socket.netfilterExchange(request, operation: "nf_tables rule dump", object: "table \(table)").count
            } catch NetfilterError.netlink(_, _, let code, _) where code == 2 /* ENOENT: no such table */ {
            }
        }
        return count
    }
}

extension NFTables {
    /// Every nf_tables rule that masquerades or SNATs (native `masq`/`nat` expressions, or an
    /// iptables-nft `target` expression), with whether it is fully random.
    func snatRules() throws(NetfilterError) -> [NodeFacts.SNATRule] {
        let request = NetlinkRequest(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_GETRULE.rawValue),
                                     flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP), sequence: socket.nextSequence(),
                                     family: UInt8(NFPROTO_UNSPEC))
        var rules: [NodeFacts.SNATRule] = []
        var positions: [String: Int] = [:]
        // Streamed: one receive buffer at a time, not every rule of the node as a reply.
        do {
            try socket.dump(request, operation: "nf_tables rule dump", object: "all tables") { body in
                guard body.count >= 4 else { return }  // nfgenmsg, then the attributes
                let attributes = NetlinkAttribute.parse(Array(body)[4...])
                let table = attributes[type: UInt16(NFTA_RULE_TABLE.rawValue)]?.string ?? "?"
                let chain = attributes[type: UInt16(NFTA_RULE_CHAIN.rawValue)]?.string ?? "?"
                let family = [2: "ip", 10: "ip6", 1: "inet", 7: "bridge", 3: "arp", 5: "netdev"][Int(body[0])] ?? "?"
                let place = "\(family) \(table) \(chain)"
                positions[place, default: 0] += 1
                // Values loaded into registers by `immediate`, for the port range of masq/nat.
                var registers: [UInt32: [UInt8]] = [:]
                func ports(_ data: [NetlinkAttribute], _ low: Int32, _ high: Int32) -> ClosedRange<UInt16>? {
                    guard let lowRegister = data[type: UInt16(low)]?.be32, let highRegister = data[type: UInt16(high)]?.be32,
                          let first = registers[lowRegister], let last = registers[highRegister], first.count >= 2, last.count >= 2 else { return nil }
                    let from = UInt16(first[0]) << 8 | UInt16(first[1]), to = UInt16(last[0]) << 8 | UInt16(last[1])
                    return from <= to ? from...to : nil
                }
                for element in attributes[type: UInt16(NFTA_RULE_EXPRESSIONS.rawValue)]?.nested ?? [] {
                    let expression = element.nested
                    let name = expression[type: UInt16(NFTA_EXPR_NAME.rawValue)]?.string ?? ""
                    let data = expression[type: UInt16(NFTA_EXPR_DATA.rawValue)]?.nested ?? []
                    var found: (String, UInt32, ClosedRange<UInt16>?)?
                    switch name {
                    case "immediate":
                        if let register = data[type: UInt16(NFTA_IMMEDIATE_DREG.rawValue)]?.be32,
                           let value = data[type: UInt16(NFTA_IMMEDIATE_DATA.rawValue)]?.nested[type: UInt16(NFTA_DATA_VALUE.rawValue)]?.payload {
                            registers[register] = value
                        }
                    case "masq":
                        found = ("masquerade", data[type: UInt16(NFTA_MASQ_FLAGS.rawValue)]?.be32 ?? 0,
                                 ports(data, Int32(NFTA_MASQ_REG_PROTO_MIN.rawValue), Int32(NFTA_MASQ_REG_PROTO_MAX.rawValue)))
                    case "nat" where data[type: UInt16(NFTA_NAT_TYPE.rawValue)]?.be32 == UInt32(NFT_NAT_SNAT.rawValue):
                        found = ("snat", data[type: UInt16(NFTA_NAT_FLAGS.rawValue)]?.be32 ?? 0,
                                 ports(data, Int32(NFTA_NAT_REG_PROTO_MIN.rawValue), Int32(NFTA_NAT_REG_PROTO_MAX.rawValue)))
                    case "target":
                        let target = data[type: UInt16(NFTA_TARGET_NAME.rawValue)]?.string ?? ""
                        guard target == "MASQUERADE" || target == "SNAT" else { break }
                        let revision = data[type: UInt16(NFTA_TARGET_REV.rawValue)]?.be32 ?? 0
                        let info = data[type: UInt16(NFTA_TARGET_INFO.rawValue)]?.payload ?? []
                        let (flags, ports) = RuleDecoder.natRange(payload: info, compat: family == "ip" && revision == 0)
                        found = (target, flags, ports)
                    default:
                        break
                    }
                    if let (target, flags, ports) = found {
                        rules.append(NodeFacts.SNATRule(source: "nftables", chain: place, position: positions[place]!, target: target,
                                                        randomFully: flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0, ports: ports,
                                                        isRandsnat: table == "randsnat", shadowsRandsnat: false))
                    }
                }
            }
        } catch {
            throw NetfilterError(error)
        }
        return rules
    }
}
