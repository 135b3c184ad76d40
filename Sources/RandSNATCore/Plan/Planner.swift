/// What must exist in one family's nat table and sets for a network: written once per network and
/// generation, shared by all its pods.
///
///     POSTROUTING
///       └─ -m set --match-set <P> src ─→ RANDSNAT-<net>-<gen>
///            -m set --match-set <S> dst      -j RETURN    to a pod subnet of the network
///            -d 224.0.0.0/4                  -j RETURN    multicast
///            -d 169.254.0.0/16               -j RETURN    unless masqLinkLocal
///            -d <nonMasqueradeCIDRs...>      -j RETURN
///            [-o <egressInterface>]          -j MASQUERADE --random-fully   (or SNAT --to-source)
public struct FamilyPlan: Equatable, Sendable {
    public let network: String
    public let names: ObjectNames
    /// The one rule in POSTROUTING that leads to the chain.
    public let jump: NATRule
    public let rules: [NATRule]

    public var family: Family { names.family }
}

/// The per-pod state: one member in the member set per address, and the address's subnet in the
/// subnet set (shared with the other pods of that subnet). Adding or removing it never touches the
/// nat table.
public struct PodPlan: Equatable, Sendable {
    public struct Member: Equatable, Sendable {
        public let address: PodAddress
        public let names: ObjectNames
    }

    public let attachment: Attachment
    public let members: [Member]

    public var families: [Family] { Array(Set(members.map(\.address.family))).sorted() }
}

/// Turns a config and a pod's addresses into the plans above. Pure.
public enum Planner {
    /// The chain name in POSTROUTING's jump comment, so that GC and doctor can tell whose it is.
    public static func jumpComment(network: String, generation: String) -> String {
        "randsnat: name: \"\(network)\" generation: \(generation)"
    }

    /// 7 hex digits of the rule-relevant config: a config change makes a new generation, whose
    /// objects exist beside the old ones until the old generation's last pod is gone.
    public static func generation(of config: PluginConfig) -> String {
        var text = "v1"
        text += "|nm=" + config.nonMasqueradeCIDRs.map(\.description).joined(separator: ",")
        text += "|ll=\(config.masqLinkLocal)"
        text += "|ts=" + config.toSource.map(\.description).joined(separator: ",")
        text += "|pr=" + (config.portRange?.description ?? "")
        text += "|eg=" + (config.egressInterface ?? "")
        return String(SHA256.hex(text).prefix(7))
    }

    public static func family(_ family: Family, network: String, config: PluginConfig) -> FamilyPlan {
        let names = ObjectNames(id: NetworkID(network: network), generation: generation(of: config), family: family)
        let tag = "randsnat: name: \"\(network)\""
        var rules: [NATRule] = [
            NATRule(setMatch: .init(set: names.subnetSet, directions: [.destination]),
                    comment: "\(tag): pod subnets", target: .return),
            NATRule(destination: family == .ipv4 ? .ipv4Multicast : .ipv6Multicast, comment: "\(tag): multicast", target: .return),
        ]
        if !config.masqLinkLocal {
            rules.append(NATRule(destination: family == .ipv4 ? .ipv4LinkLocal : .ipv6LinkLocal,
                                 comment: "\(tag): link-local", target: .return))
        }
        for cidr in config.nonMasqueradeCIDRs where cidr.family == family {
            rules.append(NATRule(destination: cidr, comment: "\(tag): nonMasqueradeCIDRs", target: .return))
        }
        rules += snatRules(family: family, config: config, tag: tag)
        let jump = NATRule(setMatch: .init(set: names.memberSet, directions: [.source]),
                           comment: jumpComment(network: network, generation: names.generation),
                           target: .jump(names.chain))
        return FamilyPlan(network: network, names: names, jump: jump, rules: rules)
    }

    /// The SNAT rules, all with --random-fully. A port range is only valid with a protocol that has
    /// ports (iptables refuses `--to-ports` without `-p`), so with `portRange` there is one group of
    /// rules each for tcp, udp and sctp, then one without ports for every other protocol (ICMP).
    static func snatRules(family: Family, config: PluginConfig, tag: String) -> [NATRule] {
        let sources = config.toSource.filter { $0.family == family }
        var groups: [(proto: NATRule.PortProtocol?, ports: PortRange?)] = []
        if let ports = config.portRange { groups = NATRule.PortProtocol.allCases.map { ($0, ports) } }
        groups.append((nil, nil))
        var rules: [NATRule] = []
        for group in groups {
            let label = group.proto.map { " \($0.rawValue)" } ?? ""
            if sources.isEmpty {
                rules.append(NATRule(proto: group.proto, outInterface: config.egressInterface,
                                     comment: "\(tag): masquerade\(label)", target: .masquerade(ports: group.ports)))
                continue
            }
            // Rule i of n takes 1/(n-i) of what reaches it, so each source gets 1/n of new flows.
            for (index, range) in sources.enumerated() {
                let remaining = sources.count - index
                rules.append(NATRule(proto: group.proto, outInterface: config.egressInterface,
                                     probability: remaining > 1 ? 1.0 / Double(remaining) : nil,
                                     comment: "\(tag): toSource \(range)\(label)", target: .snat(range, ports: group.ports)))
            }
        }
        return rules
    }

    public static func pod(_ attachment: Attachment, addresses: [PodAddress], config: PluginConfig) -> PodPlan {
        let id = NetworkID(network: attachment.network)
        let generation = generation(of: config)
        let members = addresses.map {
            PodPlan.Member(address: $0, names: ObjectNames(id: id, generation: generation, family: $0.family))
        }
        return PodPlan(attachment: attachment, members: members)
    }
}
