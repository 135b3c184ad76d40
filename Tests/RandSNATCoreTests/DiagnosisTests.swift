import CNI
import Testing
@testable import RandSNATCore

struct DiagnosisTests {
    @Test func sumsConntrackStatisticsOverCPUs() {
        let text = """
        entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
        0000000a  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000003 00000000 00000000  00000000 00000000 00000000 00000000
        0000000a  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000e 00000000 00000000 00000000  00000000 00000000 00000000 00000000
        """
        let counters = NodeFacts.counters(fromStat: text)
        #expect(counters["insert_failed"] == 16)
        #expect(counters["drop"] == 3)
        #expect(counters["clashres"] == 2)
    }

    static func rule(randomFully: Bool, shadows: Bool, randsnat: Bool = false, ports: ClosedRange<UInt16>? = nil) -> NodeFacts.SNATRule {
        NodeFacts.SNATRule(source: "iptables-legacy", chain: "nat POSTROUTING", position: 1, target: "MASQUERADE",
                           randomFully: randomFully, ports: ports, isRandsnat: randsnat, shadowsRandsnat: shadows)
    }

    @Test func aRuleIsNamedAsTheOperatorWritesIt() {
        // The rendering is NATHookRule.text's, the one the shadowing check uses.
        let masquerade = NATHookRule([.source(CIDR("10.8.0.0/16")!, inverted: false)], .snat(.init(name: "MASQUERADE", randomFully: false)), handle: 7)
        let nftText = masquerade.text(chain: "post", syntax: .nft)
        #expect(nftText == "ip saddr 10.8.0.0/16 masquerade # handle 7")
        #expect(NATHookRule(masquerade.conditions, masquerade.verdict).text(chain: "POSTROUTING", syntax: .iptables)
                == "-A POSTROUTING -s 10.8.0.0/16 -j MASQUERADE")
        var facts = NodeFacts()
        facts.rules = [NodeFacts.SNATRule(source: "nftables", chain: "ip other post", position: 1, target: "masquerade", randomFully: false,
                                          ports: nil, isRandsnat: false, shadowsRandsnat: false, text: nftText)]
        let diagnosis = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(diagnosis.findings.map(\.text) == ["nftables ip other post rule 1: `ip saddr 10.8.0.0/16 masquerade # handle 7`: masquerade without --random-fully"])
        #expect(diagnosis.human().contains("nftables ip other post #1 masquerade (no --random-fully): `ip saddr 10.8.0.0/16 masquerade # handle 7`"))
        // Without a text (a chain no hook reaches), the place alone.
        facts.rules = [Self.rule(randomFully: false, shadows: false)]
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).findings.map(\.text) == ["iptables-legacy nat POSTROUTING rule 1: MASQUERADE without --random-fully"])
    }

    @Test func severities() {
        var facts = NodeFacts()
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .healthy)
        facts.rules = [Self.rule(randomFully: true, shadows: false, randsnat: true)]
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .healthy)
        facts.rules.append(Self.rule(randomFully: false, shadows: false))
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .warning)
        facts.rules = [Self.rule(randomFully: true, shadows: false, randsnat: true)]
        facts.earlierSNAT = [Self.shadow(certain: false)]
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .warning)
        facts.earlierSNAT = [Self.shadow(certain: true)]
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .problem)
    }

    static func shadow(certain: Bool, primary: KnownPrimary? = nil) -> EarlierSNAT {
        EarlierSNAT(source: "iptables-legacy", table: "nat", chain: "AWS-SNAT-CHAIN-0", position: 2,
                    rules: ["-A POSTROUTING -j AWS-SNAT-CHAIN-0", "-A AWS-SNAT-CHAIN-0 -j SNAT --to-source 198.19.0.1"], certain: certain, primary: primary)
    }

    @Test func earlierSNATIsInEveryOutput() {
        var facts = NodeFacts()
        facts.earlierSNAT = [Self.shadow(certain: true, primary: .awsVPCCNI)]
        let diagnosis = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(diagnosis.human().contains("takes pod traffic: iptables-legacy nat AWS-SNAT-CHAIN-0 #2: `-A AWS-SNAT-CHAIN-0 -j SNAT --to-source 198.19.0.1` [aws-vpc-cni]"))
        #expect(diagnosis.findings.contains { $0.severity == .problem && $0.text.contains("AWS_VPC_K8S_CNI_EXTERNALSNAT=true") })
        #expect(diagnosis.json()["earlierSNAT"]?.arrayValue?.first?["primary"]?.stringValue == "aws-vpc-cni")
        #expect(diagnosis.prometheus().contains("randsnat_earlier_snat_rules{primary=\"aws-vpc-cni\",certain=\"true\"} 1"))
        #expect(diagnosis.prometheus().contains("randsnat_snat_rules_shadowing 1"))
    }

    @Test func insertFailedDuringTheIntervalIsAProblem() {
        var earlier = NodeFacts()
        earlier.counters = ["insert_failed": 5]
        var now = NodeFacts()
        now.counters = ["insert_failed": 5]
        #expect(Diagnosis(facts: now, earlier: earlier, intervalSeconds: 1).severity == .warning)  // only history
        now.counters = ["insert_failed": 9]
        let diagnosis = Diagnosis(facts: now, earlier: earlier, intervalSeconds: 1)
        #expect(diagnosis.severity == .problem)
        #expect(diagnosis.deltas["insert_failed"] == 4)
    }

    @Test func portPressureUsesTheSmallestRange() {
        var facts = NodeFacts()
        facts.rules = [Self.rule(randomFully: true, shadows: false, randsnat: true, ports: 1000...1099)]
        facts.portUse = [NodeFacts.PortUse(destination: "203.0.113.10", port: 53, proto: "udp", snatAddress: "203.0.113.1", entries: 60)]
        #expect(Diagnosis.capacity(facts) == 100)
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .warning)
        facts.portUse = [NodeFacts.PortUse(destination: "203.0.113.10", port: 53, proto: "udp", snatAddress: "203.0.113.1", entries: 95)]
        #expect(Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).severity == .problem)
        #expect(Diagnosis.capacity(NodeFacts()) == 64512)
    }

    @Test func outputsAgree() throws {
        var facts = NodeFacts()
        facts.networks = [NodeFacts.Network(name: "pods", generation: "abc1234", family: .ipv4, pods: 3, orphans: ["198.18.0.9 (pods/x/eth0)"])]
        let diagnosis = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(diagnosis.json()["status"] == .string("warning"))
        #expect(diagnosis.prometheus().contains("randsnat_pods{network=\"pods\",family=\"ipv4\",backend=\"iptables\"} 3"))
        #expect(diagnosis.prometheus().contains("randsnat_orphan_members 1"))
        #expect(diagnosis.human().contains("\"pods\" ipv4 generation abc1234 (iptables): 3 pods, 1 without a live owner"))
    }

    @Test func eachNetworkNamesItsNetfilter() {
        var facts = NodeFacts()
        facts.networks = [NodeFacts.Network(name: "a", generation: "abc1234", family: .ipv4, pods: 1, orphans: [], backend: .nftables),
                          NodeFacts.Network(name: "a", generation: "abc1234", family: .ipv6, pods: 1, orphans: [], backend: .nftables),
                          NodeFacts.Network(name: "b", generation: "def5678", family: .ipv4, pods: 2, orphans: [], backend: .iptables)]
        let text = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0).human()
        #expect(text.contains("netfilter of network \"a\": nf_tables (table inet randsnat)\n"))
        #expect(text.contains("netfilter of network \"b\": iptables-legacy (nat table and ipsets)\n"))
    }

    @Test func withoutACacheOrphansAreUnknownNotAll() {
        var facts = NodeFacts()
        facts.networks = [NodeFacts.Network(name: "pods", generation: "abc1234", family: .ipv4, pods: 3, orphans: [])]
        facts.orphansUnknown = "the CNI cache /x does not exist; doctor cannot tell orphan members (... --cni-cache DIR)"
        let diagnosis = Diagnosis(facts: facts, earlier: nil, intervalSeconds: 0)
        #expect(diagnosis.severity == .healthy)
        #expect(diagnosis.human().contains("orphans unknown: the CNI cache /x does not exist"))
        #expect(!diagnosis.prometheus().contains("\nrandsnat_orphan_members "), "no orphan count: unknown")
        #expect(diagnosis.json()["orphansUnknown"] == .string(facts.orphansUnknown!))
    }
}
