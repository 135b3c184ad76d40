/// Any JSON document, kept whole so that fields randsnat does not know (in `prevResult`, in
/// `runtimeConfig`) pass through unchanged.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONKey: JSONValue])

    /// The member `key` of an object; nil for a missing key or a value that is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[JSONKey(key)] }
        return nil
    }

    /// Equal when of the same kind with equal contents; strings and member names are equal only when
    /// their bytes are (`String`'s `==` would make "\u{212A}" equal "K").
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let left), .bool(let right)): left == right
        case (.int(let left), .int(let right)): left == right
        case (.double(let left), .double(let right)): left == right
        case (.string(let left), .string(let right)): left.utf8Equals(right)
        case (.array(let left), .array(let right)): left == right
        case (.object(let left), .object(let right)): left == right
        default: false
        }
    }

    public var objectValue: [JSONKey: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    /// An integral number; a double with no fraction counts too (JSON has one number type).
    public var intValue: Int64? {
        switch self {
        case .int(let number): return number
        case .double(let number) where number.rounded() == number && abs(number) < 9.0e15: return Int64(number)
        default: return nil
        }
    }

    /// The JSON name of this value's type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// The type's name with its article, for messages: "an array", "a string", "null".
    public var typeNameWithArticle: String {
        switch self {
        case .null: "null"
        case .array, .object: "an \(typeName)"
        default: "a \(typeName)"
        }
    }
}

/// The name of a JSON object's member. Two names are the same only when their UTF-8 bytes are, as in
/// Go's encoding/json and so in libcni and the runtimes: with `String` keys a dictionary merges
/// canonically equivalent names (`{"\u212a":3,"K":4}` would keep one member), and `prevResult` and
/// `runtimeConfig` would not pass through unchanged. Ordered by bytes, as Go sorts map keys.
public struct JSONKey: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }
    public init(stringLiteral text: String) { self.text = text }

    public static func == (lhs: JSONKey, rhs: JSONKey) -> Bool { lhs.text.utf8Equals(rhs.text) }

    public func hash(into hasher: inout Hasher) {
        for byte in text.utf8 { hasher.combine(byte) }
        hasher.combine(0xFF as UInt8)  // never in UTF-8: ends the name
    }

    public static func < (lhs: JSONKey, rhs: JSONKey) -> Bool { lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8) }

    public var description: String { text }
}

extension Dictionary where Key == JSONKey {
    /// The member named `name` (compared by bytes).
    public subscript(_ name: String) -> Value? {
        get { self[JSONKey(name)] }
        set { self[JSONKey(name)] = newValue }
    }
}
