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

/// GC went on past failures and removed what it could (the spec: a plugin "should continue;
/// removing as many resources as possible, and report the errors back"); each failed step is here.
public struct GCFailure: Error, Sendable, CustomStringConvertible {
    public struct Step: Sendable {
        /// What GC was doing, on which object.
        public let what: String
        public let error: any Error
    }
    public let network: String
    public let steps: [Step]
    public var description: String {
        "GC of network \"\(network)\" removed what it could, but \(steps.count) step(s) failed: "
            + steps.map { "\($0.what): \($0.error)" }.joined(separator: "; ")
    }
}

/// randsnat as a chained plugin: the verbs of the spec on top of the `NATBackend`s.
public struct SNATPlugin: CNIPlugin {
    /// Makes a backend for a request's config (the config sets its lock timeout).
    let makeBackend: (BackendKind, PluginConfig) throws -> any NATBackend
    let lock: any NetworkLock
    /// Writes one line to stderr.
    let log: (String) -> Void
    let pathExists: (String) -> Bool
    /// True when the path names the network namespace randsnat itself runs in.
    let isOwnNetworkNamespace: (String) throws -> Bool
    /// The pod's namespace settings (`podTCPTimestamps`).
    let sysctls: any PodSysctls
    /// What ADD applied per attachment (see `PodRecord`).
    let records: any RecordStore
    /// libcni's result cache, where STATUS finds pods randsnat never saw; nil: not looked at.
    let libcniCache: (any LibcniCacheSource)?

