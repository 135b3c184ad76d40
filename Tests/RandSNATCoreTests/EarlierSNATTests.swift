import Testing
@testable import RandSNATCore

/// The shadowing check over tables as the kernel layer reads them.
struct EarlierSNATTests {
    typealias Rule = NATHookRule
    static let pods = [CIDR("198.18.0.0/24")!, CIDR("2001:db8:18::/64")!]
    static func cidr(_ text: String) -> CIDR { CIDR(text)! }
    static let masquerade = Rule.Verdict.snat(.init(name: "MASQUERADE", randomFully: false))
    static let randsnatJump = Rule([.other("-m set --match-set RANDSNAT-abc-P4 src")], .jump("RANDSNAT-abc"))

    static func legacy(_ postrouting: [Rule], chains: [String: [Rule]] = [:]) -> NATHookTable {
        NATHookTable(source: "iptables-legacy", table: "nat", syntax: .iptables, hooks: [.init(chain: "POSTROUTING", priority: 100)],
                     chains: chains.merging(["POSTROUTING": postrouting]) { _, new in new })
    }

    static func nft(_ table: String, priority: Int, _ rules: [Rule]) -> NATHookTable {
        NATHookTable(source: "nftables", table: table, syntax: .nft, hooks: [.init(chain: "post", priority: priority)], chains: ["post": rules])
    }

