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
    /// addresses, routes and SNAT. A failure undoes all of it, the IPAM lease included.
    public func add(_ request: Request, bridge: BridgeConfig) throws -> JSONValue {
        let snatConfig = try snat.pluginConfig(request)
        try snat.requireNetns(request)
        let env = request.environment
        let running = try ipam.start(.add, plugin: bridge.ipamType, environment: env, config: ipamInput(request))
        var links: CreatedLinks?
        var allocated = false
        do {
            links = try network.createLinks(LinkPlan(bridge), netns: env.netns, ifName: env.ifName)
            let answer = try running.wait()
            allocated = true
            guard let allocation = answer else { throw CNIError(.internal, "IPAM plugin \"\(bridge.ipamType)\" printed no result") }
            let parsed = try CNIResult.ipamResult(allocation)
            let plan = try BridgePlanner.plan(bridge, ipam: parsed)
            let pod = try network.configure(links!, plan: plan)
            if bridge.ipMasq {
                try snat.addSNAT(Planner.pod(snat.attachment(request), addresses: plan.ips.map(\.address), config: snatConfig),
                                 config: snatConfig, members: request.config.members)
            }
            return try Self.result(version: request.config.cniVersion, pod: pod, plan: plan,
                                   ipamRoutes: allocation["routes"], dns: parsed.dns)
        } catch {
            if let links { try? network.remove(links) }
            if !allocated { allocated = (try? running.wait()) != nil }
            if allocated { _ = try? ipam.run(.del, plugin: bridge.ipamType, environment: env, config: ipamInput(request)) }
            throw error
        }
    }

    /// The result in the shape the reference bridge prints: interfaces [bridge, host veth, pod],
    /// ips on interface 2 with their gateways, IPAM's routes (plus the default routes of
    /// isDefaultGateway), IPAM's dns.
    static func result(version: CNIVersion, pod: AttachedPod, plan: BridgePlan, ipamRoutes: JSONValue?, dns: JSONValue?) throws -> JSONValue {
        func interface(_ item: ResultInterface) -> JSONValue {
            var members: [String: JSONValue] = ["name": .string(item.name), "mac": .string(item.mac)]
            if let sandbox = item.sandbox { members["sandbox"] = .string(sandbox) }
            return .object(members)
        }
        let ips: [JSONValue] = plan.ips.map { ip in
            var members: [String: JSONValue] = ["address": .string(ip.address.description), "interface": .int(2)]
            if let gateway = ip.gateway { members["gateway"] = .string(gateway.description) }
            return .object(members)
        }
        var routes = ipamRoutes?.arrayValue ?? []
        let given = routes.count
        for route in plan.routes.dropFirst(given) {
            var members: [String: JSONValue] = ["dst": .string(route.destination.description)]
            if let gateway = route.gateway { members["gw"] = .string(gateway.description) }
            routes.append(.object(members))
        }
        var result: [String: JSONValue] = [
            "cniVersion": .string(version.description),
            "interfaces": .array([interface(pod.bridge), interface(pod.hostVeth), interface(pod.pod)]),
            "ips": .array(ips),
            "dns": dns ?? .object([:]),
        ]
        if !routes.isEmpty { result["routes"] = .array(routes) }
        return try CNIResult.convert(.object(result), to: version)
    }

    /// DEL: the pod's veth (gone already when its netns is), its SNAT and its IPAM lease. Each
    /// step treats "not there" as done, so DEL can run any number of times.
    public func del(_ request: Request, bridge: BridgeConfig) throws {
        let env = request.environment
        // The IPAM plugin releases the lease while the kernel tears the veth down.
        let running = try ipam.start(.del, plugin: bridge.ipamType, environment: env, config: ipamInput(request))
        do {
            // ... and the SNAT state goes while the kernel tears the veth down.
            let removeSNAT = { try snat.removeSNAT(snat.attachment(request), members: request.config.members) }
            if !env.netns.isEmpty && snat.pathExists(env.netns) {
                try network.detach(netns: env.netns, ifName: env.ifName, meanwhile: removeSNAT)
            } else {
                try removeSNAT()
            }
        } catch {
            _ = try? running.wait()
            throw error
        }
        _ = try running.wait()
    }

    /// CHECK: the IPAM plugin's CHECK, then interfaces, addresses and routes as the result said,
    /// then the SNAT.
    public func check(_ request: Request, bridge: BridgeConfig) throws {
        guard let prevResult = request.config.prevResult else { throw ConfigError.missingPrevResult }
        try snat.requireNetns(request)
        _ = try ipam.run(.check, plugin: bridge.ipamType, environment: request.environment, config: ipamInput(request))
        let parsed = try CNIResult.ipamResult(prevResult)
        let plan = try BridgePlanner.plan(bridge, ipam: parsed)
        var problems = try network.problems(with: plan, netns: request.environment.netns, ifName: request.environment.ifName)
        if bridge.ipMasq {
            let config = try snat.pluginConfig(request)
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
        if let bridge = try BridgeConfig.parse(request.config.members) { return try standalone.add(request, bridge: bridge) }
        return try chained.add(request)
    }

    public func del(_ request: Request) throws {
        if let bridge = try BridgeConfig.parse(request.config.members) { return try standalone.del(request, bridge: bridge) }
        try chained.del(request)
    }

    public func check(_ request: Request) throws {
        if let bridge = try BridgeConfig.parse(request.config.members) { return try standalone.check(request, bridge: bridge) }
        try chained.check(request)
    }

    /// GC and STATUS are the SNAT's in both modes: Debian 12's IPAM plugins (1.1.1) predate GC and
    /// STATUS, so randsnat does not delegate them.
    public func gc(_ request: Request) throws {
        _ = try BridgeConfig.parse(request.config.members)
        try chained.gc(request)
    }

    public func status(_ request: Request) throws {
        _ = try BridgeConfig.parse(request.config.members)
        try chained.status(request)
    }
}
