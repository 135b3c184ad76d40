import CNI

/// randsnat as the interface plugin (a config with `ipam`): bridge, veth, IPAM delegation, then the
/// same SNAT as chained mode.
public struct StandalonePlugin {
    let snat: SNATPlugin
    let network: any PodNetwork
    let ipam: any IPAMRunner

    public init(snat: SNATPlugin, network: any PodNetwork, ipam: any IPAMRunner) {
        self.snat = snat
        self.network = network
        self.ipam = ipam
    }

    /// The config as the IPAM plugin gets it on stdin: the bytes randsnat got (the spec's "same stdin").
    func ipamInput(_ request: Request) -> [UInt8] { request.config.raw }

    /// ADD: IPAM runs while the bridge and the veth are made (neither needs an address), then the
    /// addresses, routes and SNAT. An IPAM plugin that needs the pod's link (dhcp) runs after the
    /// link is made and up instead; with `"ipam": {}` there is no IPAM and no SNAT. A failure undoes
    /// all of it, the IPAM lease included.
    public func add(_ request: Request, bridge: BridgeConfig) throws -> JSONValue {
        let snatConfig = try snat.pluginConfig(request)
        try snat.requireNetns(request)
        let env = request.environment
        var links: CreatedLinks?
        if bridge.ipamNeedsLink { links = try network.createLinks(LinkPlan(bridge), netns: env.netns, ifName: env.ifName) }
        let running: (any RunningIPAM)?
        do {
            running = try bridge.ipamType.map { try ipam.start(.add, plugin: $0, environment: env, config: ipamInput(request)) }
        } catch {
            if let links { try? network.remove(links) }
            throw error
        }
        var allocated = false
        var restoreSettings: () -> Void = {}
        do {
            if links == nil { links = try network.createLinks(LinkPlan(bridge), netns: env.netns, ifName: env.ifName) }
            var plan = BridgePlanner.layer2(bridge)
            var allocation: JSONValue?
            var ipamDNS: JSONValue?
            if let running, let ipamType = bridge.ipamType {
                allocation = try running.wait()
                allocated = true
                guard let allocation else { throw DelegatedPluginError.noResult(plugin: ipamType) }
                let parsed = try CNIResult.ipamResult(allocation)
                plan = try BridgePlanner.plan(bridge, ipam: parsed)
                ipamDNS = parsed.dns
            }
            let pod = try network.configure(links!, plan: plan)
            restoreSettings = try snat.applyPodSettings(snatConfig, netns: env.netns)
            if bridge.ipMasq && !plan.ips.isEmpty {
                try snat.addSNAT(Planner.pod(snat.attachment(request), addresses: plan.ips.map(\.address), config: snatConfig),
                                 config: snatConfig, members: request.config.members)
            }
            return try Self.result(version: request.config.cniVersion, pod: pod, plan: plan,
                                   ipamRoutes: allocation?["routes"], dns: bridge.dns ?? ipamDNS)
        } catch {
            restoreSettings()
            if let links { try? network.remove(links) }
            if let running, let ipamType = bridge.ipamType {
                if !allocated { allocated = (try? running.wait()) != nil }
                if allocated { _ = try? ipam.run(.del, plugin: ipamType, environment: env, config: ipamInput(request)) }
            }
            throw error
        }
    }

    /// The result in the shape the reference bridge prints: interfaces [bridge, host veth, pod],
    /// ips on interface 2 with their gateways (none for layer 2), IPAM's routes (plus the default
    /// routes of isDefaultGateway), the config's dns or else IPAM's.
    static func result(version: CNIVersion, pod: AttachedPod, plan: BridgePlan, ipamRoutes: JSONValue?, dns: JSONValue?) throws -> JSONValue {
        func interface(_ item: ResultInterface) -> JSONValue {
            var members: [JSONKey: JSONValue] = ["name": .string(item.name), "mac": .string(item.mac)]
            if let sandbox = item.sandbox { members["sandbox"] = .string(sandbox) }
            return .object(members)
        }
        let ips: [JSONValue] = plan.ips.map { ip in
            var members: [JSONKey: JSONValue] = ["address": .string(ip.address.description), "interface": .int(2)]
            if let gateway = ip.gateway { members["gateway"] = .string(gateway.description) }
            return .object(members)
        }
        var routes = ipamRoutes?.arrayValue ?? []
        let given = routes.count
        for route in plan.routes.dropFirst(given) {
            var members: [JSONKey: JSONValue] = ["dst": .string(route.destination.description)]
            if let gateway = route.gateway { members["gw"] = .string(gateway.description) }
            routes.append(.object(members))
        }
        var result: [JSONKey: JSONValue] = [
            "cniVersion": .string(version.description),
            "interfaces": .array([interface(pod.bridge), interface(pod.hostVeth), interface(pod.pod)]),
            "dns": dns ?? .object([:]),
        ]
        if !ips.isEmpty { result["ips"] = .array(ips) }
        if !routes.isEmpty { result["routes"] = .array(routes) }
        return try CNIResult.convert(.object(result), to: version)
    }

