import CNI
@testable import RandSNATCore

// Fakes of the kernel-facing protocols, shared by the unit tests and the fuzz targets (Tests/fuzz/run.sh
// compiles this file too, so it imports no test framework).

/// An in-memory NATBackend: sets and "rules" as dictionaries, every call recorded.
final class FakeBackend: NATBackend, MemberSteps {
    let kind: BackendKind
    var commentLimit: Int { kind == .nftables ? 127 : 255 }
    /// What `nodeNetfilter` reports.
    var node: BackendKind = .iptables
    /// A backend the kernel cannot serve (no ipset, no nf_tables): every read fails.
    var unreadable = false
    init(kind: BackendKind = .iptables) { self.kind = kind }
    struct State: Equatable { var members: [InstalledMember] = []; var subnets: [CIDR] = [] }
    var installed: [ObjectNames: State] = [:]
    var calls: [String] = []
    var failOn: String?

    func record(_ call: String) throws {
        calls.append(call)
        if let failOn, call.hasPrefix(failOn) { throw CNIError(.internal, "injected failure at \(call)") }
    }

    func isInstalled(_ plan: FamilyPlan) throws -> Bool { try record("isInstalled"); return installed[plan.names] != nil }
    func install(_ plan: FamilyPlan) throws { try record("install \(plan.family)"); installed[plan.names] = installed[plan.names] ?? State() }
    func uninstall(_ names: ObjectNames) throws { try record("uninstall \(names.family)"); installed[names] = nil }
    /// Addresses whose adds the "kernel" acknowledges but does not keep (a repair that did not take).
    var droppedAdds: Set<IPAddress> = []
    func add(_ member: PodPlan.Member, comment: String) throws {
        try record("add \(member.address.address)")
        if droppedAdds.contains(member.address.address) { return }
        installed[member.names]!.members.removeAll { $0.address == member.address.address }
        // As the kernel keeps it: cut to the backend's limit.
        installed[member.names]!.members.append(InstalledMember(address: member.address.address, comment: Attachment.clip(comment, to: commentLimit)))
    }
    func add(subnet: CIDR, to names: ObjectNames) throws {
        try record("addSubnet \(subnet)")
        if !installed[names]!.subnets.contains(subnet) { installed[names]!.subnets.append(subnet) }
    }
    func remove(_ member: InstalledMember, from names: ObjectNames) throws {
        try record("remove \(member.address)")
        installed[names]?.members.removeAll { $0.address == member.address }
    }
    func removeKeepingFlows(_ member: InstalledMember, from names: ObjectNames) throws {
        try record("move out \(member.address)")
        installed[names]?.members.removeAll { $0.address == member.address }
    }
    func remove(subnet: CIDR, from names: ObjectNames) throws {
        try record("removeSubnet \(subnet)")
        installed[names]?.subnets.removeAll { $0 == subnet }
    }
    /// How many times every member of the network was read (the per-pod path must not).
    var memberReads = 0
    func generations(of id: NetworkID) throws -> [InstalledGeneration] {
        if unreadable { throw CNIError(.internal, "\(kind) cannot be read") }
        memberReads += 1
        return installed.filter { $0.key.chain.hasPrefix(id.namePrefix) }.sorted { $0.key.family < $1.key.family }
            .map { InstalledGeneration(names: $0.key, members: $0.value.members, subnets: $0.value.subnets) }
    }
    func generationNames(of id: NetworkID) throws -> [ObjectNames] {
        if unreadable { throw CNIError(.internal, "\(kind) cannot be read") }
        return installed.keys.filter { $0.chain.hasPrefix(id.namePrefix) }.sorted { $0.family < $1.family }
    }
    /// How many member counts were asked (on nf_tables each lists a set's elements).
    var countReads = 0
    func memberCount(of names: ObjectNames, in id: NetworkID) throws -> Int? { countReads += 1; return installed[names]?.members.count }
    /// How many times one member set was listed (on nf_tables an element dump of that set).
    var setReads = 0
    func members(of names: ObjectNames, in id: NetworkID) throws -> [InstalledMember]? {
        if unreadable { throw CNIError(.internal, "\(kind) cannot be read") }
        setReads += 1
        return installed[names]?.members
    }
    func removeStrays(of id: NetworkID, keep: Set<ObjectNames>) throws {
        try record("removeStrays \(keep.count)")
        for names in installed.keys where names.chain.hasPrefix(id.namePrefix) && !keep.contains(names) { installed[names] = nil }
    }
    func problems(with plan: FamilyPlan) throws -> [String] { installed[plan.names] == nil ? ["chain missing"] : [] }
    func status() throws -> NodeReport { NodeReport() }
    func nodeNetfilter() throws -> BackendKind { node }
}

