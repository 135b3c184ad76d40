import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import Netlink
@testable import RandSNATCore

/// Byte-level checks of what goes to the kernel, without root.
struct EncodingTests {
    @Test func structLayoutsAreTheKernelABI() {
        // The same numbers `sizeof` gives in C on x86_64/arm64 (see shim.h).
        #expect(MemoryLayout<ipt_entry>.size == 112)
        #expect(MemoryLayout<ip6t_entry>.size == 168)
        #expect(MemoryLayout<xt_entry_match>.size == 32)
        #expect(MemoryLayout<xt_set_info_match_v4>.size == 48)
        #expect(MemoryLayout<xt_comment_info>.size == 256)
        #expect(MemoryLayout<nf_nat_ipv4_multi_range_compat>.size == 20)
        #expect(MemoryLayout<nf_nat_range>.size == 40)
    }

    func encode(_ rule: NATRule, _ family: Family = .ipv4) throws -> EncodedRule {
        try RuleEncoder.encode(rule, family: family, chain: "C") { _ throws(NetfilterError) in 7 }
    }

    @Test func sizesMatchWhatIptablesWrites() throws {
        // Sizes read from rules iptables-legacy 1.8.9 wrote: set rev 4 = 80, comment = 288,
        // SNAT rev 0 = 56, v6 SNAT rev 1 / MASQUERADE = 72, a standard target = 40.
        let jump = try encode(NATRule(setMatch: .init(set: "S", directions: [.source]), comment: "x", target: .jump("C2")))
        #expect(jump.bytes.count == 112 + 80 + 288 + 40)
        #expect(jump.isStandardTarget && jump.targetName == "C2")
        let snat = try encode(NATRule(comment: "x", target: .snat(AddressRange("203.0.113.1")!, ports: nil)))
        #expect(snat.bytes.count == 112 + 288 + 56)
        let masq6 = try encode(NATRule(comment: "x", target: .masquerade(ports: nil)), .ipv6)
        #expect(masq6.bytes.count == 168 + 288 + 72)
    }

    @Test func setMatchCarriesIndexAndDirections() throws {
        let rule = try encode(NATRule(setMatch: .init(set: "S", directions: [.source, .destination]), comment: "", target: .return))
        let payload = Array(rule.bytes[(112 + 32)..<(112 + 36)])
        #expect(payload == [7, 0, 2, 0b10])  // index 7, two dimensions, the first one src
        #expect(Array(rule.bytes[(112 + 2)..<(112 + 5)]) == Array("set".utf8))
        #expect(rule.bytes[112 + 31] == 4)  // revision
    }

    @Test func natRangeIsAlwaysFullyRandom() throws {
        let rule = try encode(NATRule(proto: .tcp, comment: "", target: .masquerade(ports: PortRange("1000-2000"))))
        let payload = Array(rule.bytes[(112 + 288 + 32)...])
        let flags = UInt32(payload[4]) | UInt32(payload[5]) << 8
        #expect(flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0)
        #expect(flags & UInt32(NF_NAT_RANGE_PROTO_SPECIFIED) != 0)
        #expect(Array(payload[16..<20]) == [0x03, 0xE8, 0x07, 0xD0])  // 1000 and 2000, big-endian
        #expect(rule.bytes[80] == 6)  // ipt_ip.proto = tcp
    }

    @Test func destinationAndInterface() throws {
        let rule = try encode(NATRule(destination: CIDR("198.19.0.0/16"), outInterface: "eth0", comment: "", target: .return))
        #expect(Array(rule.bytes[4..<8]) == [198, 19, 0, 0])    // dst
        #expect(Array(rule.bytes[12..<16]) == [255, 255, 0, 0]) // dmsk
        #expect(Array(rule.bytes[32..<37]) == Array("eth0".utf8) + [0])  // outiface
        #expect(Array(rule.bytes[64..<70]) == [255, 255, 255, 255, 255, 0])  // mask covers the NUL
    }
}

struct NetlinkMessageTests {
    @Test func requestBytes() {
        var request = NetlinkRequest(type: 0x0609, flags: 0x0005, sequence: 1, family: 2)
        request.addU8(1, 6)
        request.beginNested(7)
        request.addBE32(8, 0x10)
        request.endNested()
        #expect(request.finished == [
            40, 0, 0, 0, 0x09, 0x06, 0x05, 0x00, 1, 0, 0, 0, 0, 0, 0, 0,  // nlmsghdr
            2, 0, 0, 0,                                                  // nfgenmsg
            5, 0, 1, 0, 6, 0, 0, 0,                                      // u8 attribute, padded
            12, 0, 7, 0x80, 8, 0, 8, 0x40, 0, 0, 0, 0x10,                // nested, NET_BYTEORDER u32
        ])
    }

    @Test func parsesRepliesAndErrors() {
        let ack: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0] + [0xFE, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16)
        let replies = NetlinkReply.parse(ack[...])
        #expect(replies.count == 1)
        #expect(replies[0].sequence == 9)
        #expect(replies[0].errorCode == 2)
        let attributes = NetlinkAttribute.parse([12, 0, 0x02, 0x80, 5, 0, 1, 0, 42, 0, 0, 0][...])
        #expect(attributes[type: 2]?.nested[type: 1]?.u8 == 42)
    }
}

