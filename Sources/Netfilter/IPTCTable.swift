internal import CNetfilter
internal import Glibc
import RandSNATCore
import SystemCalls

/// One family's xtables table through libiptc/libip6tc: a snapshot read by `init`, edited in
/// memory, written back whole by `commit`. Every libiptc pointer lives in this file.
///
/// A commit replaces the whole table, so two writers without a lock lose each other's changes:
/// callers hold the xtables lock (`XtablesLock`) from `init` to `commit`.
final class IPTCTable {
    /// libiptc and libip6tc have the same functions under two prefixes; this holds one set.
    private struct Functions {
        let initialize: (UnsafePointer<CChar>) -> OpaquePointer?
        let free: (OpaquePointer) -> Void
        let isChain: (UnsafePointer<CChar>, OpaquePointer) -> Int32
        let firstChain: (OpaquePointer) -> UnsafePointer<CChar>?
        let nextChain: (OpaquePointer) -> UnsafePointer<CChar>?
        let firstRule: (UnsafePointer<CChar>, OpaquePointer) -> UnsafeRawPointer?
        let nextRule: (UnsafeRawPointer, OpaquePointer) -> UnsafeRawPointer?
        let target: (UnsafeRawPointer, OpaquePointer) -> UnsafePointer<CChar>?
        let append: (UnsafePointer<CChar>, UnsafeRawPointer, OpaquePointer) -> Int32
        let deleteNumbered: (UnsafePointer<CChar>, UInt32, OpaquePointer) -> Int32
        let flush: (UnsafePointer<CChar>, OpaquePointer) -> Int32
        let create: (UnsafePointer<CChar>, OpaquePointer) -> Int32
        let delete: (UnsafePointer<CChar>, OpaquePointer) -> Int32
        let commit: (OpaquePointer) -> Int32
        let strerror: (Int32) -> UnsafePointer<CChar>?

        static var ipv4: Functions { Functions(
            initialize: { iptc_init($0) }, free: { iptc_free($0) }, isChain: { iptc_is_chain($0, $1) },
            firstChain: { iptc_first_chain($0) }, nextChain: { iptc_next_chain($0) },
            firstRule: { UnsafeRawPointer(iptc_first_rule($0, $1)) },
            nextRule: { UnsafeRawPointer(iptc_next_rule($0.assumingMemoryBound(to: ipt_entry.self), $1)) },
            target: { iptc_get_target($0.assumingMemoryBound(to: ipt_entry.self), $1) },
            append: { iptc_append_entry($0, $1.assumingMemoryBound(to: ipt_entry.self), $2) },
            deleteNumbered: { iptc_delete_num_entry($0, $1, $2) }, flush: { iptc_flush_entries($0, $1) },
            create: { iptc_create_chain($0, $1) }, delete: { iptc_delete_chain($0, $1) },
            commit: { iptc_commit($0) }, strerror: { iptc_strerror($0) }) }

        static var ipv6: Functions { Functions(
            initialize: { ip6tc_init($0) }, free: { ip6tc_free($0) }, isChain: { ip6tc_is_chain($0, $1) },
            firstChain: { ip6tc_first_chain($0) }, nextChain: { ip6tc_next_chain($0) },
            firstRule: { UnsafeRawPointer(ip6tc_first_rule($0, $1)) },
            nextRule: { UnsafeRawPointer(ip6tc_next_rule($0.assumingMemoryBound(to: ip6t_entry.self), $1)) },
            target: { ip6tc_get_target($0.assumingMemoryBound(to: ip6t_entry.self), $1) },
            append: { ip6tc_append_entry($0, $1.assumingMemoryBound(to: ip6t_entry.self), $2) },
            deleteNumbered: { ip6tc_delete_num_entry($0, $1, $2) }, flush: { ip6tc_flush_entries($0, $1) },
            create: { ip6tc_create_chain($0, $1) }, delete: { ip6tc_delete_chain($0, $1) },
            commit: { ip6tc_commit($0) }, strerror: { ip6tc_strerror($0) }) }
    }

