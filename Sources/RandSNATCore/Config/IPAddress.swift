/// An address family; the netfilter tables, sets and rules of randsnat exist once per family.
public enum Family: String, CaseIterable, Sendable, Hashable, Comparable {
    case ipv4
    case ipv6

    public var bitCount: Int { self == .ipv4 ? 32 : 128 }
    /// "4" or "6", as used in set names and in CNI 0.x results.
    public var digit: String { self == .ipv4 ? "4" : "6" }

    public static func < (lhs: Family, rhs: Family) -> Bool { lhs == .ipv4 && rhs == .ipv6 }
}

/// An IPv4 or IPv6 address, in network byte order.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let family: Family
    /// 4 or 16 bytes.
    public let bytes: [UInt8]

    public init?(family: Family, bytes: [UInt8]) {
        guard bytes.count == family.bitCount / 8 else { return nil }
        self.family = family
        self.bytes = bytes
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and a trailing dotted quad).
    public init?(_ text: String) {
        if text.contains(":") {
            guard let bytes = Self.parseIPv6(Substring(text)) else { return nil }
            self.family = .ipv6
            self.bytes = bytes
        } else {
            guard let bytes = Self.parseIPv4(Substring(text)) else { return nil }
            self.family = .ipv4
            self.bytes = bytes
        }
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  !(part.count > 1 && part.first == "0"), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count <= 45 else { return nil }
        let halves = text.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring, allowTrailingIPv4: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            var bytes: [UInt8] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if index == fields.count - 1, allowTrailingIPv4, field.contains(".") {
                    guard let quad = parseIPv4(field) else { return nil }
                    bytes += quad
                    continue
                }
                guard !field.isEmpty, field.count <= 4, let value = UInt16(field, radix: 16) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return bytes
        }
        if halves.count == 1 {
            guard let bytes = groups(halves[0], allowTrailingIPv4: true), bytes.count == 16 else { return nil }
            return bytes
        }
        guard let head = groups(halves[0], allowTrailingIPv4: false),
              let tail = groups(halves[1], allowTrailingIPv4: true), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (longest run of zero groups as `::`).
    public var description: String {
        if family == .ipv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var bestStart = -1, bestLength = 0, index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > bestLength && end - index >= 2 { (bestStart, bestLength) = (index, end - index) }
                index = end
            } else {
                index += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        lhs.family != rhs.family ? lhs.family < rhs.family : lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// This address with all but the first `prefix` bits cleared.
    public func masked(to prefix: Int) -> IPAddress {
        var out = bytes
        for index in 0..<out.count {
            let bitsHere = max(0, min(8, prefix - index * 8))
            out[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return IPAddress(family: family, bytes: out)!
    }
}

extension Substring {
    /// Splits on the first "::" only (a second one makes the address invalid).
    func components(separatedByDoubleColon: Void) -> [Substring] {
        var parts: [Substring] = []
        var start = startIndex
        var index = startIndex
        while index < endIndex {
            let next = self.index(after: index)
            if self[index] == ":", next < endIndex, self[next] == ":" {
                parts.append(self[start..<index])
                index = self.index(after: next)
                start = index
                continue
            }
            index = next
        }
        parts.append(self[start..<endIndex])
        return parts
    }
}

/// A network: an address with a prefix length, host bits cleared.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefix: Int

    public var family: Family { address.family }

    public init(address: IPAddress, prefix: Int) {
        self.address = address.masked(to: prefix)
        self.prefix = prefix
    }

    /// Parses "ADDRESS/PREFIX" (host bits are cleared, as Go's net.ParseCIDR does); a bare address
    /// is a host route (/32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        var prefix = address.family.bitCount
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = Int(parts[1]), value <= address.family.bitCount else { return nil }
            prefix = value
        }
        self.init(address: address, prefix: prefix)
    }

    public var description: String { "\(address)/\(prefix)" }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && other.masked(to: prefix) == address
    }

    public static let ipv4Multicast = CIDR("224.0.0.0/4")!
    public static let ipv6Multicast = CIDR("ff00::/8")!
    public static let ipv4LinkLocal = CIDR("169.254.0.0/16")!
    public static let ipv6LinkLocal = CIDR("fe80::/10")!
}

/// A pod's address as its IPAM gave it: the host address and the prefix of its subnet.
public struct PodAddress: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefix: Int

    public init(address: IPAddress, prefix: Int) {
        self.address = address
        self.prefix = prefix
    }

    /// Parses "198.18.0.2/24"; the prefix is required (CNI results always carry one).
    public init?(_ text: String) {
        guard text.contains("/"), let cidr = CIDR(text), let address = IPAddress(String(text.split(separator: "/")[0]))
        else { return nil }
        self.init(address: address, prefix: cidr.prefix)
    }

    public var family: Family { address.family }
    /// The pod's own subnet, whose traffic never gets SNAT.
    public var subnet: CIDR { CIDR(address: address, prefix: prefix) }
    public var description: String { "\(address)/\(prefix)" }
}

/// A contiguous range of addresses of one family, such as a `toSource` item "203.0.113.5-203.0.113.8".
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    public let first: IPAddress
    public let last: IPAddress

    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = IPAddress(String(parts[0])) else { return nil }
        let last = parts.count == 2 ? IPAddress(String(parts[1])) : first
        guard let last, last.family == first.family, !(last < first) else { return nil }
        self.first = first
        self.last = last
    }

    public var family: Family { first.family }
    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}

/// A range of layer-4 ports, such as `portRange` "32768-65535".
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let first: UInt16
    public let last: UInt16

    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 5 && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
              let first = UInt16(parts[0]), let last = UInt16(parts.count == 2 ? parts[1] : parts[0]),
              first >= 1, first <= last else { return nil }
        self.first = first
        self.last = last
    }

    public var count: Int { Int(last) - Int(first) + 1 }
    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}
