/// Prometheus's text exposition format 0.0.4 (what `GET /metrics` answers and `promtool check metrics`
/// reads): `# HELP`, `# TYPE`, then one line per sample. Pure: values in, text out.
public struct MetricFamily: Equatable, Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge
    }

    public struct Sample: Equatable, Sendable {
        /// Label names and values, in the order they are written.
        public let labels: [(String, String)]
        public let value: Double

        public init(_ labels: [(String, String)], _ value: Double) {
            self.labels = labels
            self.value = value
        }

        /// A sample without labels.
        public init(_ value: Double) { self.init([], value) }

        public static func == (lhs: Sample, rhs: Sample) -> Bool {
            lhs.value == rhs.value && lhs.labels.map(\.0) == rhs.labels.map(\.0) && lhs.labels.map(\.1) == rhs.labels.map(\.1)
        }
    }

    public let name: String
    public let kind: Kind
    public let help: String
    public let samples: [Sample]

    /// - Precondition: `name` is a valid metric name and, for a counter, ends in `_total` (the
    ///   convention promtool checks); label names are valid and not reserved (`__` prefix).
    public init(_ name: String, _ kind: Kind, help: String, _ samples: [Sample]) {
        precondition(Exposition.isValidName(name, colons: true), "invalid metric name \(name)")
        precondition(kind != .counter || name.hasSuffix("_total"), "counter \(name) must end in _total")
        for sample in samples {
            for (label, _) in sample.labels {
                precondition(Exposition.isValidName(label, colons: false) && !label.hasPrefix("__"), "invalid label name \(label) of \(name)")
            }
        }
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples
    }
}

public enum Exposition {
    /// The Content-Type of the text format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, the same without `:` for label names.
    public static func isValidName(_ name: String, colons: Bool) -> Bool {
        guard let first = name.utf8.first else { return false }
        func letter(_ byte: UInt8) -> Bool { (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 95 || (colons && byte == 58) }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// The families as exposition text. A family with no samples writes nothing (not even HELP), so a
    /// metric that has no value yet is absent rather than zero.
    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        for family in families where !family.samples.isEmpty {
            out += "# HELP \(family.name) \(escape(family.help, quotes: false))\n"
            out += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples {
                out += family.name
                if !sample.labels.isEmpty {
                    out += "{" + sample.labels.map { "\($0.0)=\"\(escape($0.1, quotes: true))\"" }.joined(separator: ",") + "}"
                }
                out += " " + format(sample.value) + "\n"
            }
        }
        return out
    }

    /// Backslash and newline escaped (and double quotes, in a label value), as the format requires.
    static func escape(_ text: String, quotes: Bool) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quotes: out += "\\\""
            default: out.append(character)
            }
        }
        return out
    }

    /// Integers without a fraction (counters stay exact up to 2^53), others as Swift's shortest
    /// round-tripping form, and the format's spellings of infinities and NaN.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9.007_199_254_740_992e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
