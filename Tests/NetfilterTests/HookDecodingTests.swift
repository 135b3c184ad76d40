import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import RandSNATCore

/// What the shadowing check's reader makes of rule bytes (legacy entries, xt match data, nf_tables
/// registers), without root: rules encoded by RuleEncoder read back as the rules they are.
struct HookDecodingTests {
    func read(_ rule: NATRule, _ family: Family = .ipv4, isChain: (String) -> Bool = { _ in false }) throws -> NATHookRule {
        let encoded = try RuleEncoder.encode(rule, family: family, chain: "C") { _ throws(NetfilterError) in 7 }
        return RuleDecoder.hookRule(IPTCTable.Rule(bytes: encoded.bytes, targetName: encoded.targetName), family: family, isChain: isChain)
    }

    @Test func legacyConditionsAndVerdicts() throws {
        let bypass = try read(NATRule(destination: CIDR("198.19.0.0/16"), outInterface: "eth0", comment: "c", target: .return))
        #expect(bypass == NATHookRule([.destination(CIDR("198.19.0.0/16")!, inverted: false), .outInterface("eth0", inverted: false), .comment("c")],
                                      .stop("RETURN")))
        let snat = try read(NATRule(comment: "x", target: .snat(AddressRange("203.0.113.1")!, ports: nil)))
        #expect(snat.text(chain: "C", syntax: .iptables) == "-A C -m comment --comment \"x\" -j SNAT --to-source 203.0.113.1 --random-fully")
        let masquerade6 = try read(NATRule(proto: .tcp, comment: "", target: .masquerade(ports: PortRange("1000-1999")!)), .ipv6)
        #expect(masquerade6.verdict == NATHookRule.Verdict.snat(.init(name: "MASQUERADE", ports: 1000...1999, randomFully: true)))
        #expect(masquerade6.conditions.first == NATHookRule.Condition.proto(6, inverted: false))
        let jump = try read(NATRule(comment: "", target: .jump("RANDSNAT-x")), isChain: { $0 == "RANDSNAT-x" })
        #expect(jump.verdict == .jump("RANDSNAT-x"))
    }

    @Test func markAndAddressTypeMatches() {
        // xt_mark_mtinfo1 {mark 0x4000, mask 0x4000, invert 1}; xt_addrtype_info_v1 {dest LOCAL, invert dest}.
        #expect(RuleDecoder.conditions(match: "mark", revision: 1, payload: [0, 0x40, 0, 0, 0, 0x40, 0, 0, 1, 0, 0, 0])
                == [.mark(value: 0x4000, mask: 0x4000, inverted: true)])
        #expect(RuleDecoder.conditions(match: "addrtype", revision: 1, payload: [0, 0, 4, 0, 2, 0, 0, 0])
                == [.addressType(source: false, types: 4, inverted: true)])
        #expect(RuleDecoder.conditions(match: "conntrack", revision: 3, payload: []) == [.other("-m conntrack")])
    }

    @Test func nftablesRegistersBecomeConditions() {
        let mask16: [UInt8] = [255, 255, 0, 0]
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 4, mask: mask16), op: NFT_CMP_EQ.rawValue, value: [198, 18, 0, 0], family: .ipv4)
                == .source(CIDR("198.18.0.0/16")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 16, length: 4, mask: nil), op: NFT_CMP_NEQ.rawValue, value: [198, 19, 0, 1], family: nil)
                == .destination(CIDR("198.19.0.1/32")!, inverted: true))
        #expect(NFTRuleDecoder.condition(.payload(offset: 24, length: 16, mask: nil), op: NFT_CMP_EQ.rawValue, value: [0x20, 1, 0x0d, 0xb8] + Array(repeating: 0, count: 12), family: nil)
                == .destination(CIDR("2001:db8::/128")!, inverted: false))
        // `ip saddr 198.18.0.0/16` as nft writes it: 2 bytes at 12, no mask; `/20`: 3 bytes, the last masked.
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 2, mask: nil), op: NFT_CMP_EQ.rawValue, value: [198, 18], family: .ipv4)
                == .source(CIDR("198.18.0.0/16")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 3, mask: [255, 255, 0xf0]), op: NFT_CMP_EQ.rawValue, value: [198, 18, 16], family: .ipv4)
                == .source(CIDR("198.18.16.0/20")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 8, length: 8, mask: nil), op: NFT_CMP_EQ.rawValue, value: [0x20, 1, 0x0d, 0xb8, 0, 0x18, 0, 0], family: .ipv6)
                == .source(CIDR("2001:db8:18::/64")!, inverted: false))
        // `oifname != "vlan*"`: a prefix compare, no NUL.
        #expect(NFTRuleDecoder.condition(.meta(NFT_META_OIFNAME.rawValue, mask: nil), op: NFT_CMP_NEQ.rawValue, value: Array("vlan".utf8), family: .ipv4)
                == .outInterface("vlan*", inverted: true))
        #expect(NFTRuleDecoder.condition(.meta(NFT_META_MARK.rawValue, mask: [0, 0x40, 0, 0]), op: NFT_CMP_EQ.rawValue, value: [0, 0x40, 0, 0], family: .ipv4)
                == .mark(value: 0x4000, mask: 0x4000, inverted: false))
    }
}
