import CNetfilter
import Testing
@testable import Netfilter
@testable import RandSNATCore

/// The kernel's table blob (what IPT_SO_GET_ENTRIES returns) walked without root: blobs made of
/// codec-encoded entries, in the layout the kernel gives (built-in chains at their hook entries with
/// their policies, user chains behind ERROR heads ending in a RETURN, a closing ERROR entry), for
/// both families; and blobs cut short, which throw.
struct XtablesTableSnapshotTests {
    /// A standard target (XT_STANDARD_TARGET, named ""): a verdict < 0, or a jump's offset.
    static func standard(_ family: Family, _ verdict: Int32) -> [UInt8] {
        XtablesEntry(family: family, target: .other(name: "", revision: 0, data: withUnsafeBytes(of: verdict) { Array($0) })).encoded()
    }

    /// An ERROR entry: a user chain's head (its name), or the table's end ("ERROR").
    static func error(_ family: Family, _ name: String) -> [UInt8] {
        let data = Array(name.utf8) + [UInt8](repeating: 0, count: Int(XT_FUNCTION_MAXNAMELEN) - name.utf8.count)
        return XtablesEntry(family: family, target: .other(name: "ERROR", revision: 0, data: data)).encoded()
    }

    static let chain = NetworkID.prefix + "TEST-4"
    static func masquerade(_ family: Family) -> XtablesEntry {
        XtablesEntry(family: family, outInterface: InterfaceName("eth0"), matches: [.comment("theirs")], target: .masquerade(NATRange()))
    }
    static func snat(_ family: Family) -> XtablesEntry {
        XtablesEntry(family: family, matches: [.set(.init(index: 2, directions: [.source]))],
                     target: .masquerade(NATRange(flags: [.randomFully, .protoSpecified], ports: 1024...65535)))
    }

    /// POSTROUTING: MASQUERADE, a jump to `chain`, policy ACCEPT; `chain`: one rule, RETURN; the end.
    /// Only POSTROUTING is a hook of this table.
    static func blob(_ family: Family) -> (bytes: [UInt8], info: XtablesTableSnapshot.Info) {
        let first = masquerade(family).encoded()
        let jumpSize = standard(family, 0).count
        let policyOffset = first.count + jumpSize
        let headOffset = policyOffset + standard(family, 0).count
        let chainStart = headOffset + error(family, chain).count
        var bytes = first + standard(family, Int32(chainStart)) + standard(family, XtablesTarget.verdict(.accept).code!)
        bytes += error(family, chain) + snat(family).encoded() + standard(family, XtablesTarget.verdict(.return).code!)
        bytes += error(family, "ERROR")
        var info = XtablesTableSnapshot.Info(validHooks: 1 << 4, hookEntry: [0, 0, 0, 0, 0], underflow: [0, 0, 0, 0, 0], size: bytes.count)
        info.underflow[4] = UInt32(policyOffset)
        return (bytes, info)
    }

    @Test(arguments: Family.allCases)
    func walksChainsRulesAndJumps(family: Family) throws {
        let (bytes, info) = Self.blob(family)
        let table = try bytes.withUnsafeBytes { try XtablesTableSnapshot(family: family, entries: $0, info: info) }
        #expect(table.chains == ["POSTROUTING", Self.chain])
        #expect(table.chainExists(Self.chain) && !table.chainExists("PREROUTING"))
        let postrouting = table.rules(in: "POSTROUTING")
        #expect(postrouting.map(\.targetName) == ["MASQUERADE", Self.chain])
        #expect(try postrouting[0].entry(family) == Self.masquerade(family))
        #expect(try postrouting[1].entry(family).target == .jump(Self.chain))
        let rules = table.rules(in: Self.chain)
        #expect(rules.map(\.targetName) == ["MASQUERADE"])
        #expect(try rules[0].entry(family) == Self.snat(family))
        // randsnat's chain and the jump to it are not foreign: the MASQUERADE is.
        #expect(table.foreignRuleCount == 1)
    }

    @Test(arguments: Family.allCases)
    func blobsCutShortThrow(family: Family) throws {
        let (bytes, info) = Self.blob(family)
        for length in 1..<bytes.count {
            var cut = info
            cut.size = length
            #expect(throws: XtablesEntryError.self) {
                try bytes.prefix(length).withUnsafeBytes { _ = try XtablesTableSnapshot(family: family, entries: $0, info: cut) }
            }
        }
    }

    @Test func aTargetLongerThanItsEntryThrows() throws {
        var (bytes, info) = Self.blob(.ipv4)
        // The first entry's target says it runs past next_offset.
        let targetOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: ipt_entry.self) }.target_offset)
        bytes[targetOffset] = 0xFF
        bytes[targetOffset + 1] = 0x7F
        info.size = bytes.count
        #expect(throws: XtablesEntryError.self) {
            try bytes.withUnsafeBytes { _ = try XtablesTableSnapshot(family: .ipv4, entries: $0, info: info) }
        }
    }
}