struct NFTPlanTests {
    static func plan(_ config: PluginConfig, family: Family = .ipv4) -> NFTFamilyPlan {
        NFTFamilyPlan(Planner.family(family, network: "net", config: config))
    }

    @Test func defaultPlanReadsAsAPersonWouldWriteIt() {
        let plan = Self.plan(PluginConfig())
        #expect(plan.chain == plan.names.chain + "-4")
        #expect(plan.rules.map(\.text) == [
            "ip daddr @\(plan.names.subnetSet) return comment \"randsnat: name: net: pod subnets\"",
            "ip daddr @\(plan.bypassSet) return comment \"randsnat: name: net: bypass\"",
            "masquerade fully-random comment \"randsnat: name: net: masquerade\"",
        ])
        #expect(plan.jump.text == "ip saddr @\(plan.names.memberSet) jump \(plan.chain) comment \"randsnat: name: net generation: \(plan.names.generation)\"")
        #expect(plan.bypass.map { "\($0.first)-\($0.last) \($0.comment)" } == ["169.254.0.0-169.254.255.255 link-local", "224.0.0.0-239.255.255.255 multicast"])
    }

    @Test func bypassCIDRsAreMergedIntoDisjointIntervals() {
        var config = PluginConfig()
        config.nonMasqueradeCIDRs = ["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "2001:db8::/32"].map { CIDR($0)! }
        config.masqLinkLocal = true
        let plan = Self.plan(config)
        #expect(plan.bypass.map { "\($0.first)-\($0.last)" } == ["10.0.0.0-11.255.255.255", "224.0.0.0-239.255.255.255"])
        let elements = NFTBatch.elements(plan.bypass)
        #expect(elements.map { "\($0.key)\($0.isIntervalEnd ? " end" : "")" } == ["10.0.0.0", "12.0.0.0 end", "224.0.0.0", "240.0.0.0 end"])
        let six = Self.plan(config, family: .ipv6)
        #expect(six.bypass.map { "\($0.first)" } == ["2001:db8::", "ff00::"])
    }

    @Test func intervalsComeBackFromADumpAsCIDRs() {
        let dumped: [(key: IPAddress, isEnd: Bool, comment: String)] = [
            (IPAddress("198.18.1.0")!, true, ""), (IPAddress("198.18.0.0")!, false, "a"),
            (IPAddress("255.255.255.0")!, false, "top"),
        ]
        let intervals = NFTInterval.pair(dumped)
        #expect(intervals.map { $0.cidr?.description } == ["198.18.0.0/24", "255.255.255.0/24"])
    }

    @Test func toSourceWithPortsAndSeveralItems() {
        var config = PluginConfig()
        config.toSource = [AddressRange("203.0.113.2")!, AddressRange("203.0.113.3-203.0.113.4")!]
        config.portRange = PortRange("40000-40999")
        config.egressInterface = "eth0"
        let texts = Self.plan(config).rules.map(\.text)
        #expect(texts.contains { $0.hasPrefix("oifname \"eth0\" meta l4proto tcp numgen random mod 2 0 snat ip to 203.0.113.2:40000-40999 fully-random") })
        #expect(texts.last?.hasPrefix("oifname \"eth0\" snat ip to 203.0.113.3-203.0.113.4 fully-random") == true)
    }

    @Test func everyDestinationRuleEndsUpInTheBypassSet() {
        var config = PluginConfig()
        config.nonMasqueradeCIDRs = ["10.0.0.0/8", "2001:db8::/32"].map { CIDR($0)! }
        config.toSource = [AddressRange("203.0.113.2")!, AddressRange("203.0.113.3")!]
        config.portRange = PortRange("40000-40999")
        config.egressInterface = "eth0"
        for family in Family.allCases {
            let plan = Planner.family(family, network: "net", config: config)
            // The nftables translation relies on it: a destination only ever comes with a plain RETURN.
            #expect(plan.rules.filter { $0.destination != nil }.allSatisfy { $0.target == .return && $0.setMatch == nil && $0.proto == nil })
            let nft = NFTFamilyPlan(plan)
            #expect(nft.rules.count == plan.rules.filter { $0.destination == nil }.count + 1)
            #expect(nft.bypass.count == 3)  // the CIDR, link-local, multicast: disjoint here
        }
    }

    @Test func masqueradeWithPortsSaysTheyAreSpecified() {
        var config = PluginConfig()
        config.portRange = PortRange("40000-40099")
        let rules = Self.plan(config).rules
        let flags = rules.compactMap { rule -> UInt32? in
            for case .masquerade(let flags, _) in rule.expressions { return flags }
            return nil
        }
        // tcp, udp, sctp with ports (random-fully | proto-specified), then the catch-all without.
        #expect(flags == [0x12, 0x12, 0x12, 0x10])
    }

    @Test func commentsLoseDoubleQuotesAndStayWithinNftsLimit() {
        #expect(NFTRule.comment("a \"b\" c") == "a b c")
        #expect(NFTRule.comment(String(repeating: "x", count: 300)).utf8.count == 127)
    }
}
