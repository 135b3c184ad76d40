/// One rule in the nat table, as plain data; the netfilter adapter encodes it for the kernel.
public struct NATRule: Equatable, Sendable {
    public enum Direction: String, Sendable { case source = "src", destination = "dst" }

    /// `-m set --match-set NAME src[,dst]`.
    public struct SetMatch: Equatable, Sendable {
        public let set: String
        public let directions: [Direction]
    }

    public enum Target: Equatable, Sendable {
        case jump(String)
        case `return`
        /// `-j MASQUERADE --random-fully [--to-ports FIRST-LAST]`.
        case masquerade(ports: PortRange?)
        /// `-j SNAT --to-source FIRST[-LAST][:PORTS] --random-fully`.
        case snat(AddressRange, ports: PortRange?)
    }

    /// Layer-4 protocols that have ports; a port range in a NAT target needs one of them (`-p`).
    public enum PortProtocol: String, CaseIterable, Sendable {
        case tcp, udp, sctp
        public var number: UInt16 {
            switch self {
            case .tcp: 6
            case .udp: 17
            case .sctp: 132
            }
        }
    }

    public var proto: PortProtocol?
    public var destination: CIDR?
    public var outInterface: String?
    public var setMatch: SetMatch?
    /// `-m statistic --mode random --probability P`, to spread flows over several toSource items.
    public var probability: Double?
    public var comment: String
    public var target: Target
    /// The bytes an xtables comment holds (`xt_comment`: XT_MAX_COMMENT_LEN 256 with its NUL).
    public static let commentLimit = 255

    public init(proto: PortProtocol? = nil, destination: CIDR? = nil, outInterface: String? = nil, setMatch: SetMatch? = nil,
                probability: Double? = nil, comment: String, target: Target) {
        self.proto = proto
        self.destination = destination
        self.outInterface = outInterface
        self.setMatch = setMatch
        self.probability = probability
        self.comment = Attachment.clip(comment, to: Self.commentLimit)
        self.target = target
    }

    /// The rule as `iptables-save` prints it (for logs, doctor and tests).
    public func rendered(in chain: String) -> String {
        var parts = ["-A", chain]
        if let destination { parts += ["-d", destination.description] }
        if let outInterface { parts += ["-o", outInterface] }
        if let proto { parts += ["-p", proto.rawValue] }
        if let setMatch {
            parts += ["-m", "set", "--match-set", setMatch.set, setMatch.directions.map(\.rawValue).joined(separator: ",")]
        }
        if let probability {
            parts += ["-m", "statistic", "--mode", "random", "--probability", String(probability)]
        }
        parts += ["-m", "comment", "--comment", "\"\(comment)\""]
        switch target {
        case .jump(let chain): parts += ["-j", chain]
        case .return: parts += ["-j", "RETURN"]
        case .masquerade(let ports):
            parts += ["-j", "MASQUERADE"]
            if let ports { parts += ["--to-ports", ports.description] }
            parts += ["--random-fully"]
        case .snat(let range, let ports):
            var to = range.family == .ipv6 && ports != nil
                ? "[\(range.first)]" + (range.first == range.last ? "" : "-[\(range.last)]") : range.description
            if let ports { to += ":\(ports)" }
            parts += ["-j", "SNAT", "--to-source", to, "--random-fully"]
        }
        return parts.joined(separator: " ")
    }
}
