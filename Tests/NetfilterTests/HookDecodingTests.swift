import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import Netlink
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
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 4, mask: mask16), op: .equal, value: [198, 18, 0, 0], family: .ipv4)
                == .source(CIDR("198.18.0.0/16")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 16, length: 4, mask: nil), op: .notEqual, value: [198, 19, 0, 1], family: nil)
                == .destination(CIDR("198.19.0.1/32")!, inverted: true))
        #expect(NFTRuleDecoder.condition(.payload(offset: 24, length: 16, mask: nil), op: .equal, value: [0x20, 1, 0x0d, 0xb8] + Array(repeating: 0, count: 12), family: nil)
                == .destination(CIDR("2001:db8::/128")!, inverted: false))
        // `ip saddr 198.18.0.0/16` as nft writes it: 2 bytes at 12, no mask; `/20`: 3 bytes, the last masked.
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 2, mask: nil), op: .equal, value: [198, 18], family: .ipv4)
                == .source(CIDR("198.18.0.0/16")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 12, length: 3, mask: [255, 255, 0xf0]), op: .equal, value: [198, 18, 16], family: .ipv4)
                == .source(CIDR("198.18.16.0/20")!, inverted: false))
        #expect(NFTRuleDecoder.condition(.payload(offset: 8, length: 8, mask: nil), op: .equal, value: [0x20, 1, 0x0d, 0xb8, 0, 0x18, 0, 0], family: .ipv6)
                == .source(CIDR("2001:db8:18::/64")!, inverted: false))
        // `oifname != "vlan*"`: a prefix compare, no NUL.
        #expect(NFTRuleDecoder.condition(.meta(.outInterfaceName, mask: nil), op: .notEqual, value: Array("vlan".utf8), family: .ipv4)
                == .outInterface("vlan*", inverted: true))
        #expect(NFTRuleDecoder.condition(.meta(.mark, mask: [0, 0x40, 0, 0]), op: .equal, value: [0, 0x40, 0, 0], family: .ipv4)
                == .mark(value: 0x4000, mask: 0x4000, inverted: false))
    }
}

