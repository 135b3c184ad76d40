internal import CNetfilter
import RandSNATCore

// The xtables entry codec: `XtablesEntry` to the bytes libiptc takes, and the bytes libiptc (or the
// kernel) holds back to `XtablesEntry`. Every offset comes from the C structs (the header is loaded
// as an `ipt_entry`/`ip6t_entry`, each extension's data as its own struct), none is written here.
//
//   0                 ipt_entry (112 bytes) / ip6t_entry (168 bytes): ipt_ip/ip6t_ip6 (addresses, masks,
//                     interfaces, proto, flags, invflags), nfcache, target_offset, next_offset,
//                     comefrom, counters (the last three and nfcache are the kernel's: read as 0)
//   header size       matches, each an xt_entry_match: u16 size, name[29], revision, data; size is
//                     XT_ALIGNed and counts the 32-byte header
//   target_offset     the target, an xt_entry_target of the same shape; a standard target's data is
//                     an int verdict (< 0: -NF_ACCEPT-1, ..., XT_RETURN; >= 0: a jump's byte offset)
//   next_offset       the next entry
//
// Decoding checks every size against the bytes it has and throws rather than read past them. A
// match or target the typed cases cannot hold exactly (re-encoding would not give its bytes back)
// stays `.other` with its bytes, so `==` on entries says what comparing their bytes says, minus the
// kernel's fields (counters, a jump's offset, which libiptc resolves to the chain's name).

/// Why bytes could not be read as an xtables entry.
struct XtablesEntryError: Error, Equatable, CustomStringConvertible {
    let reason: String
    var description: String { "the rule's bytes are not an xtables entry: \(reason)" }
}

extension XtablesEntry.Inverse {
    static let inInterface = Self(rawValue: UInt8(IPT_INV_VIA_IN))
    static let outInterface = Self(rawValue: UInt8(IPT_INV_VIA_OUT))
    static let tos = Self(rawValue: UInt8(IPT_INV_TOS))
    static let source = Self(rawValue: UInt8(IPT_INV_SRCIP))
    static let destination = Self(rawValue: UInt8(IPT_INV_DSTIP))
    static let fragment = Self(rawValue: UInt8(IPT_INV_FRAG))
    static let proto = Self(rawValue: UInt8(IPT_INV_PROTO))
}

extension NATRange.Flags {
    static let mapIPs = Self(rawValue: UInt32(NF_NAT_RANGE_MAP_IPS))
    static let protoSpecified = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_SPECIFIED))
    static let random = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_RANDOM))
    static let persistent = Self(rawValue: UInt32(NF_NAT_RANGE_PERSISTENT))
    static let randomFully = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY))
}

extension XtablesEntry {
    /// Bytes of the entry header: sizeof(ipt_entry) or sizeof(ip6t_entry).
    static func headerSize(_ family: Family) -> Int {
        family == .ipv4 ? MemoryLayout<ipt_entry>.size : MemoryLayout<ip6t_entry>.size
    }

    /// Bytes of a match's or target's header (xt_entry_match and xt_entry_target are the same size).
    static let extensionHeaderSize = MemoryLayout<xt_entry_match>.size

    /// A standard target's data: the verdict.
    static let verdictData = [UInt8](repeating: 0, count: MemoryLayout<Int32>.size)

    // MARK: encode

    /// The entry as libiptc's `iptc_append_entry` takes it. Jumps and verdicts go by name (libiptc
    /// turns them into standard verdicts); flags a family has no bit for are left out.
    func encoded() -> [UInt8] {
        var body: [UInt8] = []
        for match in matches { body += Self.extensionBlock(name: match.name, revision: match.revision, data: match.data) }
        let (name, revision, data) = target.encodedParts(family: family)
        let target = Self.extensionBlock(name: name, revision: revision, data: data)
        return header(targetOffset: Self.headerSize(family) + body.count, nextOffset: Self.headerSize(family) + body.count + target.count)
            + body + target
    }

