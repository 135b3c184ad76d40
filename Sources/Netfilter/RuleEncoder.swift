import CNetfilter
import Glibc
import RandSNATCore

/// A rule as the bytes libiptc takes: the `ipt_entry`/`ip6t_entry` header, the matches, the target.
/// Revisions are those iptables 1.8 writes, so `iptables-legacy-save` prints the rules as a person
/// would write them.
struct EncodedRule: Equatable {
    let family: Family
    let bytes: [UInt8]
    /// The target as libiptc names it: a chain, "RETURN", "MASQUERADE" or "SNAT".
    let targetName: String
    /// Jumps and RETURN are standard targets, whose verdict libiptc computes.
    let isStandardTarget: Bool
    let text: String
}

enum RuleEncoder {
    static func headerSize(_ family: Family) -> Int {
        family == .ipv4 ? MemoryLayout<ipt_entry>.size : MemoryLayout<ip6t_entry>.size
    }

    /// The `ipt_ip`/`ip6t_ip6` part at the start of the header.
    static func ipPartSize(_ family: Family) -> Int {
        family == .ipv4 ? MemoryLayout<ipt_ip>.size : MemoryLayout<ip6t_ip6>.size
    }

    static func offsetsOffset(_ family: Family) -> Int {
        family == .ipv4 ? MemoryLayout<ipt_entry>.offset(of: \.target_offset)! : MemoryLayout<ip6t_entry>.offset(of: \.target_offset)!
    }

    static let extensionHeaderSize = MemoryLayout<xt_entry_match>.size

    /// Encodes `rule`; `setIndex` gives the kernel index of a set the rule matches.
    static func encode(_ rule: NATRule, family: Family, chain: String,
                       setIndex: (String) throws(NetfilterError) -> UInt16) throws(NetfilterError) -> EncodedRule {
        var matches: [UInt8] = []
        if let setMatch = rule.setMatch {
            // Revision 4 is the one iptables 1.8 writes (and the only one its -save prints).
            var info = xt_set_info_match_v4()
            info.match_set.index = try setIndex(setMatch.set)
            info.match_set.dim = UInt8(setMatch.directions.count)
            for (dimension, direction) in setMatch.directions.enumerated() where direction == .source {
                info.match_set.flags |= UInt8(1 << (dimension + 1))  // IPSET_DIM_ONE_SRC << dimension
            }
            matches += extensionBlock(name: "set", revision: 4, payload: bytes(of: info))
        }
        if let probability = rule.probability {
            var info = xt_statistic_info()
            info.mode = UInt16(XT_STATISTIC_MODE_RANDOM.rawValue)
            // iptables' scale: 0x80000000 is a probability of 1.
            info.u.random.probability = UInt32(min(0x8000_0000, max(0, (probability * 2_147_483_648.0).rounded())))
            matches += extensionBlock(name: "statistic", revision: 0, payload: bytes(of: info))
        }
        var comment = [UInt8](rule.comment.utf8.prefix(Int(XT_MAX_COMMENT_LEN) - 1))
        comment += [UInt8](repeating: 0, count: Int(XT_MAX_COMMENT_LEN) - comment.count)
        matches += extensionBlock(name: "comment", revision: 0, payload: comment)

        let target: [UInt8]
        let targetName: String
        var isStandard = false
        switch rule.target {
        case .jump(let name):
            (targetName, isStandard) = (name, true)
            target = extensionBlock(name: name, revision: 0, payload: [UInt8](repeating: 0, count: MemoryLayout<Int32>.size))
        case .return:
            (targetName, isStandard) = ("RETURN", true)
            target = extensionBlock(name: "RETURN", revision: 0, payload: [UInt8](repeating: 0, count: MemoryLayout<Int32>.size))
        case .masquerade(let ports):
            targetName = "MASQUERADE"
            target = extensionBlock(name: targetName, revision: 0, payload: natRange(family: family, addresses: nil, ports: ports))
        case .snat(let range, let ports):
            targetName = "SNAT"
            // IPv4 SNAT revision 0 takes the compat range; IPv6 starts at revision 1 (nf_nat_range).
            target = extensionBlock(name: targetName, revision: family == .ipv4 ? 0 : 1,
                                    payload: natRange(family: family, addresses: range, ports: ports))
        }

        var header = [UInt8](repeating: 0, count: headerSize(family))
        header.withUnsafeMutableBytes { raw in
            if family == .ipv4 {
                var entry = ipt_entry()
                entry.ip.proto = rule.proto?.number ?? 0
                if let destination = rule.destination {
                    withUnsafeMutableBytes(of: &entry.ip.dst) { copy(destination.address.bytes, into: $0) }
                    withUnsafeMutableBytes(of: &entry.ip.dmsk) { copy(mask(destination), into: $0) }
                }
                if let name = rule.outInterface {
                    withUnsafeMutableBytes(of: &entry.ip.outiface) { copy(Array(name.utf8), into: $0) }
                    withUnsafeMutableBytes(of: &entry.ip.outiface_mask) { copy([UInt8](repeating: 0xFF, count: name.utf8.count + 1), into: $0) }
                }
                entry.target_offset = UInt16(raw.count + matches.count)
                entry.next_offset = UInt16(raw.count + matches.count + target.count)
                withUnsafeBytes(of: entry) { raw.copyMemory(from: $0) }
            } else {
                var entry = ip6t_entry()
                if let proto = rule.proto {
                    entry.ipv6.proto = proto.number
                    entry.ipv6.flags |= UInt8(IP6T_F_PROTO)
                }
                if let destination = rule.destination {
                    withUnsafeMutableBytes(of: &entry.ipv6.dst) { copy(destination.address.bytes, into: $0) }
                    withUnsafeMutableBytes(of: &entry.ipv6.dmsk) { copy(mask(destination), into: $0) }
                }
                if let name = rule.outInterface {
                    withUnsafeMutableBytes(of: &entry.ipv6.outiface) { copy(Array(name.utf8), into: $0) }
                    withUnsafeMutableBytes(of: &entry.ipv6.outiface_mask) { copy([UInt8](repeating: 0xFF, count: name.utf8.count + 1), into: $0) }
                }
                entry.target_offset = UInt16(raw.count + matches.count)
                entry.next_offset = UInt16(raw.count + matches.count + target.count)
                withUnsafeBytes(of: entry) { raw.copyMemory(from: $0) }
            }
        }
        return EncodedRule(family: family, bytes: header + matches + target, targetName: targetName,
                           isStandardTarget: isStandard, text: rule.rendered(in: chain))
    }

