internal import CNetfilterUAPI
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