    private func header(targetOffset: Int, nextOffset: Int) -> [UInt8] {
        let mask = { (name: InterfaceName) -> [UInt8] in
            let length = name.isWildcard ? name.name.utf8.count - (name.name.hasSuffix("+") ? 1 : 0) : name.name.utf8.count + 1
            return [UInt8](repeating: 0xFF, count: max(0, length))
        }
        switch family {
        case .ipv4:
            var entry = ipt_entry()
            Self.store(source?.address.bytes, into: &entry.ip.src)
            Self.store(source?.mask.bytes, into: &entry.ip.smsk)
            Self.store(destination?.address.bytes, into: &entry.ip.dst)
            Self.store(destination?.mask.bytes, into: &entry.ip.dmsk)
            Self.store(inInterface.map { Array($0.name.utf8) }, into: &entry.ip.iniface)
            Self.store(inInterface.map(mask), into: &entry.ip.iniface_mask)
            Self.store(outInterface.map { Array($0.name.utf8) }, into: &entry.ip.outiface)
            Self.store(outInterface.map(mask), into: &entry.ip.outiface_mask)
            entry.ip.proto = proto
            entry.ip.flags = (flags.contains(.goto) ? UInt8(IPT_F_GOTO) : 0) | (flags.contains(.fragment) ? UInt8(IPT_F_FRAG) : 0)
            entry.ip.invflags = inverse.rawValue
            entry.target_offset = UInt16(targetOffset)
            entry.next_offset = UInt16(nextOffset)
            return withUnsafeBytes(of: entry) { Array($0) }
        case .ipv6:
            var entry = ip6t_entry()
            Self.store(source?.address.bytes, into: &entry.ipv6.src)
            Self.store(source?.mask.bytes, into: &entry.ipv6.smsk)
            Self.store(destination?.address.bytes, into: &entry.ipv6.dst)
            Self.store(destination?.mask.bytes, into: &entry.ipv6.dmsk)
            Self.store(inInterface.map { Array($0.name.utf8) }, into: &entry.ipv6.iniface)
            Self.store(inInterface.map(mask), into: &entry.ipv6.iniface_mask)
            Self.store(outInterface.map { Array($0.name.utf8) }, into: &entry.ipv6.outiface)
            Self.store(outInterface.map(mask), into: &entry.ipv6.outiface_mask)
            entry.ipv6.proto = proto
            entry.ipv6.tos = tos
            entry.ipv6.flags = (flags.contains(.goto) ? UInt8(IP6T_F_GOTO) : 0) | (flags.contains(.protocolGiven) ? UInt8(IP6T_F_PROTO) : 0)
                | (flags.contains(.tosGiven) ? UInt8(IP6T_F_TOS) : 0)
            entry.ipv6.invflags = inverse.rawValue
            entry.target_offset = UInt16(targetOffset)
            entry.next_offset = UInt16(nextOffset)
            return withUnsafeBytes(of: entry) { Array($0) }
        }
    }

    /// An `xt_entry_match`/`xt_entry_target` block: size, name, revision, data, XT_ALIGN padding.
    static func extensionBlock(name: String, revision: UInt8, data: [UInt8]) -> [UInt8] {
        var header = xt_entry_match()
        header.u.user.match_size = UInt16(randsnat_xt_align(UInt(extensionHeaderSize + data.count)))
        store(Array(name.utf8.prefix(Int(XT_EXTENSION_MAXNAMELEN) - 1)), into: &header.u.user.name)
        header.u.user.revision = revision
        return withUnsafeBytes(of: header) { Array($0) } + padded(data)
    }

