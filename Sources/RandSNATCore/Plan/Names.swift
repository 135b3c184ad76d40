import CNI

/// The names randsnat gives its kernel objects. They are derived, never stored: every process that
/// sees the same network name and config computes the same names.
///
/// A network's objects for one family and one generation (its rule-relevant config):
///
///     chain       RANDSNAT-<net:11 hex>-<gen:7 hex>            28 bytes, iptables' limit
///     member set  RANDSNAT-<net:11 hex>-<gen:7 hex>-P4 | -P6   31 bytes, ipset's limit
///     subnet set  RANDSNAT-<net:11 hex>-<gen:7 hex>-S4 | -S6
///
/// NEVER CHANGE the prefix or the layout after a release: upgraded binaries must find and remove
/// what older ones wrote.
public struct NetworkID: Hashable, Sendable, CustomStringConvertible {
    public let network: String
    /// 11 hex digits of SHA-256("randsnat/" + network).
    public let hash: String

    public init(network: String) {
        self.network = network
        self.hash = String(SHA256.hex("randsnat/" + network).prefix(11))
    }

    public static let prefix = "RANDSNAT-"
    /// The start of every chain and set name of this network.
    public var namePrefix: String { Self.prefix + hash + "-" }
    public var description: String { "network \"\(network)\" (\(namePrefix)*)" }
}

/// One family's objects of one generation of a network.
public struct ObjectNames: Hashable, Sendable {
    public let chain: String
    public let memberSet: String
    public let subnetSet: String
    public let family: Family
    public let generation: String

    public init(id: NetworkID, generation: String, family: Family) {
        self.family = family
        self.generation = generation
        chain = id.namePrefix + generation
        memberSet = chain + "-P" + family.digit
        subnetSet = chain + "-S" + family.digit
    }

    /// Recovers the names from a member set's name of `id`; nil for any other name.
    public init?(memberSet name: String, of id: NetworkID) {
        guard name.hasPrefix(id.namePrefix), name.utf8.count == id.namePrefix.utf8.count + 10 else { return nil }
        let rest = name.dropFirst(id.namePrefix.count)
        let generation = String(rest.prefix(7))
        let suffix = rest.dropFirst(7)
        let family: Family
        switch suffix {
        case "-P4": family = .ipv4
        case "-P6": family = .ipv6
        default: return nil
        }
        guard generation.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        self.init(id: id, generation: generation, family: family)
    }
}

/// Who a per-pod kernel object belongs to: the attachment of the spec (network, container, ifname).
public struct Attachment: Hashable, Sendable, CustomStringConvertible {
    public let network: String
    public let containerID: String
    public let ifName: String

    public init(network: String, containerID: String, ifName: String) {
        self.network = network
        self.containerID = containerID
        self.ifName = ifName
    }

    /// The comment on the pod's set members, `<network>/<container>/<ifname>`, cut to ipset's 255 bytes.
    public var comment: String { Self.clip("\(network)/\(containerID)/\(ifName)") }

    public var description: String { "\(network)/\(containerID)/\(ifName)" }

    /// The container and ifname a member's comment names; nil when it is not randsnat's format.
    public static func owner(fromComment comment: String) -> (containerID: String, ifName: String)? {
        // At '/' bytes: as Characters, "/" followed by a combining mark (an ifname may start with one) is no "/".
        let parts = comment.utf8Split("/")
        guard parts.count >= 3 else { return nil }
        return (parts[parts.count - 2], parts[parts.count - 1])
    }

    /// `text` cut to at most 255 bytes on a character boundary (netfilter comments hold 255 + NUL).
    public static func clip(_ text: String, to limit: Int = 255) -> String {
        if text.utf8.count <= limit { return text }
        var out = ""
        for character in text {
            if out.utf8.count + String(character).utf8.count > limit { break }
            out.append(character)
        }
        return out
    }
}
