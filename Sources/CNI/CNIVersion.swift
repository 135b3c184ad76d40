/// A version of the CNI specification, such as 1.1.0.
public struct CNIVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses "MAJOR.MINOR.PATCH"; nil for anything else.
    public init?(_ text: String) {
        let parts = text.utf8Split(".")
        guard parts.count == 3,
              parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 4 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }),
              let major = Int(parts[0]), let minor = Int(parts[1]), let patch = Int(parts[2])
        else { return nil }
        self.init(major, minor, patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: CNIVersion, rhs: CNIVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// The newest version randsnat implements; its results are written in the config's version.
    public static let current = CNIVersion(1, 1, 0)

    /// Versions whose configs and results randsnat understands. 0.1.0 and 0.2.0 results have
    /// another shape (`ip4`/`ip6`) and no chaining, so they are not among them.
    public static let supported: [CNIVersion] = [
        CNIVersion(0, 3, 0), CNIVersion(0, 3, 1), CNIVersion(0, 4, 0), CNIVersion(1, 0, 0), CNIVersion(1, 1, 0),
    ]
}
