import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import RandSNATCore

/// The xtables entry codec without root: entries written and read back for both families, entries
/// libiptc read from the kernel (LibiptcFixture), and bytes that are not an entry.
struct XtablesCodecTests {
    static func masked(_ text: String) -> MaskedAddress { MaskedAddress(CIDR(text)!) }
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    struct Case: CustomStringConvertible, Sendable {
        let description: String
        let entry: XtablesEntry
    }

    static let entries: [Case] = [
        Case(description: "v4 jump by set and comment", entry: XtablesEntry(
            family: .ipv4, matches: [.set(.init(index: 3, directions: [.source])), .comment("randsnat: name: net")], target: .jump("RANDSNAT-x"))),
        Case(description: "v4 bypass", entry: XtablesEntry(
            family: .ipv4, destination: masked("198.19.0.0/16"), outInterface: InterfaceName("eth0"), matches: [.comment("b")], target: .verdict(.return))),
        Case(description: "v4 negations, wildcard, masquerade with ports", entry: XtablesEntry(
            family: .ipv4, source: masked("10.1.0.0/16"), destination: masked("10.2.3.4/32"), inInterface: InterfaceName("lo"),
            outInterface: InterfaceName("eth+"), proto: 17, inverse: [.destination, .outInterface, .proto],
            target: .masquerade(NATRange(flags: [.protoSpecified, .random], ports: 1000...2000)))),
        Case(description: "v4 goto, fragment, foreign match", entry: XtablesEntry(
            family: .ipv4, flags: [.goto, .fragment],
            matches: [.other(name: "mark", revision: 1, data: [0, 0x40, 0, 0, 0, 0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])], target: .jump("FOREIGN"))),
        Case(description: "v4 SNAT revision 0", entry: XtablesEntry(
            family: .ipv4, outInterface: InterfaceName("eth0"), proto: 132,
            target: .snat(NATRange(flags: [.mapIPs, .protoSpecified, .randomFully, .persistent], addresses: ip("203.0.113.1")...ip("203.0.113.5"),
                                   ports: 40000...40999), revision: 0))),
        Case(description: "v4 SNAT revisions 1 and 2", entry: XtablesEntry(
            family: .ipv4, matches: [.randomSample(probability: 0x2000_0000)],
            target: .snat(NATRange(flags: [.mapIPs, .randomFully], addresses: ip("203.0.113.9")...ip("203.0.113.9")), revision: 1))),
        Case(description: "v4 SNAT revision 2 base port", entry: XtablesEntry(
            family: .ipv4, proto: 6,
            target: .snat(NATRange(flags: [.protoSpecified], ports: 1...2, baseProto: 7), revision: 2))),
        Case(description: "v4 inverted two-dimension set, accept", entry: XtablesEntry(
            family: .ipv4, matches: [.set(.init(index: 2, directions: [.destination, .source], inverted: true, options: 1))], target: .verdict(.accept))),
        Case(description: "v4 drop and queue", entry: XtablesEntry(family: .ipv4, matches: [.comment("")], target: .verdict(.drop))),
        Case(description: "v4 queue", entry: XtablesEntry(family: .ipv4, target: .verdict(.queue))),
        Case(description: "v4 other target", entry: XtablesEntry(
            family: .ipv4, target: .other(name: "LOG", revision: 0, data: [4, 0] + Array("x".utf8) + [UInt8](repeating: 0, count: 29)))),
        Case(description: "v6 jump by set", entry: XtablesEntry(
            family: .ipv6, matches: [.set(.init(index: 1, directions: [.source])), .comment("c")], target: .jump("RANDSNAT-y"))),
        Case(description: "v6 bypass", entry: XtablesEntry(
            family: .ipv6, destination: masked("2001:db8:19::/48"), matches: [.comment("b")], target: .verdict(.return))),
        Case(description: "v6 SNAT revision 1", entry: XtablesEntry(
            family: .ipv6, source: masked("2001:db8::/32"), outInterface: InterfaceName("vlan+"), proto: 6, flags: [.protocolGiven],
            inverse: [.outInterface, .source],
            target: .snat(NATRange(flags: [.mapIPs, .protoSpecified, .randomFully], addresses: ip("2001:db8::1")...ip("2001:db8::9"), ports: 5...6),
                          revision: 1))),
        Case(description: "v6 masquerade, tos, goto", entry: XtablesEntry(
            family: .ipv6, tos: 0x10, flags: [.tosGiven, .goto], inverse: [.tos],
            target: .masquerade(NATRange(flags: [.randomFully])))),
        Case(description: "v6 SNAT revision 2", entry: XtablesEntry(
            family: .ipv6, target: .snat(NATRange(flags: [.mapIPs], addresses: ip("2001:db8::1")...ip("2001:db8::2"), baseProto: 9), revision: 2))),
    ]

