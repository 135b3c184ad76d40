import RandSNATCore

/// A rule randsnat writes: the entry, its bytes for libiptc, and how a person would write it.
struct EncodedRule: Equatable {
    let entry: XtablesEntry
    let bytes: [UInt8]
    let text: String

    init(_ entry: XtablesEntry, text: String) {
        self.entry = entry
        bytes = entry.encoded()
        self.text = text
    }

    var family: Family { entry.family }
    /// The target as libiptc names it: a chain, "RETURN", "MASQUERADE" or "SNAT".
    var targetName: String { entry.target.name }
    /// Jumps and RETURN are standard targets, whose verdict libiptc computes.
    var isStandardTarget: Bool {
        switch entry.target {
        case .jump, .verdict: true
        default: false
        }
    }
}

/// A planned `NATRule` as the xtables entry randsnat writes. Revisions are those iptables 1.8
/// writes, so `iptables-legacy-save` prints the rules as a person would write them.
enum RuleEncoder {
    /// Encodes `rule`; `setIndex` gives the kernel index of a set the rule matches.
    static func encode(_ rule: NATRule, family: Family, chain: String,
                       setIndex: (String) throws(NetfilterError) -> UInt16) throws(NetfilterError) -> EncodedRule {
        try EncodedRule(entry(rule, family: family, setIndex: setIndex), text: rule.rendered(in: chain))
    }

    static func entry(_ rule: NATRule, family: Family,
                      setIndex: (String) throws(NetfilterError) -> UInt16) throws(NetfilterError) -> XtablesEntry {
        var matches: [XtablesMatch] = []
        if let setMatch = rule.setMatch {
            matches.append(.set(.init(index: try setIndex(setMatch.set), directions: setMatch.directions)))
        }
        if let probability = rule.probability {
            // iptables' scale: 0x80000000 is a probability of 1.
            matches.append(.randomSample(probability: UInt32(min(0x8000_0000, max(0, (probability * 2_147_483_648.0).rounded())))))
        }
        matches.append(.comment(rule.comment))
        let target: XtablesTarget = switch rule.target {
        case .jump(let name): .jump(name)
        case .return: .verdict(.return)
        case .masquerade(let ports): .masquerade(natRange(addresses: nil, ports: ports))
        // IPv4 SNAT revision 0 takes the compat range; IPv6 starts at revision 1 (nf_nat_range).
        case .snat(let range, let ports): .snat(natRange(addresses: range, ports: ports), revision: family == .ipv4 ? 0 : 1)
        }
        var entry = XtablesEntry(family: family, destination: rule.destination.map(MaskedAddress.init),
                                 outInterface: rule.outInterface.map { InterfaceName($0, isWildcard: false) },
                                 proto: rule.proto?.number ?? 0, matches: matches, target: target)
        if family == .ipv6, rule.proto != nil { entry.flags.insert(.protocolGiven) }
        return entry
    }

    /// The NAT range with --random-fully always set: every SNAT randsnat writes picks ports fully at random.
    static func natRange(addresses: AddressRange?, ports: PortRange?) -> NATRange {
        var flags: NATRange.Flags = .randomFully
        if addresses != nil { flags.insert(.mapIPs) }
        if ports != nil { flags.insert(.protoSpecified) }
        return NATRange(flags: flags, addresses: addresses.map { $0.first...$0.last }, ports: ports.map { $0.first...$0.last })
    }
}
