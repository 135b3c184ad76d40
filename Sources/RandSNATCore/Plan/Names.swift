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
///
/// A pod's set member carries its owner as a comment. This type is the one place that renders an
/// owner comment and decides whether a comment names an attachment; backends only declare how many
/// bytes their comments hold (`ipset`: 255, nf_tables: 127) and store the text as given.
///
/// The forms, tried in this order, the first that fits the backend's limit being written:
///
///     full      <network>/<container>/<ifname>    what every release so far writes (fits almost always)
///     compact   <container>/<ifname>              the network is already in the set's name
///     digest    #<40 hex of SHA-256("<container>/<ifname>")>   a container ID too long for either
///
/// Network names, container IDs and ifnames contain no '/', so each form parses back without
/// ambiguity. The full form stays first so that a node rolled back to an earlier release still finds
/// its members. Earlier releases cut the full form to the limit (a long network name on nf_tables);
/// such a comment still names its owner: exactly when the cut left the whole container ID, and
/// otherwise only as a candidate (`Claim.ambiguous`: another pod of the network may share the cut
/// text), which the caller settles by the member's address. NEVER CHANGE what a form means after a
/// release.
public struct Attachment: Hashable, Sendable, CustomStringConvertible {
    public let network: String
    public let containerID: String
    public let ifName: String

    public init(network: String, containerID: String, ifName: String) {
        self.network = network
        self.containerID = containerID
        self.ifName = ifName
    }

    public var description: String { "\(network)/\(containerID)/\(ifName)" }

    // Equal by bytes, as the kernel and libcni compare them (String's == and hash take canonically
    // equivalent text, "K" and "\u{212A}", as one).
    public static func == (a: Attachment, b: Attachment) -> Bool {
        a.network.utf8Equals(b.network) && a.containerID.utf8Equals(b.containerID) && a.ifName.utf8Equals(b.ifName)
    }

    public func hash(into hasher: inout Hasher) {
        for part in [network, containerID, ifName] {
            hasher.combine(part.utf8.count)
            for byte in part.utf8 { hasher.combine(byte) }
        }
    }

    var fullComment: String { "\(network)/\(containerID)/\(ifName)" }
    var compactComment: String { "\(containerID)/\(ifName)" }
    var digestComment: String { "#" + SHA256.hex(compactComment).prefix(40) }

    /// The comment written on the pod's members in a backend whose comments hold `limit` bytes.
    public func comment(limit: Int) -> String {
        for form in [fullComment, compactComment] where form.utf8.count <= limit { return form }
        return digestComment
    }

    /// Every comment that may name this attachment in a backend of `limit` bytes: the one written
    /// now and the one earlier releases wrote (the full form cut to the limit).
    public func comments(limit: Int) -> Set<[UInt8]> {
        [Array(comment(limit: limit).utf8), Array(Self.clip(fullComment, to: limit).utf8)]
    }

    /// How surely a comment names an attachment.
    public enum Claim: Sendable {
        /// Only this attachment writes this comment.
        case exact
        /// An earlier release's comment cut inside the container ID: other pods of the network may
        /// have the same one. The member's address decides.
        case ambiguous
    }

    /// Whether `comment` (read from a member set of this attachment's network in a backend of
    /// `limit` bytes) names this attachment; nil when it does not.
    public func claim(_ comment: String, limit: Int) -> Claim? {
        if comment.utf8Equals(self.comment(limit: limit)) { return .exact }
        guard comment.utf8Equals(Self.clip(fullComment, to: limit)) else { return nil }
        return comment.utf8.count > network.utf8.count + 1 + containerID.utf8.count ? .exact : .ambiguous
    }

    /// The attachment a member's comment names, in a set of `network`; nil for a digest, a comment
    /// cut short by an earlier release, or text that is not randsnat's.
    public static func owner(fromComment comment: String, network: String) -> Attachment? {
        let parts = comment.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let owner: Attachment
        switch parts.count {
        case 3 where parts[0].utf8Equals(network): owner = Attachment(network: network, containerID: parts[1], ifName: parts[2])
        case 2: owner = Attachment(network: network, containerID: parts[0], ifName: parts[1])
        default: return nil
        }
        // A full comment cut short by an earlier release parses as well, with a truncated part: only
        // an exact round trip counts.
        guard !owner.containerID.isEmpty, !owner.ifName.isEmpty,
              comment.utf8Equals(parts.count == 3 ? owner.fullComment : owner.compactComment) else { return nil }
        return owner
    }

    /// A member's comment re-rendered for a backend of `limit` bytes (moving between backends):
    /// a parsable owner is written in the target's form, anything else is kept, cut to the limit.
    public static func recomment(_ comment: String, network: String, limit: Int) -> String {
        if let owner = owner(fromComment: comment, network: network) { return owner.comment(limit: limit) }
        return clip(comment, to: limit)
    }

    /// `text` cut to at most `limit` bytes on a character boundary (netfilter comments hold a NUL
    /// after their text).
    public static func clip(_ text: String, to limit: Int) -> String {
        if text.utf8.count <= limit { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if out.utf8.count + String(scalar).utf8.count > limit { break }
            out.unicodeScalars.append(scalar)
        }
        return out
    }
}

extension Attachment {
    /// Whether `member` is this attachment's: its comment names it exactly, or ambiguously and the
    /// member's address is one of the pod's `addresses`.
    public func owns(_ member: InstalledMember, of addresses: [IPAddress], limit: Int) -> Bool {
        switch claim(member.comment, limit: limit) {
        case .exact: true
        case .ambiguous: addresses.contains(member.address)
        case nil: false
        }
    }
}
