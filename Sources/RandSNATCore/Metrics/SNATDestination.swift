/// The tuple whose source ports a SNAT rule hands out: flows from one SNAT address to one destination
/// address and port over one protocol each need their own source port (the kernel's NAT keeps the
/// reply tuple unique), so the ports in use are counted per tuple.
///
/// Fixed size and without heap storage: the conntrack scan builds one per SNATed entry, a million a
/// pass on a busy node.
public struct SNATDestination: Hashable, Sendable {
    public let family: Family
    /// The IP protocol number (6 tcp, 17 udp, 132 sctp, ...).
    public let proto: UInt8
    public let port: UInt16
    /// Addresses as 16 bytes in two words; an IPv4 address uses the first 4 bytes of `high`.
    public let snatHigh: UInt64, snatLow: UInt64
    public let destinationHigh: UInt64, destinationLow: UInt64

    public init(family: Family, proto: UInt8, port: UInt16, snat: (UInt64, UInt64), destination: (UInt64, UInt64)) {
        self.family = family
        self.proto = proto
        self.port = port
        (snatHigh, snatLow) = snat
        (destinationHigh, destinationLow) = destination
    }

    public init(family: Family, proto: UInt8, port: UInt16, snat: IPAddress, destination: IPAddress) {
        self.init(family: family, proto: proto, port: port, snat: Self.words(snat.bytes), destination: Self.words(destination.bytes))
    }

    /// Big-endian words of up to 16 bytes, zero-padded.
    public static func words(_ bytes: [UInt8]) -> (UInt64, UInt64) {
        var high: UInt64 = 0, low: UInt64 = 0
        for index in 0..<16 {
            let byte: UInt64 = index < bytes.count ? UInt64(bytes[index]) : 0
            let shift = UInt64(56 - 8 * (index % 8))
            if index < 8 { high |= byte << shift } else { low |= byte << shift }
        }
        return (high, low)
    }

    private func address(_ high: UInt64, _ low: UInt64) -> IPAddress {
        let count = family == .ipv4 ? 4 : 16
        var bytes: [UInt8] = []
        for index in 0..<count {
            let word: UInt64 = index < 8 ? high : low
            let shift = UInt64(56 - 8 * (index % 8))
            bytes.append(UInt8(truncatingIfNeeded: word >> shift))
        }
        return IPAddress(family: family, bytes: bytes)!
    }

    public var snatAddress: IPAddress { address(snatHigh, snatLow) }
    public var destination: IPAddress { address(destinationHigh, destinationLow) }

    /// The protocol's name as iptables and Prometheus labels write it, else its number.
    public var protocolName: String { Self.protocolName(proto) }

    /// The name of IP protocol `proto` as iptables writes it, else its number.
    public static func protocolName(_ proto: UInt8) -> String {
        switch proto {
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        case 33: "dccp"
        case 136: "udplite"
        case 1: "icmp"
        case 58: "icmpv6"
        default: "\(proto)"
        }
    }
}
