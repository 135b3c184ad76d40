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

/// randsnat as a chained plugin: the verbs of the spec on top of the `NATBackend`s.
public struct SNATPlugin: CNIPlugin {
    /// Makes a backend for a request's config (the config sets its lock timeout).
    let makeBackend: (BackendKind, PluginConfig) throws -> any NATBackend
    let lock: any NetworkLock
    /// Writes one line to stderr.
    let log: (String) -> Void
    let pathExists: (String) -> Bool
    /// What ADD applied per attachment (see `PodRecord`).
    let records: any RecordStore

    public init(makeBackend: @escaping (BackendKind, PluginConfig) throws -> any NATBackend, lock: any NetworkLock,
                log: @escaping (String) -> Void, pathExists: @escaping (String) -> Bool, records: any RecordStore = NoRecords()) {
        self.makeBackend = makeBackend
        self.lock = lock
        self.log = log
        self.pathExists = pathExists
        self.records = records
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
        try addSNAT(Planner.pod(attachment(request), addresses: addresses, config: config), config: config,
                    members: request.config.members)
        return output
    }

    func requireNetns(_ request: Request) throws {
        guard pathExists(request.environment.netns) else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS=\"\(request.environment.netns)\" does not exist",
                           details: "the runtime must pass the path of the pod's network namespace")
        }
    }

    /// Installs the network's objects where needed, adds the pod's members and writes its record,
    /// under the network lock; on failure removes what it added. A network with state in the other
    /// backend is moved first (see `migrate`). `members` is the request's config, for the record.
    func addSNAT(_ pod: PodPlan, config: PluginConfig, members: [String: JSONValue] = [:]) throws {
        let network = pod.attachment.network
        let id = NetworkID(network: network)
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            let placement = try place(id, config: config)
            let backend = placement.chosen
            for (other, generations) in placement.elsewhere {
                try migrate(generations, from: other, to: backend, network: network, config: config)
            }
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
                    try backend.addPod(member, comment: pod.attachment.comment)
                }
                try records.write(PodRecord(attachment: pod.attachment, addresses: pod.members.map(\.address), backend: backend.kind,
                                            generation: Planner.generation(of: config), config: PodRecord.configKeys(of: members)))
            } catch {
                rollBack(backend, id: id, installed: installed, comment: pod.attachment.comment)
                throw error
            }
        }
    }

    /// Where a network's state goes, and what other backends hold of it.
    struct Placement {
        let chosen: any NATBackend
        /// Other backends holding generations of the network (to be moved to `chosen`).
        let elsewhere: [(backend: any NATBackend, generations: [InstalledGeneration])]
    }

    /// Picks the backend: the configured one; with `auto`, the one holding the network's state, or
    /// (for a network new on this node, or with `redetect`) the node's netfilter.
    /// Reads only the names of the network's sets (not their members), so the per-pod path costs
    /// the same whatever the number of pods; the members of another backend are read only to move them.
    /// `fallback` (the agent's: where the records say the pods are) is taken before asking the node
    /// when no backend holds the network, as after `nft flush ruleset`.
    func place(_ id: NetworkID, config: PluginConfig, redetect: Bool = false, fallback: BackendKind? = nil) throws -> Placement {
        let states = try holdings(id, config: config) { try $0.generationNames(of: id) }
        let kind: BackendKind
        switch config.backend {
        case .iptables: kind = .iptables
        case .nftables: kind = .nftables
        case .auto:
            if !redetect, let holder = states.first(where: { !$0.generations.isEmpty }) {
                kind = holder.backend.kind
            } else if !redetect, let fallback {
                kind = fallback
            } else {
                kind = try (states.first?.backend ?? makeBackend(.iptables, config)).nodeNetfilter()
            }
        }
        let chosen = try states.first { $0.backend.kind == kind }?.backend ?? makeBackend(kind, config)
        return Placement(chosen: chosen, elsewhere: try states.filter { $0.backend.kind != kind && !$0.generations.isEmpty }
            .map { ($0.backend, try $0.backend.generations(of: id)) })
    }

    /// Moves a network's state between backends without a moment in which a pod is not SNATed: the
    /// new backend's rules and members first, then the old backend's objects go. (Both nat hooks sit
    /// at the srcnat priority; a flow NATed by one is not NATed again by the other.) Pods keep their
    /// owner comments; every generation moves into the current config's generation.
    func migrate(_ generations: [InstalledGeneration], from old: any NATBackend, to new: any NATBackend, network: String,
                 config: PluginConfig) throws {
        var moved = 0
        for generation in generations {
            let plan = Planner.family(generation.names.family, network: network, config: config)
            if try !new.isInstalled(plan) { try new.install(plan) }
            for member in generation.members {
                let prefix = generation.subnets.first { $0.contains(member.address) }?.prefix ?? member.address.family.bitCount
                let address = PodAddress(address: member.address, prefix: prefix)
                try new.addPod(PodPlan.Member(address: address, names: plan.names), comment: member.comment)
                moved += 1
            }
        }
        for generation in generations { try old.uninstall(generation.names) }
        try recordMove(of: network, to: new.kind, config: config)
        log("randsnat: network \"\(network)\": moved \(moved) pod address(es) from \(old.kind.rawValue) to \(new.kind.rawValue)")
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
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            // The record says where the pod's members are: no dump of the network's members.
            if try !removeRecorded(owner, config: config) {
                for (backend, generations) in try holdings(id, config: config) {
                    for generation in generations {
                        try removeMembers(of: generation, backend) { $0 == owner.comment }
                    }
                }
            }
            try records.remove(owner)
        }
    }

    /// Every backend with what it holds of the network. ADD, DEL and GC look in all of them: the pod
    /// may have been added before a backend switch. A backend the config does not name and that
    /// cannot be read (a kernel without nf_tables, or without ipset on a pure nftables node) holds
    /// nothing, with a line on stderr: its state could not be changed anyway, and a node that lacks
    /// one of them must still run pods.
    func holdings(_ id: NetworkID, config: PluginConfig) throws -> [(backend: any NATBackend, generations: [InstalledGeneration])] {
        try holdings(id, config: config) { try $0.generations(of: id) }
    }

    /// `holdings`, reading each backend with `read`.
    func holdings<T>(_ id: NetworkID, config: PluginConfig, read: (any NATBackend) throws -> [T]) throws -> [(backend: any NATBackend, generations: [T])] {
        var states: [(backend: any NATBackend, generations: [T])] = []
        for kind in BackendKind.allCases {
            do {
                let backend = try makeBackend(kind, config)
                states.append((backend, try read(backend)))
            } catch {
                if config.backend.rawValue == kind.rawValue { throw error }
                log("randsnat: \(id): cannot read the \(kind.rawValue) backend, taking it to hold nothing: \(error)")
            }
        }
        return states
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
        let placement = try place(NetworkID(network: pod.attachment.network), config: config)
        let backend = placement.chosen
        var problems: [String] = []
        for (other, _) in placement.elsewhere {
            problems.append("the network has state in \(other.kind.rawValue) while its backend is \(backend.kind.rawValue); the next ADD or GC moves it")
        }
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
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            for (backend, generations) in try holdings(id, config: config) {
                var keep: Set<ObjectNames> = []
                for generation in generations {
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
            try removeRecords(of: id, notIn: valid)
            // With `auto`, GC is where a network follows the node to another netfilter.
            let placement = try place(id, config: config, redetect: config.backend == .auto)
            for (other, generations) in placement.elsewhere {
                try migrate(generations, from: other, to: placement.chosen, network: id.network, config: config)
            }
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
        let config = try pluginConfig(request)
        var kind = BackendKind(rawValue: config.backend.rawValue)
        if kind == nil { kind = try makeBackend(.iptables, config).nodeNetfilter() }
        var report = try makeBackend(kind!, config).status()
        report.notes.append("backend: \(kind!.rawValue)" + (config.backend == .auto ? " (auto)" : ""))
        for line in report.notes + report.warnings { log("randsnat: \(line)") }
        if !report.problems.isEmpty { throw NodeNotReady(problems: report.problems) }
        let missing = try podsWithoutSNAT(network: request.config.name, config: config)
        if !missing.isEmpty { throw PodsWithoutSNAT(problems: missing) }
    }
}
