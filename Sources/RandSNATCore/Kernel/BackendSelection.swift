/// Which backend a verb acts on, chosen once per verb from the config's `backend`, what each backend
/// holds of the network (by the names of its generations' sets, never by their members) and, only
/// when that does not settle it, which netfilter the node uses. Pure: the caller reads the kernel.
public enum BackendSelection {
    /// What one backend holds of the network.
    public enum Holding: Equatable, Sendable {
        /// The names of the network's generations there (empty: the backend holds nothing of it).
        case generations([ObjectNames])
        /// The backend cannot be read (a kernel without nf_tables, or without ipset): why.
        case unreadable(String)

        var names: [ObjectNames] {
            if case .generations(let names) = self { return names }
            return []
        }
    }

    /// The choice, with the backends whose generations of the network move to it.
    public struct Decision: Equatable, Sendable {
        public let chosen: BackendKind
        /// Backends other than `chosen` that hold generations of the network, in `BackendKind` order.
        public let moveFrom: [BackendKind]
        /// Lines for stderr.
        public let log: [String]
    }

    public enum Outcome: Equatable, Sendable {
        case decided(Decision)
        /// `auto` with no holder and no fallback (or `redetect`): ask the node which netfilter it
        /// uses (reading whole tables) and decide again with `node` set.
        case needsNodeNetfilter
        /// The backend the config names cannot be read: the verb fails with its error (after `log`).
        case configuredUnreadable(BackendKind, log: [String])
    }

    /// - Parameters:
    ///   - holdings: what each backend holds (a backend missing here was not read).
    ///   - redetect: GC with `auto`: follow the node even when the network has state elsewhere.
    ///   - fallback: where the pods' records say they are (the agent's), taken before asking the
    ///     node when no backend holds the network (as after `nft flush ruleset`).
    ///   - node: the node's netfilter, once `needsNodeNetfilter` asked for it.
    public static func decide(_ choice: BackendChoice, holdings: [BackendKind: Holding], network: NetworkID,
                              redetect: Bool = false, fallback: BackendKind? = nil, node: BackendKind? = nil) -> Outcome {
        var log: [String] = []
        var configuredUnreadable: BackendKind?
        for kind in BackendKind.allCases {
            guard case .unreadable(let reason) = holdings[kind] else { continue }
            if choice.rawValue == kind.rawValue {
                configuredUnreadable = kind
            } else {
                log.append("randsnat: \(network): cannot read the \(kind.rawValue) backend, taking it to hold nothing: \(reason)")
            }
        }
        if let configuredUnreadable { return .configuredUnreadable(configuredUnreadable, log: log) }
        let chosen: BackendKind
        switch choice {
        case .iptables: chosen = .iptables
        case .nftables: chosen = .nftables
        case .auto:
            if !redetect, let holder = BackendKind.allCases.first(where: { !(holdings[$0]?.names.isEmpty ?? true) }) {
                chosen = holder
            } else if !redetect, let fallback {
                chosen = fallback
            } else if let node {
                chosen = node
            } else {
                return .needsNodeNetfilter
            }
        }
        let moveFrom = BackendKind.allCases.filter { $0 != chosen && !(holdings[$0]?.names.isEmpty ?? true) }
        return .decided(Decision(chosen: chosen, moveFrom: moveFrom, log: log))
    }
}