    // AWS VPC CNI 1.x as it writes its chain (iptables-save of an EKS node).
    static let aws = legacy([Rule([.comment("AWS SNAT CHAIN")], .jump("AWS-SNAT-CHAIN-0")), randsnatJump], chains: [
        "AWS-SNAT-CHAIN-0": [
            Rule([.destination(cidr("198.19.0.0/16"), inverted: false), .comment("AWS SNAT CHAIN VPC CIDR")], .stop("RETURN")),
            Rule([.outInterface("vlan+", inverted: true), .comment("AWS, SNAT"), .addressType(source: false, types: 1 << 2, inverted: true)],
                 .snat(.init(name: "SNAT", toSource: "198.19.0.1", randomFully: true))),
        ],
    ])

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let tables: [NATHookTable]
        let pods: [CIDR]
        let backend: BackendKind
        /// (chain, position, certain, primary) of each finding.
        let expected: [String]
        var testDescription: String { name }
    }

    static func describe(_ found: [EarlierSNAT]) -> [String] {
        found.map { "\($0.chain)#\($0.position) \($0.certain ? "certain" : "maybe") \($0.primary?.rawValue ?? "-")" }
    }

    static let cases: [Case] = [
        Case(name: "AWS VPC CNI's chain before randsnat's jump", tables: [aws], pods: pods, backend: .iptables,
             expected: ["AWS-SNAT-CHAIN-0#2 certain aws-vpc-cni"]),
        Case(name: "AWS with no pod subnet known yet (the installer)", tables: [aws], pods: [], backend: .iptables,
             expected: ["AWS-SNAT-CHAIN-0#2 certain aws-vpc-cni"]),
        Case(name: "AWS's chain after randsnat's jump does not shadow",
             tables: [legacy([randsnatJump, Rule([], .jump("AWS-SNAT-CHAIN-0"))], chains: aws.chains)], pods: pods, backend: .iptables, expected: []),
        Case(name: "with randsnat on nftables, the whole legacy table runs at the same priority",
             tables: [legacy([randsnatJump, Rule([], .jump("AWS-SNAT-CHAIN-0"))], chains: aws.chains)], pods: pods, backend: .nftables,
             expected: ["AWS-SNAT-CHAIN-0#2 certain aws-vpc-cni"]),
        // Another network of the node on iptables (fails on 5df3a31: its MASQUERADE was "an earlier SNAT").
        Case(name: "with randsnat on nftables, its own legacy chain of another network is no earlier SNAT",
             tables: [legacy([randsnatJump], chains: ["RANDSNAT-abc": [
                Rule([.destination(cidr("198.19.0.0/16"), inverted: false)], .stop("RETURN")),
                Rule([], .snat(.init(name: "MASQUERADE", randomFully: true)))]])], pods: pods, backend: .nftables, expected: []),
        Case(name: "a masquerade of everything leaving an interface", tables: [legacy([Rule([.outInterface("eth0", inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: ["POSTROUTING#1 certain -"]),
        Case(name: "a source that misses the pod subnets", tables: [legacy([Rule([.source(cidr("10.9.0.0/16"), inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "a source that covers them", tables: [legacy([Rule([.source(cidr("198.18.0.0/16"), inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: ["POSTROUTING#1 certain -"]),
        Case(name: "a source inside one pod subnet maybe matches", tables: [legacy([Rule([.source(cidr("198.18.0.5/32"), inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: ["POSTROUTING#1 maybe -"]),
        Case(name: "a source with no pod subnet known maybe matches", tables: [legacy([Rule([.source(cidr("172.17.0.0/16"), inverted: false)], masquerade)])],
             pods: [], backend: .iptables, expected: ["POSTROUTING#1 maybe -"]),
        Case(name: "a negated source that excludes the pods", tables: [legacy([Rule([.source(cidr("198.18.0.0/16"), inverted: true)], masquerade)])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "a positive destination is not the internet at large",
             tables: [legacy([Rule([.destination(cidr("203.0.113.0/24"), inverted: false)], masquerade)])], pods: pods, backend: .iptables, expected: []),
        Case(name: "flannel's masquerade (negated multicast destination)",
             tables: [legacy([Rule([.comment("flanneld masq")], .jump("FLANNEL-POSTRTG")), randsnatJump], chains: ["FLANNEL-POSTRTG": [
                Rule([.source(cidr("198.18.0.0/16"), inverted: false), .destination(cidr("224.0.0.0/4"), inverted: true)],
                     .snat(.init(name: "MASQUERADE", randomFully: true)))]])],
             pods: pods, backend: .iptables, expected: ["FLANNEL-POSTRTG#1 certain flannel"]),
        Case(name: "kube-proxy's chain masquerades only marked packets",
             tables: [legacy([Rule([], .jump("KUBE-POSTROUTING")), randsnatJump], chains: ["KUBE-POSTROUTING": [
                Rule([.mark(value: 0x4000, mask: 0x4000, inverted: true)], .stop("RETURN")),
                Rule([], .none("MARK")),
                Rule([], .snat(.init(name: "MASQUERADE", randomFully: true)))]])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "a marked-only masquerade", tables: [legacy([Rule([.mark(value: 0x4000, mask: 0x4000, inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "an ipset match maybe holds; a maybe RETURN makes the rest maybe",
             tables: [legacy([Rule([.other("-m set --match-set X src")], .stop("RETURN")), Rule([], masquerade)])],
             pods: pods, backend: .iptables, expected: ["POSTROUTING#2 maybe -"]),
        Case(name: "an unconditional ACCEPT ends the chain", tables: [legacy([Rule([], .stop("ACCEPT")), Rule([], masquerade)])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "a source-local address type never holds for pods (Docker)",
             tables: [legacy([Rule([.outInterface("docker0", inverted: false), .addressType(source: true, types: 1 << 2, inverted: false)], masquerade)])],
             pods: pods, backend: .iptables, expected: []),
        Case(name: "Calico's natOutgoing (ipset conditions) counts as certain",
             tables: [legacy([Rule([], .jump("cali-POSTROUTING")), randsnatJump], chains: [
                "cali-POSTROUTING": [Rule([], .jump("cali-nat-outgoing"))],
                "cali-nat-outgoing": [Rule([.other("-m set --match-set cali40masq-ipam-pools src")], .snat(.init(name: "MASQUERADE", randomFully: true)))]])],
             pods: pods, backend: .iptables, expected: ["cali-nat-outgoing#1 certain calico"]),
        Case(name: "Cilium's iptables masquerade", tables: [legacy([Rule([.comment("cilium-feeder: CILIUM_POST_nat")], .jump("CILIUM_POST_nat"))],
                chains: ["CILIUM_POST_nat": [Rule([.source(cidr("198.18.0.0/16"), inverted: false), .destination(cidr("198.18.0.0/16"), inverted: true),
                                                   .outInterface("cilium_+", inverted: true)], masquerade)]])],
             pods: pods, backend: .iptables, expected: ["CILIUM_POST_nat#1 certain cilium"]),
        Case(name: "the reference ipMasq: a per-pod jump with its owner comment",
             tables: [legacy([Rule([.source(cidr("198.18.0.5/32"), inverted: false), .comment("name: \"pods\" id: \"c1\"")], .jump("CNI-0123abcd")),
                              randsnatJump], chains: ["CNI-0123abcd": [
                Rule([.destination(cidr("198.18.0.0/24"), inverted: false)], .stop("ACCEPT")),
                Rule([.destination(cidr("224.0.0.0/4"), inverted: true)], masquerade)]])],
             pods: pods, backend: .iptables, expected: ["CNI-0123abcd#2 certain ipmasq"]),
        Case(name: "nftables: a lower priority masquerade runs first", tables: [nft("ip other", priority: 99, [Rule([], masquerade)])],
             pods: pods, backend: .nftables, expected: ["post#1 certain -"]),
        Case(name: "nftables: an equal priority counts", tables: [nft("ip other", priority: 100, [Rule([], masquerade)])],
             pods: pods, backend: .iptables, expected: ["post#1 certain -"]),
        Case(name: "nftables: a higher priority runs after", tables: [nft("ip other", priority: 101, [Rule([], masquerade)])],
             pods: pods, backend: .nftables, expected: []),
        Case(name: "nftables: randsnat's own table is not a shadow",
             tables: [NATHookTable(source: "nftables", table: "inet randsnat", syntax: .nft, hooks: [.init(chain: "postrouting", priority: 100)],
                                   chains: ["postrouting": [Rule([], masquerade)]], isRandsnat: true)],
             pods: pods, backend: .nftables, expected: []),
        Case(name: "nftables: a goto to a masquerading chain", tables: [NATHookTable(source: "nftables", table: "ip flannel-ipv4", syntax: .nft,
                hooks: [.init(chain: "postrtg", priority: 100)],
                chains: ["postrtg": [Rule([], .goto("masq")), Rule([], masquerade)], "masq": [Rule([.destination(cidr("224.0.0.0/4"), inverted: true)], masquerade)]])],
             pods: pods, backend: .nftables, expected: ["masq#1 certain flannel"]),
    ]

    @Test(arguments: cases) func findsTheRulesThatRunFirst(_ row: Case) {
        #expect(Self.describe(EarlierSNAT.find(row.tables, podSubnets: row.pods, backend: row.backend)) == row.expected)
    }

    @Test func namesTheRuleAsTheOperatorWritesItWithTheRemedy() throws {
        let found = try #require(EarlierSNAT.find([Self.aws], podSubnets: Self.pods, backend: .iptables).first)
        #expect(found.rules == ["-A POSTROUTING -m comment --comment \"AWS SNAT CHAIN\" -j AWS-SNAT-CHAIN-0",
                                "-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment \"AWS, SNAT\" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 198.19.0.1 --random-fully"])
        #expect(found.text.contains("AWS_VPC_K8S_CNI_EXTERNALSNAT=true"))
        #expect(found.text.contains("aws-node"))
        let generic = try #require(EarlierSNAT.find([Self.nft("ip other", priority: 0, [Rule([.source(Self.cidr("198.18.0.0/16"), inverted: false)],
            .snat(.init(name: "MASQUERADE", randomFully: true)))])], podSubnets: Self.pods, backend: .nftables).first)
        #expect(generic.rules == ["ip saddr 198.18.0.0/16 masquerade fully-random"])
        #expect(generic.text.hasPrefix("nftables ip other chain post: `ip saddr 198.18.0.0/16 masquerade fully-random` SNATs pod traffic before randsnat's rule"))
        #expect(generic.text.contains("remove that rule or make it skip the pod subnets"))
    }
}

extension EarlierSNATTests {
    /// iptables-nft's table, decoded from nf_tables, reads back as iptables-nft-save writes it.
    @Test func iptablesNFTRulesReadAsIptablesSaveLines() throws {
        let table = NATHookTable(source: "nftables", table: "ip nat", syntax: .iptables, hooks: [.init(chain: "POSTROUTING", priority: 100)], chains: [
            "POSTROUTING": [Rule([.comment("AWS SNAT CHAIN")], .jump("AWS-SNAT-CHAIN-0"))],
            "AWS-SNAT-CHAIN-0": [Rule([.outInterface("vlan*", inverted: true), .comment("AWS, SNAT"), .addressType(source: false, types: 1 << 2, inverted: true)],
                                      .snat(.init(name: "SNAT", toSource: "10.0.1.23", randomFully: true)))],
        ])
        let found = try #require(EarlierSNAT.find([table], podSubnets: [], backend: .iptables).first)
        #expect(found.rules.last == "-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment \"AWS, SNAT\" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 10.0.1.23 --random-fully")
        #expect(found.text.hasPrefix("nftables ip nat: `-A AWS-SNAT-CHAIN-0"))
    }
}