    /// `data` with the zeros XT_ALIGN adds after it in a block.
    static func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: Int(randsnat_xt_align(UInt(extensionHeaderSize + data.count))) - extensionHeaderSize - data.count)
    }

    /// Copies `bytes` (nil: nothing) to the start of a C field, cut to its size.
    static func store<Field>(_ bytes: [UInt8]?, into field: inout Field) {
        guard let bytes else { return }
        withUnsafeMutableBytes(of: &field) { raw in
            for (offset, byte) in bytes.prefix(raw.count).enumerated() { raw[offset] = byte }
        }
    }

    // MARK: decode

    /// Reads one entry. `targetName` is libiptc's name for the target (`iptc_get_target`), which
    /// names the chain of a jump the kernel holds as an offset; without it such a jump is `.other`.
    init(decoding bytes: [UInt8], family: Family, targetName: String? = nil) throws(XtablesEntryError) {
        let headerSize = Self.headerSize(family)
        guard bytes.count >= headerSize else {
            throw XtablesEntryError(reason: "\(bytes.count) bytes, less than the \(headerSize)-byte entry header")
        }
        let targetOffset: Int, nextOffset: Int
        switch family {
        case .ipv4:
            let entry = bytes.withUnsafeBytes { $0.loadUnaligned(as: ipt_entry.self) }
            (targetOffset, nextOffset) = (Int(entry.target_offset), Int(entry.next_offset))
            let ip = entry.ip
            self.init(family: family, source: Self.address(family, ip.src, ip.smsk), destination: Self.address(family, ip.dst, ip.dmsk),
                      inInterface: Self.interface(ip.iniface, ip.iniface_mask), outInterface: Self.interface(ip.outiface, ip.outiface_mask),
                      proto: ip.proto, inverse: Inverse(rawValue: ip.invflags), target: .verdict(.accept))
            guard ip.flags & ~UInt8(IPT_F_MASK) == 0 else { throw XtablesEntryError(reason: "unknown flags \(ip.flags)") }
            if ip.flags & UInt8(IPT_F_GOTO) != 0 { flags.insert(.goto) }
            if ip.flags & UInt8(IPT_F_FRAG) != 0 { flags.insert(.fragment) }
        case .ipv6:
            let entry = bytes.withUnsafeBytes { $0.loadUnaligned(as: ip6t_entry.self) }
            (targetOffset, nextOffset) = (Int(entry.target_offset), Int(entry.next_offset))
            let ip = entry.ipv6
            self.init(family: family, source: Self.address(family, ip.src, ip.smsk), destination: Self.address(family, ip.dst, ip.dmsk),
                      inInterface: Self.interface(ip.iniface, ip.iniface_mask), outInterface: Self.interface(ip.outiface, ip.outiface_mask),
                      proto: ip.proto, tos: ip.tos, inverse: Inverse(rawValue: ip.invflags), target: .verdict(.accept))
            guard ip.flags & ~UInt8(IP6T_F_MASK) == 0 else { throw XtablesEntryError(reason: "unknown flags \(ip.flags)") }
            if ip.flags & UInt8(IP6T_F_GOTO) != 0 { flags.insert(.goto) }
            if ip.flags & UInt8(IP6T_F_PROTO) != 0 { flags.insert(.protocolGiven) }
            if ip.flags & UInt8(IP6T_F_TOS) != 0 { flags.insert(.tosGiven) }
        }
        guard nextOffset == bytes.count else {
            throw XtablesEntryError(reason: "next_offset is \(nextOffset) but the entry has \(bytes.count) bytes")
        }
        guard targetOffset >= headerSize, targetOffset + Self.extensionHeaderSize <= nextOffset else {
            throw XtablesEntryError(reason: "target_offset \(targetOffset) leaves no room for a target between the header (\(headerSize)) and next_offset (\(nextOffset))")
        }
        var offset = headerSize
        while offset < targetOffset {
            let (name, revision, data) = try Self.block(bytes, at: offset, end: targetOffset, what: "match")
            matches.append(XtablesMatch(name: name, revision: revision, data: data))
            offset += Self.extensionHeaderSize + data.count
        }
        let (name, revision, data) = try Self.block(bytes, at: targetOffset, end: nextOffset, what: "target")
        guard targetOffset + Self.extensionHeaderSize + data.count == nextOffset else {
            throw XtablesEntryError(reason: "the target ends at \(targetOffset + Self.extensionHeaderSize + data.count), next_offset is \(nextOffset)")
        }
        target = XtablesTarget(name: name, revision: revision, data: data, family: family, libiptcName: targetName)
    }

    /// The match or target block at `offset`, which must end by `end`.
    private static func block(_ bytes: [UInt8], at offset: Int, end: Int, what: String) throws(XtablesEntryError)
        -> (name: String, revision: UInt8, data: [UInt8]) {
        guard offset + extensionHeaderSize <= end else {
            throw XtablesEntryError(reason: "\(end - offset) bytes at \(offset) are too few for a \(what) header")
        }
        let header = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: xt_entry_match.self) }
        let size = Int(header.u.user.match_size)
        guard size >= extensionHeaderSize, offset + size <= end else {
            throw XtablesEntryError(reason: "the \(what) at \(offset) says it has \(size) bytes; \(end - offset) are left")
        }
        let name = try withUnsafeBytes(of: header.u.user.name) { raw throws(XtablesEntryError) in
            guard let end = raw.firstIndex(of: 0) else { throw XtablesEntryError(reason: "the \(what) at \(offset) has a name with no NUL") }
            return String(decoding: raw[..<end], as: UTF8.self)
        }
        return (name, header.u.user.revision, Array(bytes[(offset + extensionHeaderSize)..<(offset + size)]))
    }

    private static func address<Field>(_ family: Family, _ address: Field, _ mask: Field) -> MaskedAddress? {
        let length = family.bitCount / 8
        let address = withUnsafeBytes(of: address) { Array($0.prefix(length)) }
        let mask = withUnsafeBytes(of: mask) { Array($0.prefix(length)) }
        guard address.contains(where: { $0 != 0 }) || mask.contains(where: { $0 != 0 }) else { return nil }
        return MaskedAddress(address: IPAddress(family: family, bytes: address)!, mask: IPAddress(family: family, bytes: mask)!)
    }

    private static func interface<Name, Mask>(_ name: Name, _ mask: Mask) -> InterfaceName? {
        let name = withUnsafeBytes(of: name) { Array($0.prefix { $0 != 0 }) }
        guard !name.isEmpty else { return nil }
        let masked = withUnsafeBytes(of: mask) { $0.prefix { $0 == 0xFF }.count }
        return InterfaceName(String(decoding: name, as: UTF8.self), isWildcard: masked < name.count + 1)
    }
}