    public init(makeBackend: @escaping (BackendKind, PluginConfig) throws -> any NATBackend, lock: any NetworkLock,
                log: @escaping (String) -> Void, pathExists: @escaping (String) -> Bool,
                isOwnNetworkNamespace: @escaping (String) throws -> Bool = { _ in false }, sysctls: any PodSysctls = NoPodSysctls(),
                records: any RecordStore = NoRecords(), libcniCache: (any LibcniCacheSource)? = nil) {
        self.makeBackend = makeBackend
        self.lock = lock
        self.log = log
        self.pathExists = pathExists
        self.isOwnNetworkNamespace = isOwnNetworkNamespace
        self.sysctls = sysctls
        self.records = records
        self.libcniCache = libcniCache
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

    /// The pod's addresses from prevResult: those of the sandbox interface named CNI_IFNAME (see
    /// `CNIResult.podAddresses`).
    func podAddresses(_ request: Request) throws -> [PodAddress] {
        guard let prevResult = request.config.prevResult else { throw ConfigError.missingPrevResult }
        var addresses: [PodAddress] = []
        for item in try CNIResult.podAddresses(prevResult, ifName: request.environment.ifName) {
            guard let address = PodAddress(item.cidr), address.prefix > 0 else {
                throw ConfigError.invalidValue(key: "prevResult.ips[\(item.index)].address", value: item.cidr,
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
        let restoreSettings = try applyPodSettings(config, netns: request.environment.netns)
        guard !addresses.isEmpty else {
            log("randsnat: network \"\(request.config.name)\": prevResult has no address on the pod's side; nothing to SNAT")
            return output
        }
        do {
            try addSNAT(Planner.pod(attachment(request), addresses: addresses, config: config), config: config,
                        members: request.config.members)
        } catch {
            restoreSettings()
            throw error
        }
        return output
    }

    func requireNetns(_ request: Request) throws {
        guard pathExists(request.environment.netns) else {
            throw NetnsRefusal.missing(path: request.environment.netns)
        }
        try refuseOwnNetns(request)
    }

    /// Refuses a CNI_NETNS that is randsnat's own network namespace (the node's), as libcni's skel
    /// does: the pod's interface would be made, or removed, among the node's. A CNI_NETNS that is
    /// empty or gone is not refused (DEL allows both).
    func refuseOwnNetns(_ request: Request) throws {
        let netns = request.environment.netns
        guard !netns.isEmpty, pathExists(netns), try isOwnNetworkNamespace(netns) else { return }
        throw NetnsRefusal.ownNamespace(path: netns)
    }

    /// Installs the network's objects where needed, adds the pod's members and writes its record,
    /// under the network lock; on failure removes what it added. A network with state in the other
    /// backend is moved first (see `migrate`). `members` is the request's config, for the record.
    /// An attachment holds only the addresses of its last ADD: the members of other addresses its
    /// record names go (`replaceRecorded`).
    /// `onlyIf` is asked under the lock first; when it says no, nothing is done and the result is false.
    @discardableResult
    func addSNAT(_ pod: PodPlan, config: PluginConfig, members: [JSONKey: JSONValue] = [:], adopted: Bool = false,
                 onlyIf: () throws -> Bool = { true }) throws -> Bool {
        let network = pod.attachment.network
        let id = NetworkID(network: network)
        return try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            guard try onlyIf() else { return false }
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
                    try backend.addPod(member, comment: pod.attachment.comment(limit: backend.commentLimit))
                }
                try replaceRecorded(pod, in: backend)
                try records.write(PodRecord(attachment: pod.attachment, addresses: pod.members.map(\.address), backend: backend.kind,
                                            generation: Planner.generation(of: config), config: PodRecord.configKeys(of: members),
                                            adopted: adopted))
            } catch {
                rollBack(backend, id: id, installed: installed, owner: pod.attachment, addresses: pod.members.map(\.address.address))
                throw error
            }
            return true
        }
    }

    /// Where a network's state goes, and what other backends hold of it.
    struct Placement {
        let chosen: any NATBackend
        /// Other backends holding generations of the network (to be moved to `chosen`).
        let elsewhere: [(backend: any NATBackend, generations: [InstalledGeneration])]
    }

    /// Picks the backend (`BackendSelection.decide`): the configured one; with `auto`, the one
    /// holding the network's state, or (for a network new on this node, or with `redetect`) the
    /// node's netfilter. Reads only the names of the network's sets (not their members), so the
    /// per-pod path costs the same whatever the number of pods; the members of another backend are
    /// read only to move them. `fallback` (the agent's: where the records say the pods are) is taken
    /// before asking the node when no backend holds the network, as after `nft flush ruleset`.
    /// `backends`: the verb's backends, when it has built some already.
    func place(_ id: NetworkID, config: PluginConfig, redetect: Bool = false, fallback: BackendKind? = nil,
               backends: VerbBackends? = nil) throws -> Placement {
        let backends = backends ?? VerbBackends(makeBackend, config: config)
        var holdings: [BackendKind: BackendSelection.Holding] = [:]
        var failures: [BackendKind: any Error] = [:]
        for kind in BackendKind.allCases {
            do {
                // Keyed by what the backend says it is (a test's one fake may stand for both).
                let backend = try backends.backend(kind)
                holdings[backend.kind] = .generations(try backend.generationNames(of: id))
            } catch {
                holdings[kind] = .unreadable("\(error)")
                failures[kind] = error
            }
        }
        var outcome = BackendSelection.decide(config.backend, holdings: holdings, network: id, redetect: redetect, fallback: fallback)
        if outcome == .needsNodeNetfilter {
            // Any readable backend can tell (the netlink socket is the same); iptables first, as ever.
            let probe = BackendKind.allCases.first { failures[$0] == nil } ?? .iptables
            let node = try backends.backend(probe).nodeNetfilter()
            outcome = BackendSelection.decide(config.backend, holdings: holdings, network: id, redetect: redetect, fallback: fallback, node: node)
        }
        switch outcome {
        case .configuredUnreadable(let kind, let lines):
            for line in lines { log(line) }
            throw failures[kind]!
        case .needsNodeNetfilter:
            preconditionFailure("BackendSelection.decide asks for the node's netfilter only when not given it")
        case .decided(let decision):
            for line in decision.log { log(line) }
            return Placement(chosen: try backends.backend(decision.chosen), elsewhere: try decision.moveFrom.map {
                let other = try backends.backend($0)
                return (other, try other.generations(of: id))
            })
        }
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
                let comment = Attachment.recomment(member.comment, network: network, limit: new.commentLimit)
                try new.addPod(PodPlan.Member(address: address, names: plan.names), comment: comment)
                moved += 1
            }
        }
        for generation in generations { try old.uninstall(generation.names) }
        try recordMove(of: network, to: new.kind, config: config)
        log("randsnat: network \"\(network)\": moved \(moved) pod address(es) from \(old.kind.rawValue) to \(new.kind.rawValue)")
    }

    /// Undoes a failed ADD: the pod's members, the subnets only it used, then the network objects
    /// this ADD created if nobody uses them.
    func rollBack(_ backend: any NATBackend, id: NetworkID, installed: [FamilyPlan], owner: Attachment, addresses: [IPAddress]) {
        for generation in (try? backend.generations(of: id)) ?? [] {
            try? removeMembers(of: generation, backend, uninstallWhenEmpty: false) { owner.owns($0, of: addresses, limit: backend.commentLimit) }
        }
        let after = (try? backend.generations(of: id)) ?? []
        for plan in installed where !after.contains(where: { $0.names == plan.names && !$0.members.isEmpty }) {
            try? backend.uninstall(plan.names)
        }
    }

    /// DEL finds the pod's members by their owner comment, in every generation of the network, so it
    /// needs neither prevResult nor the config ADD saw; a generation left empty is torn down.
    public func del(_ request: Request) throws {
        try refuseOwnNetns(request)
        try removeSNAT(attachment(request), members: request.config.members, addresses: knownAddresses(request))
    }

    /// The pod's addresses when DEL is given a prevResult that names them (it need not be).
    func knownAddresses(_ request: Request) -> [IPAddress] {
        ((try? podAddresses(request)) ?? []).map(\.address)
    }

    /// Removes the pod's members in every generation, and generations left empty. Reads randsnat's
    /// keys leniently: a config edited since ADD must not keep a pod's state on the node. A member
    /// whose comment names the pod only ambiguously (see `Attachment.Claim`) goes when its address
    /// is one of `addresses`.
    /// `onlyIf` is asked under the lock first; when it says no, nothing is done and the result is false.
    @discardableResult
    func removeSNAT(_ owner: Attachment, members: [JSONKey: JSONValue], addresses: [IPAddress], onlyIf: () throws -> Bool = { true }) throws -> Bool {
        let config = (try? PluginConfig.parse(members).config) ?? PluginConfig()
        let id = NetworkID(network: owner.network)
        // One set of backends for the whole DEL (the record's backend is not built again by the
        // fallback), made before the lock and kept until after it: their netlink sockets close
        // unlocked. Closing a netfilter socket after a commit that deleted something waits for an
        // RCU grace period (nf_tables' destroy work, ~10-30 ms; see `NFTablesBackend.deinit`), which
        // the next DEL of the network need not wait behind.
        let backends = VerbBackends(makeBackend, config: config)
        return try withExtendedLifetime(backends) {
            try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
                guard try onlyIf() else { return false }
                try removeSNATLocked(owner, id: id, config: config, backends: backends, addresses: addresses)
                return true
            }
        }
    }

    private func removeSNATLocked(_ owner: Attachment, id: NetworkID, config: PluginConfig, backends: VerbBackends,
                                  addresses: [IPAddress]) throws {
        // The record says where the pod's members are: no dump of the network's members.
        if try !removeRecorded(owner, backends: backends) {
            for (backend, generations) in try holdings(id, config: config, backends: backends) {
                for generation in generations {
                    try removeMembers(of: generation, backend) { owner.owns($0, of: addresses, limit: backend.commentLimit) }
                }
            }
        }
        try records.remove(owner)
    }

    /// Every backend with what it holds of the network. ADD, DEL and GC look in all of them: the pod
    /// may have been added before a backend switch. A backend the config does not name and that
    /// cannot be read (a kernel without nf_tables, or without ipset on a pure nftables node) holds
    /// nothing, with a line on stderr: its state could not be changed anyway, and a node that lacks
    /// one of them must still run pods.
    func holdings(_ id: NetworkID, config: PluginConfig,
                  backends: VerbBackends? = nil) throws -> [(backend: any NATBackend, generations: [InstalledGeneration])] {
        try holdings(id, config: config, backends: backends) { try $0.generations(of: id) }
    }

    /// `holdings`, reading each backend with `read` (built through `backends` when the verb has them).
    func holdings<T>(_ id: NetworkID, config: PluginConfig, backends: VerbBackends? = nil,
                     read: (any NATBackend) throws -> [T]) throws -> [(backend: any NATBackend, generations: [T])] {
        let backends = backends ?? VerbBackends(makeBackend, config: config)
        var states: [(backend: any NATBackend, generations: [T])] = []
        for kind in BackendKind.allCases {
            do {
                let backend = try backends.backend(kind)
                states.append((backend, try read(backend)))
            } catch {
                if config.backend.rawValue == kind.rawValue { throw error }
                log("randsnat: \(id): cannot read the \(kind.rawValue) backend, taking it to hold nothing: \(error)")
            }
        }
        return states
    }

    /// One backend with what it holds of the network; nil for an unreadable backend the config does
    /// not name (see `holdings`).
    func holding(_ kind: BackendKind, _ id: NetworkID, config: PluginConfig,
                 backends: VerbBackends) throws -> (backend: any NATBackend, generations: [InstalledGeneration])? {
        do {
            let backend = try backends.backend(kind)
            return (backend, try backend.generations(of: id))
        } catch {
            if config.backend.rawValue == kind.rawValue { throw error }
            log("randsnat: \(id): cannot read the \(kind.rawValue) backend, taking it to hold nothing: \(error)")
            return nil
        }
    }

    /// Removes the members `isStale` says go and the subnets no remaining member is
    /// in, then (when `uninstallWhenEmpty`) the generation if it has no member left. A failed step
    /// throws, or, given `onFailure`, is handed to it and the other steps go on (a member that could
    /// not be removed counts as remaining).
    func removeMembers(of generation: InstalledGeneration, _ backend: any NATBackend, uninstallWhenEmpty: Bool = true,
                       onFailure: ((String, any Error) -> Void)? = nil, where isStale: (InstalledMember) -> Bool) throws {
        func attempt(_ what: @autoclosure () -> String, _ step: () throws -> Void) throws -> Bool {
            do {
                try step()
                return true
            } catch {
                guard let onFailure else { throw error }
                onFailure(what(), error)
                return false
            }
        }
        var remaining: [IPAddress] = []
        for member in generation.members {
            if isStale(member),
               try attempt("removing \(member.address) (\(member.comment)) from \(generation.names.memberSet)",
                           { try backend.remove(member, from: generation.names) }) {
                continue
            }
            remaining.append(member.address)
        }
        if remaining.isEmpty && uninstallWhenEmpty {
            _ = try attempt("removing \(generation.names.chain) and its sets", { try backend.uninstall(generation.names) })
            return
        }
        for subnet in generation.subnets where !remaining.contains(where: subnet.contains) {
            _ = try attempt("removing subnet \(subnet) from \(generation.names.subnetSet)",
                            { try backend.remove(subnet: subnet, from: generation.names) })
        }
    }

    public func check(_ request: Request) throws {
        let config = try pluginConfig(request)
        let pod = Planner.pod(attachment(request), addresses: try podAddresses(request), config: config)
        let problems = try snatProblems(pod, config: config) + podSettingsProblems(config, netns: request.environment.netns)
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
            } else if let owned, pod.attachment.claim(owned.comment, limit: backend.commentLimit) == nil {
                problems.append("\(address) in set \(member.names.memberSet) belongs to \"\(owned.comment.escapedBytes)\", not \"\(pod.attachment.comment(limit: backend.commentLimit).escapedBytes)\"")
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
        // One failure (a backend, a generation, a member) does not stop GC: every step is tried,
        // and the failures come back together at the end.
        var failures: [GCFailure.Step] = []
        let record = { (what: String, error: any Error) in failures.append(GCFailure.Step(what: what, error: error)) }
        try lock.withLock(id, timeoutSeconds: config.lockTimeoutSeconds) {
            let backends = VerbBackends(makeBackend, config: config)
            for kind in BackendKind.allCases {
                let held: (backend: any NATBackend, generations: [InstalledGeneration])?
                do {
                    held = try holding(kind, id, config: config, backends: backends)
                } catch {
                    record("reading the \(kind.rawValue) backend", error)
                    continue
                }
                guard let (backend, generations) = held else { continue }
                var keep: Set<ObjectNames> = []
                let live = Set(valid.flatMap { $0.comments(limit: backend.commentLimit) })
                for generation in generations {
                    try removeMembers(of: generation, backend, onFailure: record) { !live.contains(Array($0.comment.utf8)) }
                    if generation.members.contains(where: { live.contains(Array($0.comment.utf8)) }) {
                        keep.insert(generation.names)
                    }
                }
                do {
                    try backend.removeStrays(of: id, keep: keep)
                } catch {
                    record("removing stray objects of the network from \(kind.rawValue)", error)
                }
            }
            do {
                try removeRecords(of: id, notIn: valid)
            } catch {
                record("removing the records of gone attachments", error)
            }
            // With `auto`, GC is where a network follows the node to another netfilter.
            do {
                let placement = try place(id, config: config, redetect: config.backend == .auto, backends: backends)
                for (other, generations) in placement.elsewhere {
                    do {
                        try migrate(generations, from: other, to: placement.chosen, network: id.network, config: config)
                    } catch {
                        record("moving the network from \(other.kind.rawValue) to \(placement.chosen.kind.rawValue)", error)
                    }
                }
            } catch {
                record("choosing the network's backend", error)
            }
        }
        if !failures.isEmpty { throw GCFailure(network: id.network, steps: failures) }
    }

    /// `cni.dev/valid-attachments` of this network (compared by bytes: see `Attachment`'s ==).
    func validAttachments(_ members: [JSONKey: JSONValue]) throws -> Set<Attachment> {
        let key = "cni.dev/valid-attachments"
        guard let value = members[key], value != .null else { return [] }
        guard let items = value.arrayValue else { throw ConfigError.wrongType(key: key, expected: "an array", actual: value.typeName) }
        var attachments: Set<Attachment> = []
        for (index, item) in items.enumerated() {
            guard let containerID = item["containerID"]?.stringValue, let ifName = item["ifname"]?.stringValue else {
                throw ConfigError.wrongType(key: "\(key)[\(index)]", expected: "an object with string \"containerID\" and \"ifname\"",
                                            actual: item.typeName)
            }
            guard let network = members["name"]?.stringValue else { continue }
            attachments.insert(Attachment(network: network, containerID: containerID, ifName: ifName))
        }
        return attachments
    }

    public func status(_ request: Request) throws {
        let config = try pluginConfig(request)
        let backends = VerbBackends(makeBackend, config: config)
        let kind = try BackendKind(rawValue: config.backend.rawValue) ?? backends.backend(.iptables).nodeNetfilter()
        var report = try backends.backend(kind).status()
        report.notes.append("backend: \(kind.rawValue)" + (config.backend == .auto ? " (auto)" : ""))
        for line in report.notes + report.warnings { log("randsnat: \(line)") }
        if !report.problems.isEmpty { throw NodeNotReady(problems: report.problems) }
        let missing = try podsWithoutSNAT(network: request.config.name, config: config, backends: backends)
            + podsNeverSeen(network: request.config.name)
        if !missing.isEmpty { throw PodsWithoutSNAT(problems: missing) }
    }
}

/// The backends one verb uses, each built on its first use and kept for the rest of the verb: a
/// verb builds only the backends it asks for, and each at most once.
final class VerbBackends {
    private let make: (BackendKind, PluginConfig) throws -> any NATBackend
    private let config: PluginConfig
    private var built: [BackendKind: any NATBackend] = [:]

    init(_ make: @escaping (BackendKind, PluginConfig) throws -> any NATBackend, config: PluginConfig) {
        self.make = make
        self.config = config
    }

    /// The backend of that kind; one that failed to build is tried again on the next call.
    func backend(_ kind: BackendKind) throws -> any NATBackend {
        if let backend = built[kind] { return backend }
        let backend = try make(kind, config)
        built[kind] = backend
        return backend
    }
}
