/// A SNAT rule that runs before randsnat's and takes pod traffic to the internet: the first nat
/// rule that maps a connection wins, so randsnat's rule never sees that traffic.
///
/// The check, `EarlierSNAT.find`, is pure and reads `NATHookTable`s:
/// - **Before randsnat**: a rule runs before randsnat's when it is in a nat base chain at the
///   postrouting hook with a priority lower than or equal to randsnat's (both of randsnat's
///   backends, like the legacy nat table, sit at srcnat, 100; at equal priorities the order is the
///   order of registration, which nobody chooses), except in randsnat's own chain; in the legacy
///   nat table that randsnat itself uses, only rules before randsnat's jump in POSTROUTING count
///   (with no jump yet, all of them: randsnat appends it). Chains reached by jumps count as their
///   caller's rule. randsnat's own chains (`RANDSNAT-`) are never walked: with networks on both
///   backends, the legacy chains of one are randsnat's rules, not an earlier SNAT for the other.
/// - **Pod traffic**: a packet from a pod subnet to an address on the internet, unmarked, leaving by
///   an interface randsnat cannot name. A rule's conditions hold for it `.always`, `.never` or
///   `.maybe`: a source that covers every pod subnet always holds (one that misses them all never;
///   with no pod subnet known, a source restriction maybe holds); a negated destination always
///   holds (AWS's `! -d VPC`, flannel's `! -d 224.0.0.0/4`) and a positive one never does (the
///   rule is about those destinations, not the internet at large); interfaces always hold; a mark
///   or an address type is evaluated for mark 0 and unicast addresses; anything else (protocols,
///   ipsets, conntrack) maybe holds. An ACCEPT/RETURN whose conditions always hold ends the chain,
///   one that maybe holds makes the rest of the chain maybe.
/// - **Verdict**: `certain` when the path always holds, or maybe holds in a known primary's SNAT
///   chain (Calico names its pools by ipsets; the bridge plugin names each pod); else a rule that
///   may take some pod traffic.
public struct EarlierSNAT: Equatable, Sendable {
    /// Where the SNAT rule is: "iptables-legacy", "nat", chain, 1-based position.
    public let source: String
    public let table: String
    public let chain: String
    public let position: Int
    /// The SNAT rule and the jumps that lead to it, each as the operator writes it, outermost first.
    public let rules: [String]
    public let certain: Bool
    public let primary: KnownPrimary?

    public init(source: String, table: String, chain: String, position: Int, rules: [String], certain: Bool, primary: KnownPrimary?) {
        self.source = source
        self.table = table
        self.chain = chain
        self.position = position
        self.rules = rules
        self.certain = certain
        self.primary = primary
    }

    /// What doctor, STATUS and the installer say.
    public var text: String {
        let path = rules.count > 1 ? " (reached by " + rules.dropLast().map { "`\($0)`" }.joined(separator: ", then ") + ")" : ""
        let what = certain ? "SNATs pod traffic before randsnat's rule, so randsnat's rule never matches it"
                           : "may SNAT some pod traffic before randsnat's rule (under conditions randsnat does not read)"
        let remedy = primary?.remedy ?? "remove that rule or make it skip the pod subnets (e.g. `! -s POD_SUBNET`), so that randsnat's rule takes the pods' traffic"
        let place = rules.last?.hasPrefix("-A ") == true ? "\(source) \(table)" : "\(source) \(table) chain \(chain)"  // an iptables line names its chain
        return "\(place): `\(rules.last ?? "")`\(path) \(what)\(primary.map { "; it belongs to \($0.name)" } ?? ""): \(remedy)"
    }

    enum Reach: Int, Comparable {
        case never = 0, maybe = 1, always = 2
        static func < (lhs: Reach, rhs: Reach) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// The SNAT rules of `tables` that run before randsnat's and may take pod traffic.
    /// - Parameters:
    ///   - podSubnets: the pods' subnets (randsnat's subnet sets); empty when none is known yet.
    ///   - backend: where randsnat's rules are (or will be).
    public static func find(_ tables: [NATHookTable], podSubnets: [CIDR], backend: BackendKind) -> [EarlierSNAT] {
        var found: [EarlierSNAT] = []
        for table in tables where !table.isRandsnat {
            let randsnatsOwnTable = backend == .iptables && table.syntax == .iptables
            for hook in table.hooks where hook.priority <= NATHookTable.srcnatPriority {
                var walker = Walker(table: table, podSubnets: podSubnets, stopAtRandsnat: randsnatsOwnTable)
                walker.walk(hook.chain, reach: .always, path: [], depth: 0)
                found += walker.found
            }
        }
        return found
    }

    struct Walker {
        let table: NATHookTable
        let podSubnets: [CIDR]
        let stopAtRandsnat: Bool
        var found: [EarlierSNAT] = []
        var stopped = false