extension XtablesMatch {
    /// The match's extension name (`-m NAME`).
    var name: String {
        switch self {
        case .set: "set"
        case .comment: "comment"
        case .randomSample: "statistic"
        case .other(let name, _, _): name
        }
    }

    var revision: UInt8 {
        switch self {
        case .set: 4
        case .comment, .randomSample: 0
        case .other(_, let revision, _): revision
        }
    }

    /// The match's data as the kernel's struct for it (without XT_ALIGN's padding).
    var data: [UInt8] {
        switch self {
        case .set(let match):
            var info = xt_set_info_match_v4()
            info.match_set.index = match.index
            info.match_set.dim = UInt8(truncatingIfNeeded: match.directions.count)
            for (dimension, direction) in match.directions.enumerated() where direction == .source {
                info.match_set.flags |= UInt8(truncatingIfNeeded: Int(IPSET_DIM_ONE_SRC.rawValue) << dimension)
            }
            if match.inverted { info.match_set.flags |= UInt8(IPSET_INV_MATCH.rawValue) }
            info.flags = match.options
            return withUnsafeBytes(of: info) { Array($0) }
        case .comment(let text):
            let limit = Int(XT_MAX_COMMENT_LEN)
            let bytes = Array(text.utf8.prefix(limit - 1))
            return bytes + [UInt8](repeating: 0, count: limit - bytes.count)
        case .randomSample(let probability):
            var info = xt_statistic_info()
            info.mode = UInt16(XT_STATISTIC_MODE_RANDOM.rawValue)
            info.u.random.probability = probability
            return withUnsafeBytes(of: info) { Array($0) }
        case .other(_, _, let data):
            return data
        }
    }

