import RandSNATCore

// One xtables rule (an `ipt_entry` or `ip6t_entry` with its matches and target) as a value. The
// same value is written for libiptc and read back from what libiptc and the kernel hold, through
// the one codec in XtablesCodec.swift, so "is the rule in the table the one randsnat writes" is `==`.

/// One rule of an iptables/ip6tables table.
struct XtablesEntry: Equatable, Sendable {
    var family: Family
    /// `-s`: nil when the rule takes any source.
    var source: MaskedAddress?
    /// `-d`: nil when the rule takes any destination.
    var destination: MaskedAddress?
    /// `-i`
    var inInterface: InterfaceName?
    /// `-o`
    var outInterface: InterfaceName?
    /// `-p`: the layer-4 protocol number; 0 takes any.
    var proto: UInt16 = 0
    /// IPv6 only: ip6t_ip6's traffic class field (iptables leaves it 0).
    var tos: UInt8 = 0
    var flags: Flags = []
    /// Which of the header's conditions are negated (`!`).
    var inverse: Inverse = []
    var matches: [XtablesMatch] = []
    var target: XtablesTarget

    init(family: Family, source: MaskedAddress? = nil, destination: MaskedAddress? = nil,
         inInterface: InterfaceName? = nil, outInterface: InterfaceName? = nil, proto: UInt16 = 0, tos: UInt8 = 0,
         flags: Flags = [], inverse: Inverse = [], matches: [XtablesMatch] = [], target: XtablesTarget) {
        self.family = family
        self.source = source
        self.destination = destination
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.proto = proto
        self.tos = tos
        self.flags = flags
        self.inverse = inverse
        self.matches = matches
        self.target = target
    }

    /// The header's flag bits, named once for both families (the codec maps them to IPT_F_*/IP6T_F_*).
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt8
        /// `-g`: a goto, not a jump. IPT_F_GOTO / IP6T_F_GOTO.
        static let goto = Flags(rawValue: 1 << 0)
        /// IPv4 `-f`. IPT_F_FRAG.
        static let fragment = Flags(rawValue: 1 << 1)
        /// IPv6: `proto` is to be tested. IP6T_F_PROTO.
        static let protocolGiven = Flags(rawValue: 1 << 2)
        /// IPv6: `tos` is to be tested. IP6T_F_TOS.
        static let tosGiven = Flags(rawValue: 1 << 3)
    }

    /// The header's `invflags`: the same bits in both families (IPT_INV_* = IP6T_INV_*); the
    /// members (`.source`, `.outInterface`, ...) are named in XtablesCodec.swift.
    struct Inverse: OptionSet, Sendable {
        let rawValue: UInt8
    }
}

/// An address and its mask, as the header holds `-s`/`-d` (iptables writes contiguous masks).
struct MaskedAddress: Equatable, Sendable {
    let address: IPAddress
    let mask: IPAddress

    init(address: IPAddress, mask: IPAddress) {
        self.address = address
        self.mask = mask
    }

    init(_ cidr: CIDR) {
        address = cidr.address
        let bytes = (0..<(cidr.family.bitCount / 8)).map { index -> UInt8 in
            let bits = max(0, min(8, cidr.prefix - index * 8))
            return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        }
        mask = IPAddress(family: cidr.family, bytes: bytes)!
    }

    /// As a CIDR, its prefix the mask's bit count; nil for an empty mask (it takes every address).
    var cidr: CIDR? {
        let prefix = mask.bytes.reduce(0) { $0 + $1.nonzeroBitCount }
        return prefix > 0 ? CIDR(address: address, prefix: prefix) : nil
    }
}

/// An interface name as the header holds `-i`/`-o`: "eth0" takes that interface, "eth+" (a
/// wildcard) every name that starts "eth".
struct InterfaceName: Equatable, Sendable {
    let name: String
    /// True when the mask stops before the name's end (iptables' `+`): a prefix match.
    let isWildcard: Bool

    init(_ name: String, isWildcard: Bool? = nil) {
        self.name = name
        self.isWildcard = isWildcard ?? name.hasSuffix("+")
    }
}

/// A match (`-m NAME ...`) of an entry.
enum XtablesMatch: Equatable, Sendable {
    /// `-m set --match-set NAME src[,dst]`, revision 4 (the one iptables 1.8 writes). The kernel
    /// holds the set by its index, not its name.
    case set(SetMatch)
    /// `-m comment --comment TEXT` (at most 255 bytes).
    case comment(String)
    /// `-m statistic --mode random --probability P`; P scaled so that 0x80000000 is 1.
    case randomSample(probability: UInt32)
    /// Any other match, or one of the above in a form the typed cases do not hold: its bytes as they are.
    case other(name: String, revision: UInt8, data: [UInt8])

    struct SetMatch: Equatable, Sendable {
        var index: UInt16
        /// One per dimension of the set: which address of the packet is looked up.
        var directions: [NATRule.Direction]
        /// `! --match-set`.
        var inverted = false
        /// xt_set_info_match_v4's own flags (--return-nomatch, counters' options); randsnat writes 0.
        var options: UInt32 = 0
    }
}

/// The target (`-j`) of an entry.
enum XtablesTarget: Equatable, Sendable {
    /// ACCEPT, DROP, QUEUE or RETURN: a standard target with a verdict.
    case verdict(Verdict)
    /// A jump (or, with `Flags.goto`, a goto) to a user chain. libiptc keeps jumps as standard
    /// targets and gives their chain's name; the codec writes the name for libiptc to resolve.
    case jump(String)
    /// `-j MASQUERADE` (revision 0).
    case masquerade(NATRange)
    /// `-j SNAT`: revision 0 (IPv4, the compat range), 1 (nf_nat_range) or 2 (nf_nat_range2).
    case snat(NATRange, revision: UInt8)
    /// Any other target, or MASQUERADE/SNAT in a form `NATRange` does not hold: its bytes as they are.
    case other(name: String, revision: UInt8, data: [UInt8])

    enum Verdict: String, CaseIterable, Sendable {
        case accept = "ACCEPT", drop = "DROP", queue = "QUEUE", `return` = "RETURN"
    }

    /// The name libiptc gives the target (`iptc_get_target`): the verdict, the chain, the extension.
    var name: String {
        switch self {
        case .verdict(let verdict): verdict.rawValue
        case .jump(let chain): chain
        case .masquerade: "MASQUERADE"
        case .snat: "SNAT"
        case .other(let name, _, _): name
        }
    }
}

/// A NAT target's range: the addresses (SNAT's --to-source), the ports, and the flags
/// (NF_NAT_RANGE_*: --random, --random-fully, --persistent).
struct NATRange: Equatable, Sendable {
    var flags: Flags
    /// Set together with `Flags.mapIPs`.
    var addresses: ClosedRange<IPAddress>?
    /// Set together with `Flags.protoSpecified`.
    var ports: ClosedRange<UInt16>?
    /// nf_nat_range2 only (SNAT revision 2).
    var baseProto: UInt16 = 0

    init(flags: Flags = [], addresses: ClosedRange<IPAddress>? = nil, ports: ClosedRange<UInt16>? = nil, baseProto: UInt16 = 0) {
        self.flags = flags
        self.addresses = addresses
        self.ports = ports
        self.baseProto = baseProto
    }

    /// NF_NAT_RANGE_* (linux/netfilter/nf_nat.h); the members (`.randomFully`, ...) are named in XtablesExtensionCodec.swift.
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt32
    }
}
