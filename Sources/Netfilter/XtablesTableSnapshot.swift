internal import CNetfilterUAPI
internal import Glibc
import RandSNATCore
import SystemCalls

/// What the read-only paths read of a legacy nat table (the chains, their rules with libiptc's
/// target names): an `IPTCTable` (libiptc) or an `XtablesTableSnapshot` (the kernel's blob).
protocol XtablesTableView: AnyObject {
    var family: Family { get }
    /// Built-in chains in hook order, then user chains by name (libiptc's order).
    var chains: [String] { get }
    func chainExists(_ chain: String) -> Bool
    func rules(in chain: String) -> [IPTCTable.Rule]
}

extension IPTCTable: XtablesTableView {}

/// One family's xtables table as the kernel hands it out: getsockopt IPT_SO_GET_INFO for its size,
/// then IPT_SO_GET_ENTRIES into one buffer, walked in place. For the read-only paths (doctor, the
/// agent's metrics, the shadowing check, the foreign rule count): it holds the table's bytes once
/// and an offset per chain, where libiptc's `iptc_init` holds them plus a parsed copy of every rule
/// and chain (measured: 20,000 kube-proxy rules took the agent from 15 MB to 80 MB RSS).
/// Writers keep `IPTCTable` (a commit replaces the whole table, which libiptc builds).
final class XtablesTableSnapshot: XtablesTableView {
    /// A chain: its rules are the entries from `start` up to `end` (its policy or its RETURN foot).
    struct Chain: Equatable {
        let name: String
        /// The first entry that belongs to the chain (a user chain's ERROR head, a built-in's hook entry).
        let head: Int
        /// The first rule.
        let start: Int
        /// The chain's last entry (not a rule): a built-in chain's policy, a user chain's RETURN.
        let end: Int
        let isBuiltin: Bool
    }

    let family: Family
    let table: String
    /// The entries (`size` bytes of `storage`).
    private let bytes: UnsafeRawBufferPointer
    /// In the order of the blob (by `head`).
    private(set) var blobChains: [Chain] = []
    private var byName: [String: Int] = [:]

