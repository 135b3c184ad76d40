internal import CNetfilterUAPI
import RandSNATCore

// The xtables codec's extensions: each match's and target's data as the kernel struct it is
// (xt_set_info_match_v4, xt_comment_info, xt_statistic_info, a standard verdict,
// nf_nat_ipv4_multi_range_compat, nf_nat_range, nf_nat_range2). XtablesCodec.swift frames them.

extension NATRange.Flags {
    static let mapIPs = Self(rawValue: UInt32(NF_NAT_RANGE_MAP_IPS))
    static let protoSpecified = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_SPECIFIED))
    static let random = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_RANDOM))
    static let persistent = Self(rawValue: UInt32(NF_NAT_RANGE_PERSISTENT))
    static let randomFully = Self(rawValue: UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY))
}

extension XtablesMatch {
    /// xt_statistic_info's mode for `--mode random` (XT_STATISTIC_MODE_RANDOM), cast once.
    static let statisticRandomMode = UInt16(XT_STATISTIC_MODE_RANDOM.rawValue)

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
            info.mode = Self.statisticRandomMode
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
            if info.mode == Self.statisticRandomMode { typed = .randomSample(probability: info.u.random.probability) }
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

/// Matches randsnat only reads (the shadowing check's `RuleDecoder.conditions`), their data as the
/// kernel's structs (xt_mark_mtinfo1, xt_addrtype_info_v1, xt_addrtype_info); missing trailing bytes
/// read as 0.
enum XtablesReadMatch {
    /// `-m mark` revision 1; nil when the data stops before its invert flag.
    static func mark(_ data: [UInt8]) -> (value: UInt32, mask: UInt32, inverted: Bool)? {
        guard data.count > MemoryLayout<xt_mark_mtinfo1>.offset(of: \.invert)! else { return nil }
        var info = xt_mark_mtinfo1()
        XtablesEntry.store(data, into: &info)
        return (info.mark, info.mask, info.invert != 0)
    }

    /// `-m addrtype` revision 0 or 1: the source and destination type masks (0: not tested) and
    /// whether each is inverted.
    static func addressTypes(revision: UInt8, _ data: [UInt8])
        -> (source: UInt16, destination: UInt16, invertSource: Bool, invertDestination: Bool) {
        if revision == 1 {
            var info = xt_addrtype_info_v1()
            XtablesEntry.store(data, into: &info)
            return (info.source, info.dest, info.flags & UInt32(XT_ADDRTYPE_INVERT_SOURCE) != 0,
                    info.flags & UInt32(XT_ADDRTYPE_INVERT_DEST) != 0)
        }
        var info = xt_addrtype_info()
        XtablesEntry.store(data, into: &info)
        return (info.source, info.dest, info.invert_source != 0, info.invert_dest != 0)
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
