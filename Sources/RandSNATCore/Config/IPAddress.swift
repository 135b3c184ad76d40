import CNI

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

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and a trailing dotted quad), byte by
    /// byte as inet_pton(3) does: it accepts exactly what inet_pton accepts.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        if bytes.contains(UInt8(ascii: ":")) {
            guard let parsed = Self.parseIPv6(bytes[...]) else { return nil }
            self.family = .ipv6
            self.bytes = parsed
        } else {
            guard let parsed = Self.parseIPv4(bytes[...]) else { return nil }
            self.family = .ipv4
            self.bytes = parsed
        }
    }

    /// Four decimal numbers 0–255 without leading zeros, separated by '.'.
    static func parseIPv4(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let parts = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard let value = decimal(part, maxDigits: 3), value <= 255, !(part.count > 1 && part.first == UInt8(ascii: "0"))
            else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    /// Up to eight groups of one to four hex digits (no sign: Swift's `UInt16(_:radix:)` takes
    /// "+1", inet_pton does not), one `::` for a run of zero groups, a dotted quad as the last 32 bits.
    static func parseIPv6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let colon = UInt8(ascii: ":")
        guard text.count <= 45 else { return nil }
        func groups(_ part: ArraySlice<UInt8>, allowTrailingIPv4: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            var bytes: [UInt8] = []
            let fields = part.split(separator: colon, omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if index == fields.count - 1, allowTrailingIPv4, field.contains(UInt8(ascii: ".")) {
                    guard let quad = parseIPv4(field) else { return nil }
                    bytes += quad
                    continue
                }
                guard let value = hexadecimal(field, maxDigits: 4) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return bytes
        }
        // The first "::"; a second one leaves an empty group in the tail, which `groups` refuses.
        guard let double = text.indices.first(where: { $0 + 1 < text.endIndex && text[$0] == colon && text[$0 + 1] == colon }) else {
            guard let bytes = groups(text, allowTrailingIPv4: true), bytes.count == 16 else { return nil }
            return bytes
        }
        guard let head = groups(text[..<double], allowTrailingIPv4: false),
              let tail = groups(text[(double + 2)...], allowTrailingIPv4: true), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    /// One to `maxDigits` ASCII decimal digits, nothing else (no sign, no space).
    static func decimal(_ digits: some Collection<UInt8>, maxDigits: Int) -> Int? {
        guard !digits.isEmpty, digits.count <= maxDigits else { return nil }
        var value = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// One to `maxDigits` ASCII hex digits, nothing else.
    static func hexadecimal(_ digits: some Collection<UInt8>, maxDigits: Int) -> Int? {
        guard !digits.isEmpty, digits.count <= maxDigits else { return nil }
        var value = 0
        for byte in digits {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | Int(digit)
        }
        return value
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
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(decoding: parts[0], as: UTF8.self)) else { return nil }
        var prefix = address.family.bitCount
        if parts.count == 2 {
            guard let value = IPAddress.decimal(parts[1], maxDigits: 3), value <= address.family.bitCount else { return nil }
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
        guard text.utf8Contains("/"), let cidr = CIDR(text), let address = IPAddress(text.utf8Split("/")[0])
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
        let parts = text.utf8Split("-")
        guard parts.count <= 2, let first = IPAddress(parts[0]) else { return nil }
        let last = parts.count == 2 ? IPAddress(parts[1]) : first
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
        let parts = text.utf8.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = IPAddress.decimal(parts[0], maxDigits: 5),
              let last = parts.count == 2 ? IPAddress.decimal(parts[1], maxDigits: 5) : first,
              first >= 1, first <= last, last <= 65535 else { return nil }
        self.first = UInt16(first)
        self.last = UInt16(last)
    }

    public var count: Int { Int(last) - Int(first) + 1 }
    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}