struct NoLock: NetworkLock {
    func withLock<T>(_ id: NetworkID, timeoutSeconds: Double, _ body: () throws -> T) throws -> T { try body() }
}

/// Records what the standalone plugin asks of the pod network and the IPAM plugin.
final class FakePodNetwork: PodNetwork {
    var calls: [String] = []
    var failAttach = false
    var linkPlans: [LinkPlan] = []
    var plans: [BridgePlan] = []
    func createLinks(_ plan: LinkPlan, netns: String, ifName: String) throws -> CreatedLinks {
        calls.append("create \(plan.bridge)")
        linkPlans.append(plan)
        return CreatedLinks(bridgeIndex: 1, hostVeth: "veth0", netns: netns, ifName: ifName)
    }
    func configure(_ links: CreatedLinks, plan: BridgePlan) throws -> AttachedPod {
        calls.append("configure")
        plans.append(plan)
        if failAttach { throw CNIError(.internal, "injected") }
        return AttachedPod(bridge: ResultInterface(name: plan.bridge, mac: "aa", sandbox: nil),
                           hostVeth: ResultInterface(name: links.hostVeth, mac: "bb", sandbox: nil),
                           pod: ResultInterface(name: links.ifName, mac: "cc", sandbox: links.netns))
    }
    func remove(_ links: CreatedLinks) throws { calls.append("remove") }
    func detach(netns: String, ifName: String, meanwhile: () throws -> Void) throws {
        calls.append("detach")
        try meanwhile()
    }
    func problems(with plan: BridgePlan, netns: String, ifName: String) throws -> [String] {
        calls.append("problems")
        plans.append(plan)
        return []
    }
}

final class FakeIPAM: IPAMRunner {
    struct Done: RunningIPAM {
        let answer: Result<JSONValue?, CNIError>
        func wait() throws -> JSONValue? { try answer.get() }
    }
    var calls: [Verb] = []
    /// The stdin each verb got.
    var inputs: [Verb: [UInt8]] = [:]
    /// The error a verb answers with.
    var failures: [Verb: CNIError] = [:]
    /// What VERSION lists.
    var supportedVersions = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    /// Called when a verb starts (to see the order against the pod network's calls).
    var onStart: (Verb) -> Void = { _ in }
    func start(_ verb: Verb, plugin: String, environment: Environment, config: [UInt8]) throws -> any RunningIPAM {
        calls.append(verb)
        onStart(verb)
        inputs[verb] = config
        if let failure = failures[verb] { return Done(answer: .failure(failure)) }
        switch verb {
        case .add:
            return Done(answer: .success(try JSONValue.parse(Array(#"{"cniVersion":"1.0.0","ips":[{"address":"198.18.0.9/24","gateway":"198.18.0.1"}],"dns":{"nameservers":["10.96.0.10"]}}"#.utf8))))
        case .version:
            return Done(answer: .success(.object(["cniVersion": .string("1.0.0"), "supportedVersions": .array(supportedVersions.map { .string($0) })])))
        default:
            return Done(answer: .success(nil))
        }
    }
}
