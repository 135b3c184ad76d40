// The reference JSON reader of the fuzz targets (json, config): written apart from
// Sources/CNI/JSONCoding.swift, over bytes, so it can tell where JSONValue reads something else.
import CNI

/// A JSON value as the reference reads it: strings and names are bytes, numbers the nearest Double.
indirect enum Reference: Equatable {
    case null, bool(Bool), number(Double), string([UInt8]), array([Reference])
    case object([(name: [UInt8], value: Reference)])

    static func == (lhs: Reference, rhs: Reference) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        default: false
        }
    }

    /// JSONValue in the reference's terms, members sorted by name bytes.
    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .number(Double(number))
        case .double(let number): self = .number(number)
        case .string(let text): self = .string(utf8(text))
        case .array(let items): self = .array(items.map(Reference.init))
        case .object(let members):
            self = .object(members.map { (utf8($0.key.text), Reference($0.value)) }.sorted { $0.0.lexicographicallyPrecedes($1.0) })
        }
    }
}

/// RFC 8259 over bytes, written apart from Sources/CNI/JSONCoding.swift. The limits randsnat adds:
/// nesting up to 256 levels, numbers must be finite.
struct ReferenceParser {
    let bytes: [UInt8]
    var at = 0

    static func parse(_ bytes: [UInt8]) -> Reference? {
        var parser = ReferenceParser(bytes: bytes)
        parser.space()
        guard let value = parser.value(depth: 0) else { return nil }
        parser.space()
        return parser.at == bytes.count ? value : nil
    }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func space() { while let byte = peek, [0x20, 0x09, 0x0A, 0x0D].contains(byte) { at += 1 } }

    mutating func eat(_ byte: UInt8) -> Bool {
        if peek == byte { at += 1; return true }
        return false
    }

    mutating func value(depth: Int) -> Reference? {
        guard depth < 256, let byte = peek else { return nil }
        switch byte {
        case UInt8(ascii: "{"):
            at += 1
            var members: [(name: [UInt8], value: Reference)] = []
            space()
            if eat(UInt8(ascii: "}")) { return .object([]) }
            repeat {
                space()
                guard peek == UInt8(ascii: "\""), let name = string() else { return nil }
                space()
                guard eat(UInt8(ascii: ":")) else { return nil }
                space()
                guard let item = value(depth: depth + 1) else { return nil }
                members.removeAll { $0.name == name }
                members.append((name, item))
                space()
            } while eat(UInt8(ascii: ","))
            guard eat(UInt8(ascii: "}")) else { return nil }
            return .object(members.sorted { $0.name.lexicographicallyPrecedes($1.name) })
        case UInt8(ascii: "["):
            at += 1
            var items: [Reference] = []
            space()
            if eat(UInt8(ascii: "]")) { return .array([]) }
            repeat {
                space()
                guard let item = value(depth: depth + 1) else { return nil }
                items.append(item)
                space()
            } while eat(UInt8(ascii: ","))
            return eat(UInt8(ascii: "]")) ? .array(items) : nil
        case UInt8(ascii: "\""): return string().map(Reference.string)
        case UInt8(ascii: "t"): return word("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return word("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return word("null") ? .null : nil
        default: return number()
        }
    }

    mutating func word(_ text: String) -> Bool {
        guard bytes[at...].starts(with: text.utf8) else { return false }
        at += text.utf8.count
        return true
    }

    mutating func number() -> Reference? {
        let start = at
        func digits(_ parser: inout ReferenceParser) -> Int {
            var count = 0
            while let byte = parser.peek, (0x30...0x39).contains(byte) { parser.at += 1; count += 1 }
            return count
        }
        _ = eat(UInt8(ascii: "-"))
        let first = peek
        let count = digits(&self)
        guard count > 0, !(first == UInt8(ascii: "0") && count > 1) else { return nil }
        if eat(UInt8(ascii: ".")) { guard digits(&self) > 0 else { return nil } }
        if eat(UInt8(ascii: "e")) || eat(UInt8(ascii: "E")) {
            if !eat(UInt8(ascii: "+")) { _ = eat(UInt8(ascii: "-")) }
            guard digits(&self) > 0 else { return nil }
        }
        guard let number = Double(String(decoding: bytes[start..<at], as: UTF8.self)), number.isFinite else { return nil }
        return .number(number)
    }

    /// A string's bytes: escapes decoded to UTF-8, the raw bytes checked as UTF-8.
    mutating func string() -> [UInt8]? {
        at += 1
        var out: [UInt8] = []
        func append(scalar: UInt32, to out: inout [UInt8]) {
            switch scalar {
            case ..<0x80: out.append(UInt8(scalar))
            case ..<0x800: out += [0xC0 | UInt8(scalar >> 6), 0x80 | UInt8(scalar & 0x3F)]
            case ..<0x10000: out += [0xE0 | UInt8(scalar >> 12), 0x80 | UInt8(scalar >> 6 & 0x3F), 0x80 | UInt8(scalar & 0x3F)]
            default: out += [0xF0 | UInt8(scalar >> 18), 0x80 | UInt8(scalar >> 12 & 0x3F), 0x80 | UInt8(scalar >> 6 & 0x3F), 0x80 | UInt8(scalar & 0x3F)]
            }
        }
        while let byte = peek {
            at += 1
            switch byte {
            case UInt8(ascii: "\""): return isValidUTF8(out) ? out : nil
            case 0x00..<0x20: return nil
            case UInt8(ascii: "\\"):
                guard let escape = peek else { return nil }
                at += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard let unit = hex4() else { return nil }
                    switch unit {
                    case 0xD800..<0xDC00:
                        guard eat(UInt8(ascii: "\\")), eat(UInt8(ascii: "u")), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        append(scalar: 0x10000 + (unit - 0xD800) << 10 + (low - 0xDC00), to: &out)
                    case 0xDC00..<0xE000: return nil
                    default: append(scalar: unit, to: &out)
                    }
                default: return nil
                }
            default: out.append(byte)
            }
        }
        return nil
    }

    mutating func hex4() -> UInt32? {
        guard at + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for byte in bytes[at..<at + 4] {
            guard let digit = hexDigit(byte) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        at += 4
        return value
    }
}

func hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
}
