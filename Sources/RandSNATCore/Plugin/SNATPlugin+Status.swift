import CNI

/// STATUS found running pods of the network without their SNAT (CNI code 51: "existing containers
/// may have limited connectivity"): the agent repairs it; until then their egress leaves with pod
/// addresses.
public struct PodsWithoutSNAT: Error, Equatable, Sendable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}

extension SNATPlugin {
    /// What the network's recorded pods lack: per generation and family, rules that are not
    /// installed or recorded addresses that are not members (compared by address: a member no
    /// record backs does not stand for a missing one). Reads the records and, per generation, set
    /// headers, the chain's jump and the member set's listing; never the whole nat table.
    func podsWithoutSNAT(network: String, config: PluginConfig, backends: VerbBackends? = nil) throws -> [String] {
        let backends = backends ?? VerbBackends(makeBackend, config: config)
        let id = NetworkID(network: network)
        let (found, _) = try records.records(of: id)
        var groups: [ObjectNames: (plan: FamilyPlan, backend: BackendKind, addresses: [IPAddress])] = [:]
        for record in found where record.attachment.network == network {
            for address in record.addresses {
                let plan = Planner.family(address.family, network: network, config: record.pluginConfig)
                groups[plan.names, default: (plan, record.backend, [])].addresses.append(address.address)
            }
        }
        var problems: [String] = []
        for (names, group) in groups.sorted(by: { $0.key.memberSet < $1.key.memberSet }) {
            let backend = try backends.backend(group.backend)
            let family = names.family == .ipv4 ? "IPv4" : "IPv6"
            if try !backend.isInstalled(group.plan) {
                problems.append("network \"\(network)\": \(group.addresses.count) running pod(s) (\(family)) have no SNAT rules: \(names.chain) is not installed in \(group.backend.rawValue)")
            } else if let members = try backend.members(of: names, in: id) {
                let present = Set(members.map(\.address))
                let missing = group.addresses.filter { !present.contains($0) }
                if !missing.isEmpty {
                    problems.append("network \"\(network)\": \(names.memberSet) lacks \(missing.count) of its \(group.addresses.count) running pod(s) (\(family)): "
                                    + UnbackedMembers.listed(missing.map(\.description)))
                }
            }
        }
        return problems
    }

    /// The network's pods in libcni's cache that have no record (randsnat never saw them: they have
    /// no SNAT until the agent adopts them). Lists the cache; reads only the files of unrecorded names.
    func podsNeverSeen(network: String) throws -> [String] {
        guard let libcniCache, let names = try? libcniCache.fileNames() else { return [] }
        let recorded = try records.records(of: NetworkID(network: network)).records
            .filter { $0.attachment.network.utf8Equals(network) }.map { LibcniCache.fileName(of: $0.attachment) }
        return libcniCache.neverSeen(network: network, recorded: Set(recorded), in: names).sentences
    }
}