    /// The NAT range payload with NF_NAT_RANGE_PROTO_RANDOM_FULLY always set: every SNAT randsnat
    /// writes picks ports fully at random.
    static func natRange(family: Family, addresses: AddressRange?, ports: PortRange?) -> [UInt8] {
        var flags = UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY)
        if addresses != nil { flags |= UInt32(NF_NAT_RANGE_MAP_IPS) }
        if ports != nil { flags |= UInt32(NF_NAT_RANGE_PROTO_SPECIFIED) }
        if family == .ipv4 {
            var compat = nf_nat_ipv4_multi_range_compat()
            compat.rangesize = 1
            compat.range.flags = flags
            if let addresses {
                withUnsafeMutableBytes(of: &compat.range.min_ip) { copy(addresses.first.bytes, into: $0) }
                withUnsafeMutableBytes(of: &compat.range.max_ip) { copy(addresses.last.bytes, into: $0) }
            }
            if let ports {
                compat.range.min.all = ports.first.bigEndian
                compat.range.max.all = ports.last.bigEndian
            }
            return bytes(of: compat)
        }
        var range = nf_nat_range()
        range.flags = flags
        if let addresses {
            withUnsafeMutableBytes(of: &range.min_addr) { copy(addresses.first.bytes, into: $0) }
            withUnsafeMutableBytes(of: &range.max_addr) { copy(addresses.last.bytes, into: $0) }
        }
        if let ports {
            range.min_proto.all = ports.first.bigEndian
            range.max_proto.all = ports.last.bigEndian
        }
        return bytes(of: range)
    }

    /// An `xt_entry_match`/`xt_entry_target` block: size, name, revision, payload, XT_ALIGN padding.
    static func extensionBlock(name: String, revision: UInt8, payload: [UInt8]) -> [UInt8] {
        let size = Int(randsnat_xt_align(UInt(extensionHeaderSize + payload.count)))
        var block = [UInt8](repeating: 0, count: size)
        block[0] = UInt8(size & 0xFF)
        block[1] = UInt8(size >> 8)
        for (offset, byte) in name.utf8.prefix(Int(XT_EXTENSION_MAXNAMELEN) - 1).enumerated() { block[2 + offset] = byte }
        block[extensionHeaderSize - 1] = revision
        block.replaceSubrange(extensionHeaderSize..<(extensionHeaderSize + payload.count), with: payload)
        return block
    }

    static func mask(_ cidr: CIDR) -> [UInt8] {
        (0..<(cidr.family.bitCount / 8)).map { index in
            let bits = max(0, min(8, cidr.prefix - index * 8))
            return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        }
    }

    static func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static func copy(_ source: [UInt8], into destination: UnsafeMutableRawBufferPointer) {
        for (offset, byte) in source.prefix(destination.count).enumerated() { destination[offset] = byte }
    }
}
