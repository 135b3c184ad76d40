import CNI

/// randsnat's entry of each network in the node's config directory, as the runtime would load it:
/// per network name, the first file (in the runtime's lexical order) that defines it wins. Pure.
public struct NodeConfigs: Equatable, Sendable {
    /// Network name → the randsnat plugin entry's members, with `name` and `cniVersion` filled in
    /// as the runtime passes them.
    public let networks: [String: [JSONKey: JSONValue]]
    /// Files that could not be read as a network config, one sentence each.
    public let problems: [String]
    /// Network name → the subnets its plugins' IPAM names (`ipam.subnet`, `ipam.ranges[][].subnet`,
    /// as host-local reads them); empty when its IPAM names none (dhcp, a cluster's own IPAM).
    public let subnets: [String: [CIDR]]

    public init(networks: [String: [JSONKey: JSONValue]], problems: [String] = [], subnets: [String: [CIDR]] = [:]) {
        self.networks = networks
        self.problems = problems
        self.subnets = subnets
    }

    /// - Parameter files: (file name, bytes) of the loadable files (`.conf`, `.conflist`, `.json`).
    public static func parse(_ files: [(name: String, bytes: [UInt8])]) -> NodeConfigs {
        var networks: [String: [JSONKey: JSONValue]] = [:]
        var problems: [String] = []
        var seen: Set<String> = []
        var subnets: [String: [CIDR]] = [:]
        for file in files.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            guard let document = try? JSONValue.parse(file.bytes), let top = document.objectValue else {
                problems.append("\(file.name) is not a JSON object; it is ignored")
                continue
            }
            guard let name = top["name"]?.stringValue else {
                problems.append("\(file.name) has no network \"name\"; it is ignored")
                continue
            }
            guard seen.insert(name).inserted else { continue }
            // A .conf is one plugin at the top level; a .conflist has "plugins".
            let plugins = top["plugins"]?.arrayValue ?? [document]
            guard let entry = plugins.first(where: { $0["type"]?.stringValue == "randsnat" })?.objectValue else { continue }
            var members = entry
            members["name"] = .string(name)
            if let version = top["cniVersion"] { members["cniVersion"] = version }
            networks[name] = members
            subnets[name] = plugins.flatMap(ipamSubnets)
        }
        return NodeConfigs(networks: networks, problems: problems, subnets: subnets)
    }

    static func ipamSubnets(_ plugin: JSONValue) -> [CIDR] {
        guard let ipam = plugin["ipam"] else { return [] }
        let ranges = (ipam["ranges"]?.arrayValue ?? []).flatMap { $0.arrayValue ?? [] }
        return ([ipam] + ranges).compactMap { $0["subnet"]?.stringValue.flatMap(CIDR.init) }
    }

    /// What the agent refuses in net.d, one sentence each: a file that is no network config, and a
    /// randsnat entry that does not parse (its network keeps the config its pods' records hold).
    /// Empty when net.d was taken whole (`randsnat_config_last_reload_successful{source="net.d"}`).
    public var refusals: [String] {
        problems + networks.sorted { $0.key < $1.key }.compactMap { name, entry in
            do {
                _ = try PluginConfig.parse(entry)
                return nil
            } catch {
                return "network \"\(name)\": its randsnat entry in net.d is refused (\(error))"
            }
        }
    }
}