    /// DEL: the pod's veth (gone already when its netns is), its SNAT and its IPAM lease. Each
    /// step treats "not there" as done, so DEL can run any number of times. It needs only
    /// `ipam.type` of the config (see `BridgeConfig.mode`).
    public func del(_ request: Request, ipamType: String?) throws {
        try snat.refuseOwnNetns(request)
        let env = request.environment
        // The IPAM plugin releases the lease while the kernel tears the veth down.
        let running = try ipamType.map { try ipam.start(.del, plugin: $0, environment: env, config: ipamInput(request)) }
        do {
            // ... and the SNAT state goes while the kernel tears the veth down.
            let removeSNAT = { () throws -> Void in _ = try snat.removeSNAT(snat.attachment(request), members: request.config.members, addresses: snat.knownAddresses(request)) }
            if !env.netns.isEmpty && snat.pathExists(env.netns) {
                try network.detach(netns: env.netns, ifName: env.ifName, meanwhile: removeSNAT)
            } else {
                try removeSNAT()
            }
        } catch {
            _ = try? running?.wait()
            throw error
        }
        _ = try running?.wait()
    }

    /// GC: the SNAT's GC while the IPAM plugin's GC runs. SPEC 1.1.0: a plugin that delegates to
    /// IPAM forwards GC to it, with the same config (`cni.dev/valid-attachments` included). Each runs
    /// even when the other fails; when both fail, the IPAM plugin's error goes to stderr and the
    /// SNAT's is the answer.
    public func gc(_ request: Request, ipamType: String) throws {
        let running = Result { try ipam.start(.gc, plugin: ipamType, environment: request.environment, config: ipamInput(request)) }
        let snatOutcome = Result { try snat.gc(request) }
        let ipamOutcome = Result { try delegated(.gc, running.get(), plugin: ipamType, request) }
        if case .failure(let error) = ipamOutcome, case .failure = snatOutcome {
            snat.log("randsnat: network \"\(request.config.name)\": IPAM plugin \"\(ipamType)\" GC failed too: \(error)")
        }
        try snatOutcome.get()
        try ipamOutcome.get()
    }

    /// STATUS: the SNAT's STATUS and the IPAM plugin's (SPEC 1.1.0: a plugin that delegates to
    /// IPAM forwards STATUS and returns its error). The SNAT's error comes first.
    public func status(_ request: Request, ipamType: String) throws {
        let running = Result { try ipam.start(.status, plugin: ipamType, environment: request.environment, config: ipamInput(request)) }
        let snatOutcome = Result { try snat.status(request) }
        let ipamOutcome = Result { try delegated(.status, running.get(), plugin: ipamType, request) }
        try snatOutcome.get()
        try ipamOutcome.get()
    }