    /// Reads a match's data: a typed case when it gives the same bytes back, else `.other`.
    init(name: String, revision: UInt8, data: [UInt8]) {
        var typed: XtablesMatch?
        switch (name, revision) {
        case ("set", 4) where data.count >= MemoryLayout<xt_set_info_match_v4>.size:
            let info = data.withUnsafeBytes { $0.loadUnaligned(as: xt_set_info_match_v4.self) }
            let set = info.match_set
            if set.dim <= UInt8(IPSET_DIM_MAX.rawValue) {
                let directions = (0..<Int(set.dim)).map { dimension -> NATRule.Direction in
                    Int(set.flags) & (Int(IPSET_DIM_ONE_SRC.rawValue) << dimension) != 0 ? .source : .destination
                }
                typed = .set(SetMatch(index: set.index, directions: directions,
                                      inverted: set.flags & UInt8(IPSET_INV_MATCH.rawValue) != 0, options: info.flags))
            }
        case ("comment", 0):
            typed = .comment(String(decoding: data.prefix { $0 != 0 }, as: UTF8.self))
        case ("statistic", 0) where data.count >= MemoryLayout<xt_statistic_info>.size:
            let info = data.withUnsafeBytes { $0.loadUnaligned(as: xt_statistic_info.self) }
            if info.mode == UInt16(XT_STATISTIC_MODE_RANDOM.rawValue) { typed = .randomSample(probability: info.u.random.probability) }
        default:
            break
        }
        if let typed, XtablesEntry.padded(typed.data) == data {
            self = typed
        } else {
            self = .other(name: name, revision: revision, data: data)
        }
    }
}

extension XtablesTarget {
    /// A standard target's verdict (linux/netfilter/x_tables.h: -NF_ACCEPT - 1, ..., XT_RETURN).
    var code: Int32? {
        switch self {
        case .verdict(.accept): -Int32(NF_ACCEPT) - 1
        case .verdict(.drop): -Int32(NF_DROP) - 1
        case .verdict(.queue): -Int32(NF_QUEUE) - 1
        case .verdict(.return): -Int32(NF_REPEAT) - 1
        default: nil
        }
    }

    /// Name, revision and data as libiptc takes them on append.
    func encodedParts(family: Family) -> (name: String, revision: UInt8, data: [UInt8]) {
        switch self {
        case .verdict(let verdict): (verdict.rawValue, 0, XtablesEntry.verdictData)
        case .jump(let chain): (chain, 0, XtablesEntry.verdictData)
        case .masquerade(let range): ("MASQUERADE", 0, range.encoded(.layout(family: family, revision: 0)))
        case .snat(let range, let revision): ("SNAT", revision, range.encoded(.layout(family: family, revision: revision)))
        case .other(let name, let revision, let data): (name, revision, data)
        }
    }

    init(name: String, revision: UInt8, data: [UInt8], family: Family, libiptcName: String?) {
        let isVerdictSized = data == XtablesEntry.padded(XtablesEntry.verdictData)
        switch name {
        case "":  // XT_STANDARD_TARGET
            let code = data.count >= 4 ? data.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } : nil
            if let libiptcName, !libiptcName.isEmpty {
                self = Verdict(rawValue: libiptcName).map { .verdict($0) } ?? .jump(libiptcName)
            } else if let code, let verdict = Verdict.allCases.first(where: { XtablesTarget.verdict($0).code == code }) {
                self = .verdict(verdict)
            } else {
                self = .other(name: name, revision: revision, data: data)
            }
        case _ where Verdict(rawValue: name) != nil && isVerdictSized:
            self = .verdict(Verdict(rawValue: name)!)
        case "MASQUERADE" where revision == 0:
            let range = NATRange(reading: data, .layout(family: family, revision: revision), family: family)
            self = XtablesEntry.padded(range.encoded(.layout(family: family, revision: revision))) == data
                ? .masquerade(range) : .other(name: name, revision: revision, data: data)
        case "SNAT" where revision <= 2 && !(family == .ipv6 && revision == 0):
            let range = NATRange(reading: data, .layout(family: family, revision: revision), family: family)
            self = XtablesEntry.padded(range.encoded(.layout(family: family, revision: revision))) == data
                ? .snat(range, revision: revision) : .other(name: name, revision: revision, data: data)
        case _ where isVerdictSized:
            // The form libiptc takes a jump in (its own copy keeps jumps as standard targets).
            self = .jump(name)
        default:
            self = .other(name: name, revision: revision, data: data)
        }
    }

    /// A MASQUERADE or SNAT target's range, read leniently from bytes the typed case did not hold.
    func natRange(family: Family) -> NATRange? {
        switch self {
        case .masquerade(let range), .snat(let range, _): range
        case .other(let name, let revision, let data) where name == "MASQUERADE" || name == "SNAT":
            NATRange(reading: data, .layout(family: family, revision: revision), family: family)
        default: nil
        }
    }
}