/// The shadowing check's nf_tables decoder fed expressions as `NFTDecoder` reads them (names from
/// `NFTExpressionAttribute`): each row's expressions give its conditions and verdict; a nested value
/// cut short throws.
struct NFTHookExpressionTests {
    typealias A = NFTExpressionAttribute
    static func tlv(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 4 + payload.count
        return [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)] + payload
            + Array(repeating: 0, count: (4 - length % 4) % 4)
    }
    static func u32(_ name: A, _ value: UInt32) -> NetlinkAttribute { NetlinkAttribute(type: name.type, payload: NFTBytes.be32(value)) }
    static func value(_ name: A, _ bytes: [UInt8]) -> NetlinkAttribute {
        NetlinkAttribute(type: name.type, payload: tlv(NFTDataAttribute.value.type, bytes))
    }
    static func e(_ name: String, _ data: [NetlinkAttribute]) -> NFTExpressionDump { NFTExpressionDump(name: name, data: data) }
    static func string(_ name: A, _ text: String) -> NetlinkAttribute { NetlinkAttribute(type: name.type, payload: Array(text.utf8) + [0]) }

    static let network = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)
    static var rows: [(name: String, family: Family?, expressions: [NFTExpressionDump], conditions: [NATHookRule.Condition], verdict: NATHookRule.Verdict)] { [
        ("payload, bitwise mask, cmp: a /12 source", .ipv4,
         [e("payload", [u32(A.payloadDestination, 1), u32(A.payloadBase, network), u32(A.payloadOffset, 12), u32(A.payloadLength, 2)]),
          e("bitwise", [u32(A.bitwiseSource, 1), u32(A.bitwiseDestination, 1), value(A.bitwiseMask, [255, 0xF0])]),
          e("cmp", [u32(A.cmpSource, 1), u32(A.cmpOperator, UInt32(NFT_CMP_EQ.rawValue)), value(A.cmpData, [198, 16])]),
          e("counter", [])],
         [.source(CIDR("198.16.0.0/12")!, inverted: false)], .none("")),
        ("meta oifname != eth0, masquerade fully random", .ipv4,
         [e("meta", [u32(A.metaKey, UInt32(NFT_META_OIFNAME.rawValue)), u32(A.metaDestination, 1)]),
          e("cmp", [u32(A.cmpSource, 1), u32(A.cmpOperator, UInt32(NFT_CMP_NEQ.rawValue)), value(A.cmpData, Array("eth0".utf8) + [0])]),
          e("masq", [u32(A.masqFlags, UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY))])],
         [.outInterface("eth0", inverted: true)], .snat(.init(name: "MASQUERADE", ports: nil, randomFully: true))),
        ("inet: meta nfproto ipv6 then ip6 daddr", nil,
         [e("meta", [u32(A.metaKey, UInt32(NFT_META_NFPROTO.rawValue)), u32(A.metaDestination, 1)]),
          e("cmp", [u32(A.cmpSource, 1), u32(A.cmpOperator, UInt32(NFT_CMP_EQ.rawValue)), value(A.cmpData, [UInt8(NFPROTO_IPV6)])]),
          e("payload", [u32(A.payloadDestination, 1), u32(A.payloadBase, network), u32(A.payloadOffset, 24), u32(A.payloadLength, 4)]),
          e("cmp", [u32(A.cmpSource, 1), u32(A.cmpOperator, UInt32(NFT_CMP_EQ.rawValue)), value(A.cmpData, [0x20, 1, 0x0d, 0xb8])])],
         [.family(.ipv6), .destination(CIDR("2001:db8::/32")!, inverted: false)], .none("")),
        ("lookup inverted, jump", .ipv4,
         [e("lookup", [string(A.lookupSet, "s"), u32(A.lookupSource, 1), u32(A.lookupFlags, UInt32(NFT_LOOKUP_F_INV.rawValue))]),
          e("immediate", [u32(A.immediateDestination, 0),
                          NetlinkAttribute(type: A.immediateData.type, payload: tlv(NFTDataAttribute.verdict.type | NetlinkAttribute.nestedFlag,
                              tlv(NFTDataAttribute.verdictCode.type, NFTBytes.be32(UInt32(bitPattern: NFT_JUMP.rawValue)))
                              + tlv(NFTDataAttribute.verdictChain.type, Array("KUBE-POSTROUTING".utf8) + [0])))])],
         [.other("!= @s")], .jump("KUBE-POSTROUTING")),
        ("iptables-nft match comment and mark, SNAT from immediates", .ipv4,
         [e("match", [string(A.matchName, "comment"), u32(A.matchRevision, 0), NetlinkAttribute(type: A.matchInfo.type, payload: Array("hi".utf8) + [0])]),
          e("match", [string(A.matchName, "mark"), u32(A.matchRevision, 1),
                      NetlinkAttribute(type: A.matchInfo.type, payload: [0, 0x40, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0])]),
          e("immediate", [u32(A.immediateDestination, 1), NetlinkAttribute(type: A.immediateData.type, payload: tlv(NFTDataAttribute.value.type, [203, 0, 113, 1]))]),
          e("nat", [u32(A.natType, UInt32(NFT_NAT_SNAT.rawValue)), u32(A.natFamily, UInt32(NFPROTO_IPV4)),
                    u32(A.natAddressMin, 1), u32(A.natAddressMax, 1)])],
         [.comment("hi"), .mark(value: 0x4000, mask: 0x4000, inverted: false)],
         .snat(.init(name: "SNAT", toSource: "203.0.113.1", ports: nil, randomFully: false))),
        ("an expression the check does not know", .ipv4, [e("ct", [])], [.other("ct")], .none("")),
    ] }

    @Test(arguments: 0..<6)
    func expressionsBecomeConditionsAndVerdicts(row: Int) throws {
        #expect(Self.rows.count == 6)
        let row = Self.rows[row]
        var decoder = NFTRuleDecoder(family: row.family)
        for expression in row.expressions { try decoder.add(expression) }
        #expect(decoder.conditions == row.conditions, "\(row.name)")
        #expect(decoder.verdict == row.verdict, "\(row.name)")
    }

    /// A nested value (cmp's data, bitwise's mask, immediate's data) cut inside an attribute throws.
    static var cuts: [NFTExpressionDump] { [
        e("cmp", [u32(A.cmpSource, 1), u32(A.cmpOperator, 0), NetlinkAttribute(type: A.cmpData.type, payload: [12, 0, 1, 0, 198])]),
        e("bitwise", [u32(A.bitwiseSource, 1), u32(A.bitwiseDestination, 1), NetlinkAttribute(type: A.bitwiseMask.type, payload: [8, 0])]),
        e("immediate", [u32(A.immediateDestination, 1), NetlinkAttribute(type: A.immediateData.type, payload: [9, 0, 1, 0, 1, 2])]),
        e("immediate", [u32(A.immediateDestination, 0),
                        NetlinkAttribute(type: A.immediateData.type, payload: tlv(NFTDataAttribute.verdict.type, [8, 0, 1, 0, 0]))]),
    ] }

    @Test(arguments: 0..<4)
    func aCutValueThrows(row: Int) {
        let expression = Self.cuts[row]
        var decoder = NFTRuleDecoder(family: .ipv4)
        #expect(Self.cuts.count == 4)
        #expect(throws: NetlinkError.self) { try decoder.add(expression) }
    }
}