    /// Waits for a GC or STATUS the IPAM plugin runs. An IPAM plugin older than those verbs (CNI
    /// 1.1.0; Debian 12's host-local 1.1.1 is one) answers with an error: code 1, or "unknown
    /// CNI_COMMAND" (code 4), or "missing containerID" (code 3) from its older skel. randsnat takes
    /// any error as "nothing to do" when it is code 1 or when the plugin's VERSION lists no version
    /// that has the verb, and says so on stderr; any other error is the plugin's answer.
    func delegated(_ verb: Verb, _ running: any RunningIPAM, plugin: String, _ request: Request) throws {
        do {
            _ = try running.wait()
        } catch let error where error is CNIError || error is DelegatedPluginError {
            let minimum = verb.minimumVersion ?? CNIVersion.current
            guard (error as? CNIError)?.code == .incompatibleVersion || !supports(plugin, minimum, request) else { throw error }
            let answer = (error as? CNIError)?.msg ?? "\(error)"
            snat.log("randsnat: network \"\(request.config.name)\": IPAM plugin \"\(plugin)\" predates \(verb.rawValue) "
                     + "(CNI \(minimum)), so it has nothing to do (it answered: \(answer))")
        }
    }

    /// Whether the plugin's VERSION answer lists `version` or a later one (false when it has none).
    func supports(_ plugin: String, _ version: CNIVersion, _ request: Request) -> Bool {
        guard let answer = try? ipam.run(.version, plugin: plugin, environment: request.environment, config: ipamInput(request)),
              let versions = answer["supportedVersions"]?.arrayValue else { return false }
        return versions.contains { $0.stringValue.flatMap(CNIVersion.init).map { $0 >= version } ?? false }
    }

    /// CHECK: the IPAM plugin's CHECK, then interfaces, addresses and routes as the result said,
    /// then the SNAT.
    public func check(_ request: Request, bridge: BridgeConfig) throws {
        guard let prevResult = request.config.prevResult else { throw ConfigError.missingPrevResult }
        try snat.requireNetns(request)
        var plan = BridgePlanner.layer2(bridge)
        if let ipamType = bridge.ipamType {
            _ = try ipam.run(.check, plugin: ipamType, environment: request.environment, config: ipamInput(request))
            plan = try BridgePlanner.plan(bridge, ipam: CNIResult.ipamResult(prevResult))
        }
        var problems = try network.problems(with: plan, netns: request.environment.netns, ifName: request.environment.ifName)
        let config = try snat.pluginConfig(request)
        problems += try snat.podSettingsProblems(config, netns: request.environment.netns)
        if bridge.ipMasq && !plan.ips.isEmpty {
            problems += try snat.snatProblems(Planner.pod(snat.attachment(request), addresses: plan.ips.map(\.address), config: config),
                                              config: config)
        }
        if !problems.isEmpty { throw CheckFailure(problems: problems) }
    }
}

/// randsnat's verbs: standalone when the config has an `ipam` section, chained otherwise.
public struct RandSNATPlugin: CNIPlugin {
    let chained: SNATPlugin
    let standalone: StandalonePlugin

    public init(chained: SNATPlugin, standalone: StandalonePlugin) {
        self.chained = chained
        self.standalone = standalone
    }

    public func add(_ request: Request) throws -> JSONValue {
        if let bridge = try BridgeConfig.parse(request.config.members, cniArgs: request.environment.args) {
            return try standalone.add(request, bridge: bridge)
        }
        return try chained.add(request)
    }

    /// DEL reads `ipam` alone (and randsnat's keys leniently, as chained DEL does): a config edited
    /// after ADD must not keep the pod's veth, SNAT or lease on the node.
    public func del(_ request: Request) throws {
        if case .standalone(let ipamType) = try BridgeConfig.mode(request.config.members) {
            return try standalone.del(request, ipamType: ipamType)
        }
        try chained.del(request)
    }

    public func check(_ request: Request) throws {
        if let bridge = try BridgeConfig.parse(request.config.members, cniArgs: request.environment.args) {
            return try standalone.check(request, bridge: bridge)
        }
        try chained.check(request)
    }

    /// GC and STATUS are the SNAT's in both modes; standalone also forwards them to the IPAM plugin.
    public func gc(_ request: Request) throws {
        if case .standalone(let ipamType?) = try BridgeConfig.mode(request.config.members) {
            return try standalone.gc(request, ipamType: ipamType)
        }
        try chained.gc(request)
    }

    public func status(_ request: Request) throws {
        if let bridge = try BridgeConfig.parse(request.config.members, cniArgs: request.environment.args), let ipamType = bridge.ipamType {
            return try standalone.status(request, ipamType: ipamType)
        }
        try chained.status(request)
    }
}