    /// A rule as read back: its bytes and its target's name.
    struct Rule {
        let bytes: [UInt8]
        /// libiptc's name for the target (`iptc_get_target`): a verdict, a chain, an extension.
        let targetName: String

        /// The rule as a value (a jump's chain named by libiptc).
        func entry(_ family: Family) throws(XtablesEntryError) -> XtablesEntry {
            try XtablesEntry(decoding: bytes, family: family, targetName: targetName)
        }
    }

    let family: Family
    let table: String
    private let functions: Functions
    private let handle: OpaquePointer
    private(set) var changed = false

    /// Reads the table. The corresponding C functions are `iptc_init` and `ip6tc_init`.
    init(family: Family, table: String = "nat") throws(NetfilterError) {
        self.family = family
        self.table = table
        functions = family == .ipv4 ? .ipv4 : .ipv6
        guard let handle = functions.initialize(table) else {
            throw .tableUnavailable(table: table, family: family, reason: Self.reason(functions, errno))
        }
        self.handle = handle
    }

    deinit { functions.free(handle) }

    private static func reason(_ functions: Functions, _ code: Int32) -> String {
        functions.strerror(code).map { String(cString: $0) } ?? "\(Errno(code))"
    }

    private func reason() -> String { Self.reason(functions, errno) }

    func chainExists(_ chain: String) -> Bool { functions.isChain(chain, handle) != 0 }

    var chains: [String] {
        var names: [String] = []
        var next = functions.firstChain(handle)
        while let name = next {
            names.append(String(cString: name))
            next = functions.nextChain(handle)
        }
        return names
    }

    func rules(in chain: String) -> [Rule] {
        var rules: [Rule] = []
        var next = functions.firstRule(chain, handle)
        while let entry = next {
            // next_offset is the entry's size, matches and target included.
            let size = family == .ipv4 ? Int(entry.loadUnaligned(as: ipt_entry.self).next_offset)
                                       : Int(entry.loadUnaligned(as: ip6t_entry.self).next_offset)
            let name = functions.target(entry, handle).map { String(cString: $0) } ?? ""
            rules.append(Rule(bytes: Array(UnsafeRawBufferPointer(start: entry, count: size)), targetName: name))
            next = functions.nextRule(entry, handle)
        }
        return rules
    }

    func createChain(_ chain: String) throws(NetfilterError) {
        guard functions.create(chain, handle) != 0 else {
            throw .chainOperationFailed(operation: "creating chain", chain: chain, reason: reason())
        }
        changed = true
    }

    func flush(_ chain: String) throws(NetfilterError) {
        guard functions.flush(chain, handle) != 0 else {
            throw .chainOperationFailed(operation: "flushing chain", chain: chain, reason: reason())
        }
        changed = true
    }

    func deleteChain(_ chain: String) throws(NetfilterError) {
        guard functions.delete(chain, handle) != 0 else {
            throw .chainOperationFailed(operation: "deleting chain", chain: chain, reason: reason())
        }
        changed = true
    }

    func append(_ rule: EncodedRule, to chain: String) throws(NetfilterError) {
        // libiptc reads the entry through a typed pointer: give it 8-byte-aligned memory.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: rule.bytes.count, alignment: 8)
        defer { buffer.deallocate() }
        rule.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        guard functions.append(chain, buffer, handle) != 0 else {
            throw .ruleRejected(chain: chain, rule: rule.text, reason: reason())
        }
        changed = true
    }

    /// Deletes the rule at `index` (0-based, as libiptc counts) of `chain`.
    func deleteRule(at index: Int, in chain: String) throws(NetfilterError) {
        guard functions.deleteNumbered(chain, UInt32(index), handle) != 0 else {
            throw .chainOperationFailed(operation: "deleting rule \(index + 1) of", chain: chain, reason: reason())
        }
        changed = true
    }

    /// Writes the table back if anything changed. The corresponding C function is `iptc_commit`.
    func commit() throws(NetfilterError) {
        guard changed else { return }
        guard functions.commit(handle) != 0 else {
            throw .commitFailed(table: table, family: family, reason: reason())
        }
        changed = false
    }
}
