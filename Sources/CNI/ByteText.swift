/// Protocol text (the CNI_* variables, JSON member names, plugin and interface names, addresses) is
/// bytes: libcni, skel, the kernel and inet_pton split and compare it byte by byte. Swift's `String`
/// compares by canonical equivalence ("\u{212A}" KELVIN SIGN == "K") and splits by grapheme cluster (a
/// combining mark joins the character before it: "=\u{301}" is one `Character`, which is not "="),
/// so protocol code goes through these instead of `==`, `split(separator:)`, `hasPrefix`,
/// `contains` or `firstIndex(of:)` on `String`s and `Character`s.
extension StringProtocol {
    /// Whether both hold the same UTF-8 bytes.
    public func utf8Equals(_ other: some StringProtocol) -> Bool { utf8.elementsEqual(other.utf8) }

    /// Whether the UTF-8 bytes start with those of `prefix`.
    public func utf8HasPrefix(_ prefix: some StringProtocol) -> Bool { utf8.starts(with: prefix.utf8) }

    /// Whether the UTF-8 bytes end with those of `suffix`.
    public func utf8HasSuffix(_ suffix: some StringProtocol) -> Bool {
        utf8.count >= suffix.utf8.count && utf8.suffix(suffix.utf8.count).elementsEqual(suffix.utf8)
    }

    /// Whether the byte `ascii` occurs.
    public func utf8Contains(_ ascii: Unicode.Scalar) -> Bool { utf8.contains(UInt8(ascii: ascii)) }

    /// The pieces between the bytes `ascii` (an ASCII character, so every piece is valid UTF-8 when
    /// the whole is), at most `maxSplits` splits, from the left.
    public func utf8Split(_ ascii: Unicode.Scalar, maxSplits: Int = .max, omittingEmpty: Bool = false) -> [String] {
        utf8.split(separator: UInt8(ascii: ascii), maxSplits: maxSplits, omittingEmptySubsequences: omittingEmpty)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// The text for an error message: printable ASCII as it is, `"` and `\` escaped, and every other
    /// byte as `\xNN`, so a reader sees exactly the bytes randsnat compared.
    public var escapedBytes: String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case 0x20..<0x7F: out.append(byte)
            default: out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension CaseIterable where Self: RawRepresentable, RawValue == String {
    /// The case whose raw value has exactly the bytes of `text` (`init(rawValue:)` compares by
    /// canonical equivalence, so it takes "CHEC\u{212A}" for "CHECK").
    public init?(exactly text: some StringProtocol) {
        guard let match = Self.allCases.first(where: { $0.rawValue.utf8Equals(text) }) else { return nil }
        self = match
    }
}