    @Test(arguments: entries) func encodedEntriesReadBackAsThemselves(_ test: Case) throws {
        let bytes = test.entry.encoded()
        #expect(try XtablesEntry(decoding: bytes, family: test.entry.family) == test.entry)
        // The sizes the header gives are the bytes' own.
        #expect(bytes.count % 8 == 0)
    }

    @Test func everyEntryLibiptcReadBackDecodesAndEncodesToItsBytes() throws {
        #expect(LibiptcFixture.rules.count == 16)
        for rule in LibiptcFixture.rules {
            let entry = try XtablesEntry(decoding: rule.bytes, family: rule.family, targetName: rule.targetName)
            #expect(entry.target.name == rule.targetName, "\(rule.chain) \(rule.targetName)")
            let encoded = entry.encoded()
            #expect(encoded.count == rule.bytes.count)
            // The ipt_ip/ip6t_ip6 part, the offsets and the matches are the same bytes; counters,
            // comefrom and a standard target's verdict are the kernel's and libiptc's.
            let ipPart = rule.family == .ipv4 ? MemoryLayout<ipt_ip>.size : MemoryLayout<ip6t_ip6>.size
            let header = XtablesEntry.headerSize(rule.family)
            let targetAt = rule.family == .ipv4 ? MemoryLayout<ipt_entry>.offset(of: \.target_offset)! : MemoryLayout<ip6t_entry>.offset(of: \.target_offset)!
            let targetOffset = Int(rule.bytes[targetAt]) | Int(rule.bytes[targetAt + 1]) << 8
            #expect(encoded[0..<ipPart] == rule.bytes[0..<ipPart], "\(rule.chain) \(rule.targetName)")
            #expect(encoded[targetAt..<(targetAt + 4)] == rule.bytes[targetAt..<(targetAt + 4)])
            #expect(encoded[header..<targetOffset] == rule.bytes[header..<targetOffset], "\(rule.chain) \(rule.targetName)")
            switch entry.target {
            case .verdict, .jump: break
            default: #expect(encoded[targetOffset...] == rule.bytes[targetOffset...], "\(rule.chain) \(rule.targetName)")
            }
        }
    }

