import CNI

/// CHECK found the pod's network not as ADD left it; each problem is one sentence.
public struct CheckFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { "the pod's network is not as ADD left it: " + problems.joined(separator: "; ") }
}

/// STATUS found the node unable to serve ADDs.
public struct NodeNotReady: Error, Equatable, Sendable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}

/// randsnat as a chained plugin: the verbs of the spec on top of a `NATBackend`.
public struct SNATPlugin: CNIPlugin {
    /// Makes the backend for a request's config (the config sets its lock timeout).
    let makeBackend: (PluginConfig) throws -> any NATBackend
    let lock: any NetworkLock
    /// Writes one line to stderr.
    let log: (String) -> Void
    let pathExists: (String) -> Bool

    public init(makeBackend: @escaping (PluginConfig) throws -> any NATBackend, lock: any NetworkLock,
                log: @escaping (String) -> Void, pathExists: @escaping (String) -> Bool) {
        self.makeBackend = makeBackend
        self.lock = lock
        self.log = log
        self.pathExists = pathExists
    }

    func pluginConfig(_ request: Request) throws(ConfigError) -> PluginConfig {
        let (config, warnings) = try PluginConfig.parse(request.config.members)
        for warning in warnings { log("randsnat: network \"\(request.config.name)\": \(warning)") }
        return config
    }

    func attachment(_ request: Request) -> Attachment {
        Attachment(network: request.config.name, containerID: request.environment.containerID,
                   ifName: request.environment.ifName)
    }

    /// The pod's addresses from prevResult; nil when there is no prevResult.
    func podAddresses(_ request: Request) throws -> [PodAddress] {
        guard let prevResult = request.config.prevResult else { throw ConfigError.missingPrevResult }
        var addresses: [PodAddress] = []
        for (index, item) in try CNIResult.podAddresses(prevResult).enumerated() {
            guard let address = PodAddress(item.cidr), address.prefix > 0 else {
                throw ConfigError.invalidValue(key: "prevResult.ips[\(index)].address", value: item.cidr,
                                               reason: "is not an address with a prefix length, such as 198.18.0.2/24")
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        return addresses
    }

    public func add(_ request: Request) throws -> JSONValue {
        let config = try pluginConfig(request)
        let addresses = try podAddresses(request)
        try requireNetns(request)
        let output = try CNIResult.convert(request.config.prevResult!, to: request.config.cniVersion)
        guard !addresses.isEmpty else {
            log("randsnat: network \"\(request.config.name)\": prevResult has no address on the pod's side; nothing to SNAT")
            return output
        }
        try addSNAT(Planner.pod(attachment(request), addresses: addresses, config: config), config: config)
        return output
    }

    func requireNetns(_ request: Request) throws {
        guard pathExists(request.environment.netns) else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS=\"\(request.environment.netns)\" does not exist",
                           details: "the runtime must pass the path of the pod's network namespace")
        }
    }

    /// Installs the network's objects where needed and adds the pod's members, under the network
    /// lock; on failure removes what it added.
    func addSNAT(_ pod: PodPlan, config: PluginConfig) throws {
        let network = pod.attachment.network
        let backend = try makeBackend(config)
        try lock.withLock(NetworkID(network: network), timeoutSeconds: config.lockTimeoutSeconds) {
            var installed: [FamilyPlan] = []
            do {
                for family in pod.families {
                    let plan = Planner.family(family, network: network, config: config)
                    if try !backend.isInstalled(plan) {
                        installed.append(plan)
                        try backend.install(plan)
                    }
                }
                for member in pod.members {
                    try backend.add(member, comment: pod.attachment.comment)
                    try backend.add(subnet: member.address.subnet, to: member.names)
                }
            } catch {
                rollBack(backend, id: NetworkID(network: network), installed: installed, comment: pod.attachment.comment)
                throw error
            }
        }
    }

    /// Undoes a failed ADD: the pod's members, the subnets only it used, then the network objects
    /// this ADD created if nobody uses them.
    func rollBack(_ backend: any NATBackend, id: NetworkID, installed: [FamilyPlan], comment: String) {
        for generation in (try? backend.generations(of: id)) ?? [] {
            try? removeMembers(of: generation, backend, uninstallWhenEmpty: false) { $0 == comment }
        }
        let after = (try? backend.generations(of: id)) ?? []
        for plan in installed where !after.contains(where: { $0.names == plan.names && !$0.members.isEmpty }) {
            try? backend.uninstall(plan.names)
        }
    }

    /// DEL finds the pod's members by their owner comment, in every generation of the network, so it
    /// needs neither prevResult nor the config ADD saw; a generation left empty is torn down.
    public func del(_ request: Request) throws {
        try removeSNAT(attachment(request), members: request.config.members)
    }

