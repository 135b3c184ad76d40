import Testing
@testable import RandSNATCore

/// The backend a verb acts on, as a table: the config's choice, what each backend holds of the
/// network (by names), the agent's fallback, GC's redetect and the node's netfilter.
struct BackendSelectionTests {
    typealias Holding = BackendSelection.Holding
    static let id = NetworkID(network: "net")
    static let held: Holding = .generations([ObjectNames(id: id, generation: "g1", family: .ipv4)])
    static let empty: Holding = .generations([])
    static let broken: Holding = .unreadable("no nf_tables")

    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let choice: BackendChoice
        let iptables: Holding?
        let nftables: Holding?
        var redetect = false
        var fallback: BackendKind?
        var node: BackendKind?
        let outcome: BackendSelection.Outcome
        var logs: Int = 0
        var testDescription: String { name }
    }

    static func decided(_ chosen: BackendKind, moving: [BackendKind] = []) -> BackendSelection.Outcome {
        .decided(BackendSelection.Decision(chosen: chosen, moveFrom: moving, log: []))
    }

    static let rows: [Row] = [
        Row(name: "configured iptables, nothing anywhere", choice: .iptables, iptables: empty, nftables: empty, outcome: decided(.iptables)),
        Row(name: "configured nftables, state in iptables moves", choice: .nftables, iptables: held, nftables: empty,
            outcome: decided(.nftables, moving: [.iptables])),
        Row(name: "configured iptables, state in both: nftables' moves", choice: .iptables, iptables: held, nftables: held,
            outcome: decided(.iptables, moving: [.nftables])),
        Row(name: "configured backend unreadable fails", choice: .nftables, iptables: empty, nftables: broken,
            outcome: .configuredUnreadable(.nftables, log: [])),
        Row(name: "configured backend unreadable fails, the other's line first", choice: .nftables, iptables: .unreadable("no ipset"),
            nftables: broken, outcome: .configuredUnreadable(.nftables, log: [
                "randsnat: \(id): cannot read the iptables backend, taking it to hold nothing: no ipset"])),
        Row(name: "other backend unreadable holds nothing, with a line", choice: .iptables, iptables: empty, nftables: broken,
            outcome: .decided(.init(chosen: .iptables, moveFrom: [], log: [
                "randsnat: \(id): cannot read the nftables backend, taking it to hold nothing: no nf_tables"])), logs: 1),
        Row(name: "auto stays where the state is", choice: .auto, iptables: empty, nftables: held, node: .iptables, outcome: decided(.nftables)),
        Row(name: "auto with state in both stays in iptables (first) and moves nftables'", choice: .auto, iptables: held, nftables: held,
            outcome: decided(.iptables, moving: [.nftables])),
        Row(name: "auto, new network: ask the node", choice: .auto, iptables: empty, nftables: empty, outcome: .needsNodeNetfilter),
        Row(name: "auto, new network, node answered", choice: .auto, iptables: empty, nftables: empty, node: .nftables, outcome: decided(.nftables)),
        Row(name: "auto, nothing held: the records' fallback before the node", choice: .auto, iptables: empty, nftables: empty,
            fallback: .nftables, node: .iptables, outcome: decided(.nftables)),
        Row(name: "GC redetect follows the node and moves the state", choice: .auto, iptables: held, nftables: empty, redetect: true,
            node: .nftables, outcome: decided(.nftables, moving: [.iptables])),
        Row(name: "GC redetect asks the node even with a holder", choice: .auto, iptables: held, nftables: empty, redetect: true,
            outcome: .needsNodeNetfilter),
        Row(name: "auto, every backend unreadable: ask the node", choice: .auto, iptables: broken, nftables: broken, outcome: .needsNodeNetfilter),
        Row(name: "a backend not read holds nothing", choice: .auto, iptables: held, nftables: nil, outcome: decided(.iptables)),
    ]

    @Test(arguments: rows)
    func decides(row: Row) {
        var holdings: [BackendKind: Holding] = [:]
        holdings[.iptables] = row.iptables
        holdings[.nftables] = row.nftables
        let outcome = BackendSelection.decide(row.choice, holdings: holdings, network: Self.id, redetect: row.redetect,
                                              fallback: row.fallback, node: row.node)
        if case .decided(let decision) = outcome, case .decided(let expected) = row.outcome {
            #expect(decision.chosen == expected.chosen)
            #expect(decision.moveFrom == expected.moveFrom)
            #expect(decision.log.count == row.logs)
            if !expected.log.isEmpty { #expect(decision.log == expected.log) }
        } else {
            #expect(outcome == row.outcome)
        }
    }
}