    @Test func foreignRulesReadAsTheirCommands() throws {
        func entry(_ family: Family, _ chain: String, _ index: Int) throws -> XtablesEntry {
            let rule = LibiptcFixture.rule(family, chain, index)
            return try XtablesEntry(decoding: rule.bytes, family: family, targetName: rule.targetName)
        }
        // -s 10.1.0.0/16 ! -d 10.2.3.4/32 ! -o eth+ -p udp -j MASQUERADE --to-ports 1000-2000 --random
        #expect(try entry(.ipv4, "POSTROUTING", 1) == XtablesEntry(
            family: .ipv4, source: Self.masked("10.1.0.0/16"), destination: Self.masked("10.2.3.4/32"), outInterface: InterfaceName("eth+"),
            proto: 17, inverse: [.destination, .outInterface], target: .masquerade(NATRange(flags: [.protoSpecified, .random], ports: 1000...2000))))
        // -m mark ... -m addrtype ... -g FOREIGN
        let goto = try entry(.ipv4, "POSTROUTING", 2)
        #expect(goto.flags == [.goto] && goto.target == .jump("FOREIGN"))
        #expect(goto.matches.map(\.name) == ["mark", "addrtype"])
        // -o eth0 -p sctp -j SNAT --to-source 203.0.113.1-203.0.113.5:40000-40999 --random-fully --persistent
        let snat = try entry(.ipv4, "POSTROUTING", 3)
        #expect(snat.outInterface == InterfaceName("eth0") && snat.proto == 132)
        #expect(snat.target.natRange(family: .ipv4) == NATRange(flags: [.mapIPs, .protoSpecified, .randomFully, .persistent],
                                                                 addresses: Self.ip("203.0.113.1")...Self.ip("203.0.113.5"), ports: 40000...40999))
        // -m set ! --match-set OTHER dst,src -j ACCEPT
        #expect(try entry(.ipv4, "POSTROUTING", 4) == XtablesEntry(
            family: .ipv4, matches: [.set(.init(index: 2, directions: [.destination, .source], inverted: true))], target: .verdict(.accept)))
        // -m statistic --mode random --probability 0.25 -j RETURN: iptables also copies the probability
        // into the unused u.nth.count, which `.randomSample` does not hold, so the match keeps its bytes.
        let sample = try entry(.ipv4, "POSTROUTING", 5)
        #expect(sample.target == .verdict(.return))
        guard case .other(name: "statistic", revision: 0, let data)? = sample.matches.first, data.count == 24 else {
            Issue.record("statistic with a count is not `.randomSample`: \(sample.matches)")
            return
        }
        #expect(XtablesMatch(name: "statistic", revision: 0, data: Array(data[0..<12]) + Array(repeating: 0, count: 12))
                == .randomSample(probability: 0x2000_0000))
        #expect(try entry(.ipv4, "FOREIGN", 0) == XtablesEntry(family: .ipv4, flags: [.fragment], target: .verdict(.return)))
        // ip6tables -s 2001:db8::/32 ! -o vlan+ -p tcp -j SNAT --to-source 2001:db8::1-2001:db8::9 --random-fully
        let snat6 = try entry(.ipv6, "POSTROUTING", 1)
        #expect(snat6.source == Self.masked("2001:db8::/32") && snat6.outInterface == InterfaceName("vlan+") && snat6.inverse == [.outInterface])
        #expect(snat6.proto == 6 && snat6.flags.contains(.protocolGiven))
        #expect(snat6.target.natRange(family: .ipv6) == NATRange(flags: [.mapIPs, .randomFully], addresses: Self.ip("2001:db8::1")...Self.ip("2001:db8::9")))
        #expect(try entry(.ipv6, "RS-C", 2) == XtablesEntry(family: .ipv6, target: .verdict(.accept)))
        // Without libiptc's name, a standard target reads by its verdict; a jump (an offset) stays bytes.
        for (family, chain, index, verdict) in [(Family.ipv4, "POSTROUTING", 4, XtablesTarget.Verdict.accept), (.ipv4, "POSTROUTING", 5, .return),
                                                (.ipv6, "RS-C", 2, .accept), (.ipv6, "RS-C", 0, .return)] {
            let rule = LibiptcFixture.rule(family, chain, index)
            #expect(try XtablesEntry(decoding: rule.bytes, family: family).target == .verdict(verdict))
        }
        let jump = LibiptcFixture.rule(.ipv4, "POSTROUTING", 0)
        guard case .other(name: "", revision: 0, _) = try XtablesEntry(decoding: jump.bytes, family: .ipv4).target else {
            Issue.record("a jump without its chain's name is not a verdict")
            return
        }
        guard case .other(name: "LOG", revision: 0, _) = try entry(.ipv6, "RS-C", 3).target else {
            Issue.record("LOG is not a typed target")
            return
        }
    }

    /// What the iptables backend decides with `==`: randsnat's rules as iptables wrote them are the
    /// ones RuleEncoder makes, and a rule that differs in one thing is not.
    @Test func rulesIptablesWroteAreTheOnesRandsnatWrites() throws {
        func encoded(_ rule: NATRule, _ family: Family) throws -> EncodedRule {
            try RuleEncoder.encode(rule, family: family, chain: "RS-C") { name throws(NetfilterError) in name == "RS-P4" ? 0 : (name == "RS-P6" ? 1 : 9) }
        }
        func read(_ family: Family, _ chain: String, _ index: Int) -> IPTCTable.Rule {
            let rule = LibiptcFixture.rule(family, chain, index)
            return IPTCTable.Rule(bytes: rule.bytes, targetName: rule.targetName)
        }
        let cases: [(IPTCTable.Rule, NATRule, Family)] = [
            (read(.ipv4, "POSTROUTING", 0), NATRule(setMatch: .init(set: "RS-P4", directions: [.source]),
                                                    comment: "randsnat: name: \"net\" generation: abc", target: .jump("RS-C")), .ipv4),
            (read(.ipv4, "RS-C", 0), NATRule(destination: CIDR("198.19.0.0/16"), outInterface: "eth0", comment: "randsnat: name: net: bypass",
                                             target: .return), .ipv4),
            (read(.ipv4, "RS-C", 1), NATRule(proto: .tcp, comment: "randsnat: name: net: masquerade",
                                             target: .masquerade(ports: PortRange("40000-40999"))), .ipv4),
            (read(.ipv4, "RS-C", 2), NATRule(comment: "randsnat: name: net: snat", target: .snat(AddressRange("203.0.113.9")!, ports: nil)), .ipv4),
            (read(.ipv6, "POSTROUTING", 0), NATRule(setMatch: .init(set: "RS-P6", directions: [.source]),
                                                    comment: "randsnat: name: \"net\" generation: abc", target: .jump("RS-C")), .ipv6),
            (read(.ipv6, "RS-C", 0), NATRule(destination: CIDR("2001:db8:19::/48"), comment: "randsnat: name: net: bypass", target: .return), .ipv6),
            (read(.ipv6, "RS-C", 1), NATRule(proto: .udp, comment: "randsnat: name: net: masquerade",
                                             target: .masquerade(ports: PortRange("40000-40999"))), .ipv6),
        ]
        for (read, rule, family) in cases {
            #expect(IPTablesBackend.matches(read, try encoded(rule, family)), "\(rule.rendered(in: "RS-C"))")
            var other = rule
            other.comment += "!"
            #expect(!IPTablesBackend.matches(read, try encoded(other, family)))
            other = rule
            other.target = rule.target == .return ? .jump("RS-C") : .return
            #expect(!IPTablesBackend.matches(read, try encoded(other, family)))
            other = rule
            other.proto = rule.proto == nil ? .sctp : nil
            #expect(!IPTablesBackend.matches(read, try encoded(other, family)))
            if let set = rule.setMatch {
                other = rule
                other.setMatch = .init(set: "elsewhere", directions: set.directions)
                #expect(!IPTablesBackend.matches(read, try encoded(other, family)))
            }
            if case .masquerade = rule.target {
                other = rule
                other.target = .masquerade(ports: PortRange("40000-40998"))
                #expect(!IPTablesBackend.matches(read, try encoded(other, family)))
            }
        }
        // A rule with no comment is not randsnat's RETURN.
        #expect(!IPTablesBackend.matches(read(.ipv6, "RS-C", 2), try encoded(NATRule(comment: "", target: .return), .ipv6)))
    }

    @Test func truncatedEntriesThrow() {
        for rule in LibiptcFixture.rules {
            for length in 0..<rule.bytes.count {
                #expect(throws: XtablesEntryError.self) {
                    try XtablesEntry(decoding: Array(rule.bytes.prefix(length)), family: rule.family, targetName: rule.targetName)
                }
            }
        }
    }

    /// Sizes that disagree with each other or with the bytes: each is refused, none is followed.
    @Test func inconsistentSizesThrow() {
        let entry = XtablesEntry(family: .ipv4, matches: [.comment("c")], target: .jump("X"))
        let bytes = entry.encoded()
        let at = MemoryLayout<ipt_entry>.offset(of: \.target_offset)!
        let header = XtablesEntry.headerSize(.ipv4)
        func with(_ offset: Int, _ value: Int) -> [UInt8] {
            var copy = bytes
            copy[offset] = UInt8(value & 0xFF)
            copy[offset + 1] = UInt8(value >> 8)
            return copy
        }
        let broken: [(String, [UInt8])] = [
            ("next_offset past the end", with(at + 2, bytes.count + 8)),
            ("next_offset short of the end", with(at + 2, bytes.count - 8)),
            ("bytes after next_offset", bytes + [UInt8](repeating: 0, count: 8)),
            ("target_offset inside the header", with(at, header - 8)),
            ("target_offset past next_offset", with(at, bytes.count)),
            ("target_offset inside the match", with(at, header + 40)),
            ("a match of size 0", with(header, 0)),
            ("a match longer than the space before the target", with(header, 296)),
            ("a target shorter than its space", with(header + 288, 32)),
            ("a name with no NUL", { var copy = bytes; for index in (header + 2)..<(header + 31) { copy[index] = 0x41 }; return copy }()),
            ("unknown flags", { var copy = bytes; copy[MemoryLayout<ipt_entry>.offset(of: \.ip.flags)!] = 0x80; return copy }()),
        ]
        for (what, bytes) in broken {
            #expect(throws: XtablesEntryError.self, "\(what)") { try XtablesEntry(decoding: bytes, family: .ipv4) }
        }
        #expect(throws: XtablesEntryError.self) { try XtablesEntry(decoding: bytes, family: .ipv6) }
    }

    /// Random bytes and randomly damaged entries: decoding returns or throws, never traps or reads past the end.
    @Test func garbageNeverTraps() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        var decoded = 0
        for round in 0..<4000 {
            let base = LibiptcFixture.rules[round % LibiptcFixture.rules.count]
            var bytes = base.bytes
            if round % 4 == 0 {
                bytes = (0..<Int(next() % 400)).map { _ in UInt8(truncatingIfNeeded: next()) }
            } else {
                for _ in 0..<(1 + Int(next() % 4)) where !bytes.isEmpty {
                    bytes[Int(next()) % bytes.count] = UInt8(truncatingIfNeeded: next())
                }
            }
            if let entry = try? XtablesEntry(decoding: bytes, family: base.family, targetName: round % 2 == 0 ? base.targetName : nil) {
                decoded += 1
                _ = entry.encoded()
            }
        }
        #expect(decoded > 0)
    }
}