        /// Walks `chain`, collecting SNAT rules; sets `stopped` where randsnat's jump is (the callers stop too).
        mutating func walk(_ chain: String, reach entry: Reach, path: [(String, String)], depth: Int) {
            guard depth < 16, let rules = table.chains[chain] else { return }
            var reach = entry
            for (index, rule) in rules.enumerated() {
                if stopped { return }
                let text = rule.text(chain: chain, syntax: table.syntax)
                if case .jump(let target) = rule.verdict, target.hasPrefix(NetworkID.prefix) {
                    // randsnat's own chain: in the table randsnat writes, where its rules begin;
                    // elsewhere (another network of the node on the other backend) rules that are
                    // randsnat's too, never an earlier SNAT.
                    if stopAtRandsnat { stopped = true; return }
                    continue
                }
                let holds = EarlierSNAT.reach(rule.conditions, podSubnets: podSubnets)
                let here = min(reach, holds)
                switch rule.verdict {
                case .snat:
                    guard here > .never else { continue }
                    let trail = path + [(chain, text)]
                    let primary = KnownPrimary.recognise(chains: trail.map(\.0), table: table.table,
                                                         comments: trail.map(\.1))
                    found.append(EarlierSNAT(source: table.source, table: table.table, chain: chain, position: index + 1,
                                             rules: trail.map(\.1), certain: here == .always || primary != nil, primary: primary))
                case .jump(let target), .goto(let target):
                    guard here > .never else { continue }
                    walk(target, reach: here, path: path + [(chain, text)], depth: depth + 1)
                    if case .goto = rule.verdict, holds == .always { return }
                case .stop:
                    if holds == .always { return }
                    if holds == .maybe { reach = min(reach, .maybe) }
                case .none:
                    break
                }
            }
        }
    }

    /// Whether a rule's conditions hold for pod traffic to the internet (see the type's comment).
    static func reach(_ conditions: [NATHookRule.Condition], podSubnets: [CIDR]) -> Reach {
        conditions.map { reach($0, podSubnets: podSubnets) }.min() ?? .always
    }

    static func reach(_ condition: NATHookRule.Condition, podSubnets: [CIDR]) -> Reach {
        func flip(_ holds: Bool, _ inverted: Bool) -> Reach { holds != inverted ? .always : .never }
        switch condition {
        case .source(let cidr, let inverted):
            if cidr.prefix == 0 { return flip(true, inverted) }
            let pods = podSubnets.filter { $0.family == cidr.family }
            guard !pods.isEmpty else { return .maybe }
            let covered = pods.filter { cidr.prefix <= $0.prefix && cidr.contains($0.address) }
            let overlapping = pods.filter { cidr.contains($0.address) || $0.contains(cidr.address) }
            if covered.count == pods.count { return flip(true, inverted) }
            if overlapping.isEmpty { return flip(false, inverted) }
            return .maybe
        case .destination(let cidr, let inverted):
            return cidr.prefix == 0 ? flip(true, inverted) : flip(false, inverted)
        case .outInterface, .comment, .family:
            return .always
        case .mark(let value, let mask, let inverted):
            return flip(0 & mask == value, inverted)
        case .addressType(_, let types, let inverted):
            return flip(types & (1 << 1) != 0, inverted)  // RTN_UNICAST
        case .proto, .other:
            return .maybe
        }
    }
}

/// Primary CNIs that SNAT pod traffic themselves, recognised by the names of their chains, tables
/// and comments, with the setting that turns it off.
public enum KnownPrimary: String, CaseIterable, Sendable {
    case awsVPCCNI = "aws-vpc-cni"
    case referenceIPMasq = "ipmasq"
    case flannel
    case calico
    case cilium

    public var name: String {
        switch self {
        case .awsVPCCNI: "the AWS VPC CNI (aws-node)"
        case .referenceIPMasq: "the bridge/ptp plugin's ipMasq"
        case .flannel: "flannel"
        case .calico: "Calico's natOutgoing"
        case .cilium: "Cilium's masquerade"
        }
    }

    /// The setting to change.
    public var remedy: String {
        switch self {
        case .awsVPCCNI:
            "set AWS_VPC_K8S_CNI_EXTERNALSNAT=true on the aws-node DaemonSet (kubectl -n kube-system set env daemonset aws-node AWS_VPC_K8S_CNI_EXTERNALSNAT=true); aws-node then removes its SNAT chains"
        case .referenceIPMasq:
            "set \"ipMasq\": false in that bridge/ptp plugin's config (or install with --turn-off-primary-masquerade); pods added before keep their rule until they are re-created"
        case .flannel:
            "run flanneld with --ip-masq=false and set \"ipMasq\": false in the delegate of flannel's CNI config"
        case .calico:
            "set natOutgoing: false on the IP pool (calicoctl patch ippool POOL --patch '{\"spec\":{\"natOutgoing\":false}}')"
        case .cilium:
            "set enableIPv4Masquerade (and enableIPv6Masquerade) to false in Cilium's config (helm: --set enableIPv4Masquerade=false)"
        }
    }

    /// The primary whose chain, table or comment appears on the way to a SNAT rule.
    static func recognise(chains: [String], table: String, comments: [String]) -> KnownPrimary? {
        let tableName = table.split(separator: " ").last.map(String.init) ?? table
        if chains.contains(where: { $0.hasPrefix("AWS-SNAT-CHAIN") }) { return .awsVPCCNI }
        if chains.contains("FLANNEL-POSTRTG") || tableName.hasPrefix("flannel") { return .flannel }
        if chains.contains(where: { $0.hasPrefix("cali-") || $0.hasPrefix("nat-cali-") }) || tableName == "calico" { return .calico }
        if chains.contains(where: { $0.hasPrefix("CILIUM_POST") }) { return .cilium }
        // The reference ipmasq: a jump to CNI-<hash> commented `name: "NET" id: "CONTAINER"`, or
        // its nftables table (portmap's CNI-HOSTPORT-* chains are another thing).
        if tableName == "cni_plugins_masquerade" { return .referenceIPMasq }
        if chains.contains(where: { $0.hasPrefix("CNI-") && !$0.hasPrefix("CNI-HOSTPORT") }),
           comments.contains(where: { $0.contains("name: \\\"") || $0.contains("name: \"") }) {
            return .referenceIPMasq
        }
        return nil
    }
}
