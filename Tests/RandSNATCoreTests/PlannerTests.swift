import Testing
@testable import RandSNATCore

struct PlannerTests {
    @Test func namesArePinned() {
        // These names are in nodes' nat tables: changing them strands state. Never update this test
        // without a migration.
        // Literal values, not the code's own expression: 11 hex digits of SHA-256("randsnat/" + network),
        // as `printf randsnat/cbr0 | sha256sum | cut -c1-11` prints them.
        let id = NetworkID(network: "cbr0")
        #expect(id.hash == "e5175f3625b")
        #expect(NetworkID(network: "k8s-pod-network").hash == "597dcd16f46")
        let names = ObjectNames(id: id, generation: "abcdef0", family: .ipv4)
        #expect(names.chain == "RANDSNAT-e5175f3625b-abcdef0")
        #expect(names.chain.utf8.count == 28)
        #expect(names.memberSet == "RANDSNAT-e5175f3625b-abcdef0-P4" && names.memberSet.utf8.count == 31)
        #expect(names.subnetSet == "RANDSNAT-e5175f3625b-abcdef0-S4")
        #expect(ObjectNames(id: id, generation: "abcdef0", family: .ipv6).subnetSet == "RANDSNAT-e5175f3625b-abcdef0-S6")
        #expect(ObjectNames(memberSet: names.memberSet, of: id) == names)
        #expect(ObjectNames(memberSet: names.subnetSet, of: id) == nil)
        #expect(ObjectNames(memberSet: names.memberSet, of: NetworkID(network: "other")) == nil)
        #expect(Planner.generation(of: PluginConfig()) == "98f7d08")
    }

    @Test func wholePlanAsData() throws {
        var config = PluginConfig()
        config.nonMasqueradeCIDRs = [CIDR("198.19.0.0/16")!, CIDR("2001:db8:19::/48")!]
        config.egressInterface = "eth0"
        let plan = Planner.family(.ipv4, network: "net", config: config)
        let chain = plan.names.chain
        #expect(plan.jump.rendered(in: "POSTROUTING")
                == "-A POSTROUTING -m set --match-set \(plan.names.memberSet) src -m comment --comment \"randsnat: name: \"net\" generation: \(plan.names.generation)\" -j \(chain)")
        #expect(plan.rules.map { $0.rendered(in: chain) } == [
            "-A \(chain) -m set --match-set \(plan.names.subnetSet) dst -m comment --comment \"randsnat: name: \"net\": pod subnets\" -j RETURN",
            "-A \(chain) -d 224.0.0.0/4 -m comment --comment \"randsnat: name: \"net\": multicast\" -j RETURN",
            "-A \(chain) -d 169.254.0.0/16 -m comment --comment \"randsnat: name: \"net\": link-local\" -j RETURN",
            "-A \(chain) -d 198.19.0.0/16 -m comment --comment \"randsnat: name: \"net\": nonMasqueradeCIDRs\" -j RETURN",
            "-A \(chain) -o eth0 -m comment --comment \"randsnat: name: \"net\": masquerade\" -j MASQUERADE --random-fully",
        ])
        let v6 = Planner.family(.ipv6, network: "net", config: config)
        #expect(v6.rules.compactMap(\.destination).map(\.description) == ["ff00::/8", "fe80::/10", "2001:db8:19::/48"])
    }

    @Test func masqLinkLocalDropsTheBypass() {
        var config = PluginConfig()
        config.masqLinkLocal = true
        #expect(!Planner.family(.ipv4, network: "n", config: config).rules.contains { $0.destination == .ipv4LinkLocal })
    }

    @Test func everySNATIsFullyRandom() {
        var config = PluginConfig()
        config.toSource = [AddressRange("203.0.113.1")!, AddressRange("203.0.113.5-203.0.113.6")!, AddressRange("2001:db8::5")!]
        config.portRange = PortRange("32768-60999")
        let rules = Planner.family(.ipv4, network: "n", config: config).rules.filter {
            if case .return = $0.target { return false } else { return true }
        }
        // tcp, udp, sctp with ports, then one group without; two sources each.
        #expect(rules.count == 8)
        #expect(rules.allSatisfy { $0.rendered(in: "C").hasSuffix("--random-fully") })
        #expect(rules.map { $0.proto?.rawValue ?? "-" } == ["tcp", "tcp", "udp", "udp", "sctp", "sctp", "-", "-"])
        #expect(rules.map(\.probability) == [0.5, nil, 0.5, nil, 0.5, nil, 0.5, nil])
        let v6 = Planner.family(.ipv6, network: "n", config: config).rules.last!
        #expect(v6.rendered(in: "C").contains("--to-source 2001:db8::5 --random-fully"))
    }

    @Test func generationFollowsRuleRelevantConfig() {
        var config = PluginConfig()
        let first = Planner.generation(of: config)
        config.lockTimeoutSeconds = 3
        #expect(Planner.generation(of: config) == first)
        config.nonMasqueradeCIDRs = [CIDR("10.0.0.0/8")!]
        #expect(Planner.generation(of: config) != first)
    }
}