    /// Built-in chain names by hook number (NF_INET_PRE_ROUTING ... NF_INET_POST_ROUTING).
    static let hookNames = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]

    /// Reads the table from the kernel (the kernel loads its module as for iptables).
    convenience init(family: Family, table: String = "nat") throws(NetfilterError) {
        let (region, total, entries, info) = try Self.fetch(family: family, table: table)
        do {
            try self.init(family: family, table: table, entries: entries, info: info, mapping: (region, total))
        } catch {
            munmap(region, total)
            throw .tableUnavailable(table: table, family: family, reason: "\(error)")
        }
    }

    /// The kernel's blob in a mapping of its own (unmapped with the snapshot: a table of many MB does
    /// not stay in malloc's heap after the scan).
    private static func fetch(family: Family, table: String) throws(NetfilterError)
        -> (region: UnsafeMutableRawPointer, total: Int, entries: UnsafeRawBufferPointer, info: Info) {
        let fd = family == .ipv4 ? socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
                                 : socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else { throw .tableUnavailable(table: table, family: family, reason: reason(errno)) }
        defer { close(fd) }
        let level = family == .ipv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6)
        // The table can change between the two calls (EAGAIN: the size no longer matches): a few tries.
        var attempt = 0
        while true {
            attempt += 1
            var info = Info()
            let infoSize = family == .ipv4 ? MemoryLayout<ipt_getinfo>.size : MemoryLayout<ip6t_getinfo>.size
            var length = socklen_t(infoSize)
            let infoBuffer = UnsafeMutableRawPointer.allocate(byteCount: infoSize, alignment: 8)
            defer { infoBuffer.deallocate() }
            infoBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: infoSize)
            let name = Array(table.utf8.prefix(Int(XT_TABLE_MAXNAMELEN) - 1))
            infoBuffer.copyMemory(from: name, byteCount: name.count)
            guard getsockopt(fd, level, family == .ipv4 ? IPT_SO_GET_INFO : IP6T_SO_GET_INFO, infoBuffer, &length) == 0 else {
                throw .tableUnavailable(table: table, family: family, reason: reason(errno))
            }
            if family == .ipv4 {
                let got = infoBuffer.loadUnaligned(as: ipt_getinfo.self)
                info = Info(validHooks: got.valid_hooks, hookEntry: withUnsafeBytes(of: got.hook_entry) { Array($0.bindMemory(to: UInt32.self)) },
                            underflow: withUnsafeBytes(of: got.underflow) { Array($0.bindMemory(to: UInt32.self)) }, size: Int(got.size))
            } else {
                let got = infoBuffer.loadUnaligned(as: ip6t_getinfo.self)
                info = Info(validHooks: got.valid_hooks, hookEntry: withUnsafeBytes(of: got.hook_entry) { Array($0.bindMemory(to: UInt32.self)) },
                            underflow: withUnsafeBytes(of: got.underflow) { Array($0.bindMemory(to: UInt32.self)) }, size: Int(got.size))
            }
            // ipt_get_entries: name[32], size, then the entries at the entry struct's alignment
            // (Swift imports the struct without its zero-length entrytable).
            let alignment = family == .ipv4 ? MemoryLayout<ipt_entry>.alignment : MemoryLayout<ip6t_entry>.alignment
            let headerSize = family == .ipv4 ? MemoryLayout<ipt_get_entries>.size : MemoryLayout<ip6t_get_entries>.size
            let entriesOffset = (headerSize + alignment - 1) / alignment * alignment
            let total = entriesOffset + info.size
            guard let region = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), region != MAP_FAILED else {
                throw .tableUnavailable(table: table, family: family, reason: "cannot map \(total) bytes: \(reason(errno))")
            }
            region.copyMemory(from: name, byteCount: name.count)
            region.storeBytes(of: UInt32(info.size), toByteOffset: MemoryLayout<ipt_get_entries>.offset(of: \.size)!, as: UInt32.self)
            var entriesLength = socklen_t(total)
            if getsockopt(fd, level, family == .ipv4 ? IPT_SO_GET_ENTRIES : IP6T_SO_GET_ENTRIES, region, &entriesLength) != 0 {
                let code = errno
                munmap(region, total)
                if code == EAGAIN && attempt < 5 { continue }
                throw .tableUnavailable(table: table, family: family, reason: reason(code))
            }
            return (region, total, UnsafeRawBufferPointer(start: region + entriesOffset, count: info.size), info)
        }
    }

    /// The table's layout (ipt_getinfo/ip6t_getinfo): which hooks it has, where each built-in
    /// chain starts (hook entry) and where its policy is (underflow), and the entries' size.
    struct Info: Equatable {
        var validHooks: UInt32 = 0
        var hookEntry: [UInt32] = []
        var underflow: [UInt32] = []
        var size = 0
    }

    /// The region `bytes` lie in, unmapped with the snapshot; nil: `bytes` is an allocation of its own.
    private let mapping: (UnsafeMutableRawPointer, Int)?

    /// Walks `entries` (what IPT_SO_GET_ENTRIES returns), checking every offset against its size.
    /// - Parameter mapping: the region `entries` lie in, which the snapshot then owns (unmapped
    ///   when it goes; on a throw the caller still owns it); nil: `entries` is copied.
    init(family: Family, table: String = "nat", entries: UnsafeRawBufferPointer, info: Info,
         mapping: (UnsafeMutableRawPointer, Int)? = nil) throws(XtablesEntryError) {
        let chains = try Self.walk(entries, family: family, info: info)
        self.family = family
        self.table = table
        self.mapping = mapping
        if mapping != nil {
            bytes = entries
        } else {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: entries.count, alignment: 8)
            if let base = entries.baseAddress { copy.copyMemory(from: UnsafeRawBufferPointer(start: base, count: entries.count)) }
            bytes = UnsafeRawBufferPointer(copy)
        }
        blobChains = chains
        for (index, chain) in chains.enumerated() { byName[chain.name] = index }
    }

    deinit {
        if let (region, size) = mapping { munmap(region, size) } else { bytes.deallocate() }
    }

    /// The words libiptc's `iptc_init` gives for these errors (`iptc_strerror`), so that doctor's
    /// lines read as they did when libiptc read the table.
    static func reason(_ code: Int32) -> String {
        switch code {
        case EPERM: "Permission denied (you must be root)"
        case EINVAL: "Module is wrong version"
        case ENOENT: "Table does not exist (do you need to insmod?)"
        case ENOPROTOOPT: "iptables who? (do you need to insmod?)"
        case ENOMEM: "Memory allocation problem"
        default: Errno(code).message
        }
    }

    var chains: [String] {
        blobChains.filter(\.isBuiltin).map(\.name) + blobChains.filter { !$0.isBuiltin }.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    func chainExists(_ chain: String) -> Bool { byName[chain] != nil }

    func rules(in chain: String) -> [IPTCTable.Rule] {
        var rules: [IPTCTable.Rule] = []
        forEachRule(in: chain) { offset, size, name in
            rules.append(IPTCTable.Rule(bytes: Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)])), targetName: name))
        }
        return rules
    }

    /// Each rule of `chain` (its offset, size, libiptc's target name) without copying its bytes.
    func forEachRule(in chain: String, _ body: (Int, Int, String) -> Void) {
        guard let index = byName[chain] else { return }
        let chain = blobChains[index]
        var offset = chain.start
        while offset < chain.end {
            let (_, next) = Self.offsets(bytes, at: offset, family: family)
            body(offset, next, targetName(at: offset))
            offset += next
        }
    }

    /// Rules not randsnat's: in chains whose names are not randsnat's, with targets that are not
    /// randsnat's chains (`IPTablesBackend.foreignRuleCount`'s count, without copying a rule).
    var foreignRuleCount: Int {
        var count = 0
        for chain in blobChains where !chain.name.hasPrefix(NetworkID.prefix) {
            forEachRule(in: chain.name) { _, _, name in
                if !name.hasPrefix(NetworkID.prefix) { count += 1 }
            }
        }
        return count
    }

    /// libiptc's name for the target of the entry at `offset` (`iptc_get_target`): a verdict, the
    /// chain of a jump (the kernel holds its offset), "" for a fall-through, else the extension's name.
    func targetName(at offset: Int) -> String {
        let (targetOffset, _) = Self.offsets(bytes, at: offset, family: family)
        let (name, data, _) = Self.block(bytes, at: offset + targetOffset)
        guard name.isEmpty else { return name }  // XT_STANDARD_TARGET is ""
        guard data.count >= MemoryLayout<Int32>.size else { return "" }
        let verdict = bytes.loadUnaligned(fromByteOffset: data.lowerBound, as: Int32.self)
        if verdict < 0 {
            return XtablesTarget.Verdict.allCases.first { XtablesTarget.verdict($0).code == verdict }?.rawValue ?? ""
        }
        return chain(containing: Int(verdict))?.name ?? ""
    }

    /// The user chain whose entries hold `offset` (a jump's verdict: its first rule, or its foot).
    func chain(containing offset: Int) -> Chain? {
        var low = 0, high = blobChains.count  // the last chain with head <= offset
        while low < high {
            let middle = (low + high) / 2
            if blobChains[middle].head <= offset { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let chain = blobChains[low - 1]
        return !chain.isBuiltin && offset <= chain.end ? chain : nil
    }

    // MARK: walking the blob

    /// target_offset and next_offset of the entry at `offset` (checked by `walk`).
    private static func offsets(_ bytes: UnsafeRawBufferPointer, at offset: Int, family: Family) -> (target: Int, next: Int) {
        switch family {
        case .ipv4:
            let entry = bytes.loadUnaligned(fromByteOffset: offset, as: ipt_entry.self)
            return (Int(entry.target_offset), Int(entry.next_offset))
        case .ipv6:
            let entry = bytes.loadUnaligned(fromByteOffset: offset, as: ip6t_entry.self)
            return (Int(entry.target_offset), Int(entry.next_offset))
        }
    }

    /// The name and data range of the match or target block at `offset` (checked by `walk`).
    private static func block(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (name: String, data: Range<Int>, size: Int) {
        let header = bytes.loadUnaligned(fromByteOffset: offset, as: xt_entry_target.self)
        let size = Int(header.u.user.target_size)
        let name = withUnsafeBytes(of: header.u.user.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return (name, (offset + XtablesEntry.extensionHeaderSize)..<(offset + max(size, XtablesEntry.extensionHeaderSize)), size)
    }

    /// The chains of the blob, every entry's offsets checked against the bytes there are.
    static func walk(_ bytes: UnsafeRawBufferPointer, family: Family, info: Info) throws(XtablesEntryError) -> [Chain] {
        let headerSize = XtablesEntry.headerSize(family)
        var hookAt: [Int: String] = [:], policyAt: Set<Int> = []
        for (hook, name) in hookNames.enumerated() where info.validHooks & (1 << UInt32(hook)) != 0 {
            guard hook < info.hookEntry.count, hook < info.underflow.count else { continue }
            hookAt[Int(info.hookEntry[hook])] = name
            policyAt.insert(Int(info.underflow[hook]))
        }
        var chains: [Chain] = []
        var current: (name: String, head: Int, start: Int, builtin: Bool)?
        var previous: Int?
        var offset = 0
        var ended = false  // by the closing ERROR entry
        while offset < bytes.count {
            guard offset + headerSize <= bytes.count else {
                throw XtablesEntryError(reason: "the entry at \(offset) needs \(headerSize) bytes; \(bytes.count - offset) are left")
            }
            let (targetOffset, next) = offsets(bytes, at: offset, family: family)
            guard targetOffset >= headerSize, targetOffset + XtablesEntry.extensionHeaderSize <= next, offset + next <= bytes.count else {
                throw XtablesEntryError(reason: "the entry at \(offset) has target_offset \(targetOffset) and next_offset \(next); "
                                        + "\(bytes.count - offset) bytes are left")
            }
            let (name, data, size) = block(bytes, at: offset + targetOffset)
            guard size >= XtablesEntry.extensionHeaderSize, targetOffset + size <= next else {
                throw XtablesEntryError(reason: "the target of the entry at \(offset) says it has \(size) bytes; \(next - targetOffset) are left")
            }
            // A user chain ends at the entry before the next chain's head (that entry is its RETURN).
            func closeUserChain() {
                if let open = current, !open.builtin, let previous {
                    chains.append(Chain(name: open.name, head: open.head, start: open.start, end: previous, isBuiltin: false))
                }
            }
            if let builtin = hookAt[offset] {
                closeUserChain()
                current = (builtin, offset, offset, true)
            }
            if name == "ERROR" {  // XT_ERROR_TARGET: a user chain's head, or the table's end
                closeUserChain()
                let label = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[data]).prefix { $0 != 0 }, as: UTF8.self)
                if label == "ERROR" {  // the table's end: the last entry
                    guard offset + next == bytes.count else {
                        throw XtablesEntryError(reason: "the table's closing ERROR entry at \(offset) is not its last")
                    }
                    ended = true
                    current = nil
                } else {
                    current = (label, offset, offset + next, false)
                }
            } else if policyAt.contains(offset) {
                guard let open = current, open.builtin else {
                    throw XtablesEntryError(reason: "the policy at \(offset) belongs to no built-in chain")
                }
                chains.append(Chain(name: open.name, head: open.head, start: open.start, end: offset, isBuiltin: true))
                current = nil
            }
            previous = offset
            offset += next
        }
        guard ended else { throw XtablesEntryError(reason: "the table's \(bytes.count) bytes end without its closing ERROR entry") }
        return chains
    }
}