extension NATRange {
    /// The struct a NAT target's data is, by family and revision.
    enum Layout {
        /// nf_nat_ipv4_multi_range_compat: IPv4 MASQUERADE and SNAT revision 0.
        case compat
        /// nf_nat_range: IPv6 MASQUERADE, SNAT revision 1.
        case range
        /// nf_nat_range2: SNAT revision 2.
        case range2

        static func layout(family: Family, revision: UInt8) -> Layout {
            family == .ipv4 && revision == 0 ? .compat : (revision >= 2 ? .range2 : .range)
        }
    }

    func encoded(_ layout: Layout) -> [UInt8] {
        switch layout {
        case .compat:
            var compat = nf_nat_ipv4_multi_range_compat()
            compat.rangesize = 1
            compat.range.flags = flags.rawValue
            XtablesEntry.store(addresses?.lowerBound.bytes, into: &compat.range.min_ip)
            XtablesEntry.store(addresses?.upperBound.bytes, into: &compat.range.max_ip)
            if let ports {
                compat.range.min.all = ports.lowerBound.bigEndian
                compat.range.max.all = ports.upperBound.bigEndian
            }
            return withUnsafeBytes(of: compat) { Array($0) }
        case .range, .range2:
            var range = nf_nat_range2()
            range.flags = flags.rawValue
            XtablesEntry.store(addresses?.lowerBound.bytes, into: &range.min_addr)
            XtablesEntry.store(addresses?.upperBound.bytes, into: &range.max_addr)
            if let ports {
                range.min_proto.all = ports.lowerBound.bigEndian
                range.max_proto.all = ports.upperBound.bigEndian
            }
            range.base_proto.all = baseProto.bigEndian
            let bytes = withUnsafeBytes(of: range) { Array($0) }
            return layout == .range2 ? bytes : Array(bytes.prefix(MemoryLayout<nf_nat_range>.size))
        }
    }

    /// Reads a range without judging it: flags, addresses when NF_NAT_RANGE_MAP_IPS says so, ports
    /// when NF_NAT_RANGE_PROTO_SPECIFIED does (and they are in order). Too few bytes read as no range.
    /// - Parameter family: the addresses' family (the compat layout is IPv4 only).
    init(reading data: [UInt8], _ layout: Layout, family: Family) {
        self.init()
        switch layout {
        case .compat:
            guard data.count >= MemoryLayout<nf_nat_ipv4_multi_range_compat>.size else { return }
            let range = data.withUnsafeBytes { $0.loadUnaligned(as: nf_nat_ipv4_multi_range_compat.self) }.range
            flags = Flags(rawValue: range.flags)
            if flags.contains(.mapIPs) {
                let low = withUnsafeBytes(of: range.min_ip) { IPAddress(family: .ipv4, bytes: Array($0)) }
                let high = withUnsafeBytes(of: range.max_ip) { IPAddress(family: .ipv4, bytes: Array($0)) }
                if let low, let high, low <= high { addresses = low...high }
            }
            let (first, last) = (UInt16(bigEndian: range.min.all), UInt16(bigEndian: range.max.all))
            if flags.contains(.protoSpecified), first <= last { ports = first...last }
        case .range, .range2:
            guard data.count >= MemoryLayout<nf_nat_range>.size else { return }
            var range = nf_nat_range2()
            XtablesEntry.store(Array(data.prefix(MemoryLayout<nf_nat_range2>.size)), into: &range)
            flags = Flags(rawValue: range.flags)
            if layout == .range2 { baseProto = UInt16(bigEndian: range.base_proto.all) }
            if flags.contains(.mapIPs) {
                let length = family.bitCount / 8
                let low = withUnsafeBytes(of: range.min_addr) { IPAddress(family: family, bytes: Array($0.prefix(length))) }
                let high = withUnsafeBytes(of: range.max_addr) { IPAddress(family: family, bytes: Array($0.prefix(length))) }
                if let low, let high, low <= high { addresses = low...high }
            }
            let (first, last) = (UInt16(bigEndian: range.min_proto.all), UInt16(bigEndian: range.max_proto.all))
            if flags.contains(.protoSpecified), first <= last { ports = first...last }
        }
    }
}