    /// Removes the pod's members in every generation, and generations left empty. Reads randsnat's
    /// keys leniently: a config edited since ADD must not keep a pod's state on the node.
    func removeSNAT(_ owner: Attachment, members: [String: JSONValue]) throws {
        let config = (try? PluginConfig.parse(members).config) ?? PluginConfig()
        let id = NetworkID(network: owner.network)
        let backend = try makeBackend(config)
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            for generation in try backend.generations(of: id) {
                try removeMembers(of: generation, backend) { $0 == owner.comment }
            }
        }
    }

    /// Removes the members whose comment `isStale` says goes and the subnets no remaining member is
    /// in, then (when `uninstallWhenEmpty`) the generation if it has no member left.
    func removeMembers(of generation: InstalledGeneration, _ backend: any NATBackend, uninstallWhenEmpty: Bool = true,
                       where isStale: (String) -> Bool) throws {
        var remaining: [IPAddress] = []
        for member in generation.members {
            if isStale(member.comment) {
                try backend.remove(member, from: generation.names)
            } else {
                remaining.append(member.address)
            }
        }
        if remaining.isEmpty && uninstallWhenEmpty {
            try backend.uninstall(generation.names)
            return
        }
        for subnet in generation.subnets where !remaining.contains(where: subnet.contains) {
            try backend.remove(subnet: subnet, from: generation.names)
        }
    }

    public func check(_ request: Request) throws {
        let config = try pluginConfig(request)
        let pod = Planner.pod(attachment(request), addresses: try podAddresses(request), config: config)
        let problems = try snatProblems(pod, config: config)
        if !problems.isEmpty { throw CheckFailure(problems: problems) }
    }

    /// How the node's SNAT state differs from what `pod` needs.
    func snatProblems(_ pod: PodPlan, config: PluginConfig) throws -> [String] {
        let backend = try makeBackend(config)
        var problems: [String] = []
        for family in pod.families {
            problems += try backend.problems(with: Planner.family(family, network: pod.attachment.network, config: config))
        }
        let generations = try backend.generations(of: NetworkID(network: pod.attachment.network))
        for member in pod.members {
            let address = member.address.address
            guard let generation = generations.first(where: { $0.names == member.names }) else {
                problems.append("set \(member.names.memberSet) for \(address) does not exist")
                continue
            }
            let owned = generation.members.first { $0.address == address }
            if owned == nil {
                problems.append("\(address) is not in set \(member.names.memberSet), so its traffic is not SNATed")
            } else if owned?.comment != pod.attachment.comment {
                problems.append("\(address) in set \(member.names.memberSet) belongs to \"\(owned!.comment)\", not \"\(pod.attachment.comment)\"")
            }
            if !generation.subnets.contains(member.address.subnet) {
                problems.append("subnet \(member.address.subnet) is not in set \(member.names.subnetSet), so traffic to the pod's own subnet would be SNATed")
            }
        }
        return problems
    }

    public func gc(_ request: Request) throws {
        let config = try pluginConfig(request)
        let valid = try validAttachments(request.config.members)
        let id = NetworkID(network: request.config.name)
        let backend = try makeBackend(config)
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            var keep: Set<ObjectNames> = []
            for generation in try backend.generations(of: id) {
                try removeMembers(of: generation, backend) { comment in
                    guard let owner = Attachment.owner(fromComment: comment) else { return true }
                    return !valid.contains(Attachment(network: id.network, containerID: owner.containerID, ifName: owner.ifName).comment)
                }
                if generation.members.contains(where: { comment in
                    Attachment.owner(fromComment: comment.comment).map {
                        valid.contains(Attachment(network: id.network, containerID: $0.containerID, ifName: $0.ifName).comment)
                    } ?? false
                }) {
                    keep.insert(generation.names)
                }
            }
            try backend.removeStrays(of: id, keep: keep)
        }
    }

    /// `cni.dev/valid-attachments` as owner comments.
    func validAttachments(_ members: [String: JSONValue]) throws -> Set<String> {
        let key = "cni.dev/valid-attachments"
        guard let value = members[key], value != .null else { return [] }
        guard let items = value.arrayValue else { throw ConfigError.wrongType(key: key, expected: "an array", actual: value.typeName) }
        var comments: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let containerID = item["containerID"]?.stringValue, let ifName = item["ifname"]?.stringValue else {
                throw ConfigError.wrongType(key: "\(key)[\(index)]", expected: "an object with string \"containerID\" and \"ifname\"",
                                            actual: item.typeName)
            }
            guard let network = members["name"]?.stringValue else { continue }
            comments.insert(Attachment(network: network, containerID: containerID, ifName: ifName).comment)
        }
        return comments
    }

    public func status(_ request: Request) throws {
        let report = try makeBackend(try pluginConfig(request)).status()
        for line in report.notes + report.warnings { log("randsnat: \(line)") }
        if !report.problems.isEmpty { throw NodeNotReady(problems: report.problems) }
    }
}
