import Netlink
import RandSNATCore

/// The little randsnat reads of nf_tables (for telling an iptables-nft node from a legacy one).
struct NFTables {
    let socket: NetlinkSocket

    /// Rules in the tables where node nat rules live under nf_tables: `ip nat`/`ip6 nat` (iptables-nft)
    /// and `kube-proxy` (kube-proxy's nftables mode).
    func natRuleCount() throws(NetfilterError) -> Int {
        var count = 0
        for (family, table) in [(NFTFamily.ipv4, "nat"), (NFTFamily.ipv6, "nat"), (NFTFamily.ipv4, "kube-proxy"),
                                (NFTFamily.ipv6, "kube-proxy"), (NFTFamily.inet, "kube-proxy")] {
            var request = NetlinkRequest(NFTCommand.getRule, flags: [.request, .ack, .dump], sequence: socket.nextSequence(),
                                         header: NetfilterHeader(family: family))
            request.addString(NFTRuleAttribute.table, table)
            do throws(NetlinkError) {
                // Streamed: counted one reply at a time, never every rule of the node held at once.
                try socket.dump(request, operation: "nf_tables rule dump", object: "table \(table)") { _ in count += 1 }
            } catch where error.code == 2 /* ENOENT: no such table */ {
            } catch {
                throw NetfilterError(error)
            }
        }
        return count
    }
}

extension NFTables {
    /// Every nf_tables rule that masquerades or SNATs (native `masq`/`nat` expressions, or an
    /// iptables-nft `target` expression), with whether it is fully random.
    func snatRules() throws(NetfilterError) -> [NodeFacts.SNATRule] {
        let request = NetlinkRequest(NFTCommand.getRule, flags: [.request, .ack, .dump], sequence: socket.nextSequence(),
                                     header: NetfilterHeader(family: NFTFamily.unspecified))
        var rules: [NodeFacts.SNATRule] = []
        var positions: [String: Int] = [:]
        var failure: NetfilterError?
        typealias A = NFTExpressionAttribute
        // Streamed: one receive buffer at a time, not every rule of the node as a reply.
        do throws(NetlinkError) {
            try socket.dump(request, operation: "nf_tables rule dump", object: "all tables") { body in
                guard failure == nil else { return }
                let rule: NFTRuleDump
                do throws(NetfilterError) {
                    rule = try NFTDecoder.rule(NetlinkReply(type: NFTCommand.getRule.rawValue, flags: 0, sequence: 0, body: Array(body)))
                } catch {
                    failure = error
                    return
                }
                let family = NFTFamily.names[rule.family] ?? "?"
                let place = "\(family) \(rule.table) \(rule.chain)"
                positions[place, default: 0] += 1
                // Values loaded into registers by `immediate`, for the port range of masq/nat.
                var registers: [UInt32: [UInt8]] = [:]
                func ports(_ e: NFTExpressionDump, _ low: A, _ high: A) -> ClosedRange<UInt16>? {
                    guard let lowRegister = e.u32(low), let highRegister = e.u32(high),
                          let first = registers[lowRegister], let last = registers[highRegister], first.count >= 2, last.count >= 2 else { return nil }
                    let from = UInt16(first[0]) << 8 | UInt16(first[1]), to = UInt16(last[0]) << 8 | UInt16(last[1])
                    return from <= to ? from...to : nil
                }
                for e in rule.expressions {
                    var found: (String, UInt32, ClosedRange<UInt16>?)?
                    switch e.name {
                    case "immediate":
                        if let register = e.u32(A.immediateDestination),
                           let value = (try? e.data[A.immediateData]?.nestedAttributes())??[NFTDataAttribute.value]?.payload {
                            registers[register] = value
                        }
                    case "masq":
                        found = ("masquerade", e.u32(A.masqFlags) ?? 0, ports(e, A.masqPortMin, A.masqPortMax))
                    case "nat" where e.u32(A.natType) == NFTConstant.natSource:
                        found = ("snat", e.u32(A.natFlags) ?? 0, ports(e, A.natPortMin, A.natPortMax))
                    case "target":
                        let target = e.string(A.targetName) ?? ""
                        guard target == "MASQUERADE" || target == "SNAT" else { break }
                        let revision = e.u32(A.targetRevision) ?? 0
                        let (flags, ports) = RuleDecoder.natRange(payload: e.data[A.targetInfo]?.payload ?? [], compat: family == "ip" && revision == 0)
                        found = (target, flags, ports)
                    default:
                        break
                    }
                    if let (target, flags, ports) = found {
                        rules.append(NodeFacts.SNATRule(source: "nftables", chain: place, position: positions[place]!, target: target,
                                                        randomFully: flags & NFTConstant.randomFully != 0, ports: ports,
                                                        isRandsnat: rule.table == "randsnat", shadowsRandsnat: false))
                    }
                }
            }
        } catch {
            throw NetfilterError(error)
        }
        if let failure { throw failure }
        return rules
    }
}
