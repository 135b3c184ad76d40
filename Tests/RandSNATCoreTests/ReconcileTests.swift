import CNI
import Testing
@testable import RandSNATCore

/// The agent's reconcile on the in-memory backend: flushed state comes back, a config change moves
/// running pods (new member first, flows kept), and nothing that no record backs is added.
struct ReconcileTests {
    let backend = FakeBackend()
    let nft = FakeBackend(kind: .nftables)
    let records = FakeRecords()
    var plugin: SNATPlugin {
        SNATPlugin(makeBackend: { [backend, nft] kind, _ in kind == .iptables ? backend : nft }, lock: NoLock(), log: { _ in },
                   pathExists: { _ in true }, records: records)
    }
    typealias R = SNATPluginTests
    let id = NetworkID(network: "net")

    func addThree(extra: String = "") throws {
        for index in 1...3 {
            _ = try plugin.add(R.request(.add, container: "c\(index)", ips: ["198.18.0.\(index + 1)/24"], extra: extra))
        }
    }

    static func config(_ json: String) -> [JSONKey: JSONValue] {
        try! JSONValue.parse(Array(json.utf8)).objectValue!
    }

    @Test func aConvergedNetworkIsLeftAlone() throws {
        try addThree()
        let memory = ReconcileMemory(notified: [])
        _ = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#), memory: memory)
        backend.calls = []
        backend.memberReads = 0
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#), memory: memory)
        #expect(report.repairs.isEmpty && report.problems.isEmpty && report.repairCounts.isEmpty && !report.failed)
        #expect(report.pods.values.reduce(0, +) == 3, "the pods in force are counted on an idle pass too")
        #expect(report.podsLackingRules == [.init(network: "net", family: .ipv4): 0])
        #expect(backend.calls == ["isInstalled"], "an idle pass only asks, once per generation and family")
        #expect(backend.memberReads == 0)
        backend.setReads = 0
        _ = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#), memory: memory)
        #expect(backend.setReads == 1, "the legacy backend (no notifications) lists the one member set, never every generation")
    }

    /// On nf_tables a count means listing the set: the running agent trusts what it verified until the
    /// loop hears of a deletion (forgetKernel); the legacy backend's counts are always read (cheap, and
    /// ipset sends no notifications).
    @Test func anIdleNFTablesPassListsNoSetOnceVerified() throws {
        let nftPlugin = SNATPlugin(makeBackend: { [nft] _, _ in nft }, lock: NoLock(), log: { _ in }, pathExists: { _ in true }, records: records)
        for index in 1...3 {
            _ = try nftPlugin.add(R.request(.add, container: "c\(index)", ips: ["198.18.0.\(index + 1)/24"], extra: #","backend":"nftables""#))
        }
        let desired = Self.config(#"{"name":"net","type":"randsnat","backend":"nftables"}"#)
        let memory = ReconcileMemory(notified: [.nftables])
        _ = nftPlugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(nft.setReads == 1, "the first pass lists the member set")
        nft.setReads = 0
        nft.memberReads = 0
        for _ in 1...3 {
            let report = nftPlugin.reconcile(network: "net", desired: desired, memory: memory)
            #expect(report.repairs.isEmpty && report.problems.isEmpty)
        }
        #expect(nft.setReads == 0 && nft.memberReads == 0, "idle passes list no set")
        // `nft delete element` of a pod's member: the loop hears a deletion and forgets.
        let names = nft.installed.keys.first!
        nft.installed[names]!.members.removeFirst()
        memory.forgetKernel()
        let report = nftPlugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(report.repairs.contains { $0.contains("added 1 pod member(s)") }, "\(report.repairs)")
        #expect(nft.installed[names]!.members.count == 3)
        // Without notifications (or for the legacy backend) every pass asks.
        let unnotified = ReconcileMemory(notified: [])
        nft.setReads = 0
        for _ in 1...2 { _ = nftPlugin.reconcile(network: "net", desired: desired, memory: unnotified) }
        #expect(nft.setReads == 2)
    }

    /// A DEL leaves its pod's subnet while the generation has other members; the agent takes out the
    /// subnets no member is in, and keeps those an unrecorded member (an older randsnat's pod) is in.
    @Test func subnetsNoPodIsInArePruned() throws {
        _ = try plugin.add(R.request(.add, container: "c1", ips: ["198.18.0.2/24"]))
        _ = try plugin.add(R.request(.add, container: "c2", ips: ["198.18.1.2/24"]))
        _ = try plugin.add(R.request(.add, container: "c3", ips: ["198.18.2.2/24"]))
        try plugin.del(R.request(.del, container: "c2", ips: nil))
        let names = backend.installed.keys.first!
        #expect(backend.installed[names]!.subnets.count == 3, "DEL leaves the subnet (its generation has members)")
        let desired = Self.config(#"{"name":"net","type":"randsnat"}"#)
        let memory = ReconcileMemory(notified: [])
        let report = plugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(report.repairs == ["network \"net\": removed subnet 198.18.1.0/24 from \(names.subnetSet), which no pod is in"])
        #expect(report.repairCounts == [ReconcileReport.RepairKind.subnetRemoved: 1])
        #expect(backend.installed[names]!.subnets.map(\.description).sorted() == ["198.18.0.0/24", "198.18.2.0/24"])
        backend.memberReads = 0
        _ = plugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(backend.memberReads == 0, "the subnets are checked again only when the network's pods changed")
        // c3's record gone (a pod of a randsnat that kept none): its member's subnet stays.
        records.stored.removeValue(forKey: RandSNATCore.Attachment(network: "net", containerID: "c3", ifName: "eth0"))
        _ = try plugin.add(R.request(.add, container: "c4", ips: ["198.18.3.2/24"]))
        try plugin.del(R.request(.del, container: "c1", ips: nil))
        let second = plugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(second.repairCounts == [ReconcileReport.RepairKind.subnetRemoved: 1], "\(second.repairs)")
        #expect(backend.installed[names]!.subnets.map(\.description).sorted() == ["198.18.2.0/24", "198.18.3.0/24"])
    }

    /// Looking for stray chains reads the whole nat table on legacy: the running agent does it in a
    /// network's first repairing pass and after forgetting, not in every move.
    @Test func straysAreLookedForOncePerMemory() throws {
        try addThree()
        let memory = ReconcileMemory(notified: [])
        let strays = { backend.calls.filter { $0.hasPrefix("removeStrays") }.count }
        for (index, range) in ["198.19.0.0/16", "198.20.0.0/16", "198.21.0.0/16"].enumerated() {
            if index == 2 { memory.forgetKernel() }
            backend.calls = []
            let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","nonMasqueradeCIDRs":["\#(range)"]}"#),
                                          memory: memory)
            #expect(report.repairCounts[ReconcileReport.RepairKind.generationRemoved] == 1, "\(report.repairs)")
            #expect(strays() == (index == 1 ? 0 : 1), "move \(index)")
        }
        #expect(backend.installed.count == 1)
    }

    @Test func aFlushIsRepaired() throws {
        try addThree()
        let before = backend.installed
        backend.installed = [:]  // nft flush ruleset / iptables -F and ipset destroy
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#))
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.repairs.count == 2, "\(report.repairs)")
        #expect(report.repairs.last?.contains("added 3 pod member(s)") == true)
        #expect(report.repairCounts == [ReconcileReport.RepairKind.rules: 1, ReconcileReport.RepairKind.member: 3])
        #expect(report.podsLackingRules == [.init(network: "net", family: .ipv4): 0])
        #expect(backend.installed == before)
    }

    @Test func statusSaysWhileRunningPodsLackTheirRules() throws {
        try addThree()
        try plugin.status(R.request(.status, ips: nil))
        let names = backend.installed.keys.first!
        backend.installed[names]!.members.removeLast()
        var failure = #expect(throws: PodsWithoutSNAT.self) { try plugin.status(R.request(.status, ips: nil)) }
        #expect(failure?.problems == ["network \"net\": \(names.memberSet) lacks 1 of its 3 running pod(s) (IPv4): 198.18.0.4"])
        backend.installed = [:]
        failure = #expect(throws: PodsWithoutSNAT.self) { try plugin.status(R.request(.status, ips: nil)) }
        #expect(failure?.problems.first?.contains("3 running pod(s) (IPv4) have no SNAT rules") == true)
        _ = plugin.reconcile(network: "net", desired: nil)
        try plugin.status(R.request(.status, ips: nil))
    }

    /// Issue 19's repro: one member no record backs plus one live pod's member gone keeps the count
    /// equal; compared by address, the pod's member comes back, and the stray is kept and reported
    /// while nobody can say whether its pod lives, removed (flows too) once the runtime's attachments
    /// say it does not.
    @Test func aStrayMemberDoesNotHideAMissingOne() throws {
        try addThree()
        let names = backend.installed.keys.first!
        backend.installed[names]!.members.removeAll { $0.address == IPAddress("198.18.0.3")! }
        backend.installed[names]!.members.append(InstalledMember(address: IPAddress("198.18.1.200")!, comment: "net/ghost/eth0"))
        let failure = #expect(throws: PodsWithoutSNAT.self) { try plugin.status(R.request(.status, ips: nil)) }
        #expect(failure?.problems == ["network \"net\": \(names.memberSet) lacks 1 of its 3 running pod(s) (IPv4): 198.18.0.3"])
        let desired = Self.config(#"{"name":"net","type":"randsnat"}"#)
        let memory = ReconcileMemory(notified: [.iptables])
        let unknown = plugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(unknown.repairCounts == [ReconcileReport.RepairKind.member: 1], "\(unknown.repairs)")
        #expect(unknown.repairs.first?.hasSuffix("that were missing: 198.18.0.3 (net/c2/eth0)") == true, "\(unknown.repairs)")
        #expect(unknown.problems.count == 1 && unknown.problems[0].contains("1 member(s) no record backs, kept because whether their pods live is unknown"),
                "\(unknown.problems)")
        #expect(unknown.problems.first?.contains("198.18.1.200 (\"net/ghost/eth0\")") == true)
        #expect(unknown.unbackedMembers == [.init(network: "net", family: .ipv4): 1])
        #expect(unknown.podsLackingRules == [.init(network: "net", family: .ipv4): 0])
        #expect(backend.installed[names]!.members.count == 4, "the stray stays: its pod may be live")
        try plugin.status(R.request(.status, ips: nil))
        // A set whose strays stay is read again in the next pass (the memory does not vouch for it).
        backend.setReads = 0
        _ = plugin.reconcile(network: "net", desired: desired, memory: memory)
        #expect(backend.setReads == 1)
        // The runtime's attachments: the ghost's owner is not among them, c1's is (a recorded pod).
        let live: Set<RandSNATCore.Attachment> = ["c1", "c2", "c3"].map { RandSNATCore.Attachment(network: "net", containerID: $0, ifName: "eth0") }
            .reduce(into: []) { $0.insert($1) }
        backend.calls = []
        let known = plugin.reconcile(network: "net", desired: desired, memory: memory, live: live)
        #expect(known.problems.isEmpty, "\(known.problems)")
        #expect(known.repairCounts == [ReconcileReport.RepairKind.strayMember: 1], "\(known.repairs)")
        #expect(known.repairs.first == "network \"net\": removed 1 member(s) of \(names.memberSet) that no record backs: 198.18.1.200 (\"net/ghost/eth0\": no live pod owns it)")
        #expect(backend.calls.contains("remove 198.18.1.200"), "removed as GC removes it, flows too: \(backend.calls)")
        #expect(known.unbackedMembers == [.init(network: "net", family: .ipv4): 0])
        #expect(Set(backend.installed[names]!.members.map(\.comment)) == ["net/c1/eth0", "net/c2/eth0", "net/c3/eth0"])
        // A stray whose owner lives (a pod whose record is lost) stays. (An addition sends no deletion
        // notification: the loop's periodic full check finds it.)
        backend.installed[names]!.members.append(InstalledMember(address: IPAddress("198.18.0.9")!, comment: "net/c9/eth0"))
        memory.forgetKernel()
        let liveNine = plugin.reconcile(network: "net", desired: desired, memory: memory,
                                        live: live.union([RandSNATCore.Attachment(network: "net", containerID: "c9", ifName: "eth0")]))
        #expect(liveNine.problems.first?.contains("their pods are live but have no record") == true, "\(liveNine.problems)")
        #expect(backend.installed[names]!.members.count == 4)
    }

    /// A member whose owner has a record naming other addresses (an ADD of the same attachment with a
    /// new address, before ADD replaced the old one) is stale whatever the runtime says.
    @Test func aMemberItsOwnersRecordNoLongerNamesGoes() throws {
        try addThree()
        let names = backend.installed.keys.first!
        backend.installed[names]!.members.append(InstalledMember(address: IPAddress("198.18.0.20")!, comment: "net/c1/eth0"))
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#))
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.repairs.first?.contains("198.18.0.20 (\"net/c1/eth0\": its owner's record names other addresses)") == true, "\(report.repairs)")
        #expect(backend.installed[names]!.members.count == 3)
    }

    /// The metric and the pass's outcome count recorded addresses that are not members after the
    /// repair, not a count difference.
    @Test func podsLackingRulesCountsMissingAddresses() throws {
        try addThree()
        let names = backend.installed.keys.first!
        backend.installed[names]!.members.removeAll { $0.address == IPAddress("198.18.0.2")! }
        backend.installed[names]!.members.append(InstalledMember(address: IPAddress("198.18.1.200")!, comment: "net/ghost/eth0"))
        backend.droppedAdds = [IPAddress("198.18.0.2")!]
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat"}"#))
        #expect(report.podsLackingRules == [.init(network: "net", family: .ipv4): 1], "\(report.problems)")
        #expect(report.problems.contains("network \"net\": \(names.memberSet) lacks 1 recorded pod address(es): 198.18.0.2"), "\(report.problems)")
    }

    /// The agent's pass asks for the runtime's attachments once and hands them to every network.
    @Test func anAgentPassHandsTheLiveAttachmentsDown() throws {
        try addThree()
        let names = backend.installed.keys.first!
        backend.installed[names]!.members.append(InstalledMember(address: IPAddress("198.18.1.200")!, comment: "net/ghost/eth0"))
        let unknown = AgentPass(plugin: plugin, records: records).run(configFiles: nil)
        #expect(unknown.unbackedMembers.values.reduce(0, +) == 1)
        #expect(backend.installed[names]!.members.count == 4)
        var asked = 0
        let pass = AgentPass(plugin: plugin, records: records, liveAttachments: {
            asked += 1
            return Set(records.stored.keys)
        })
        let known = pass.run(configFiles: nil)
        #expect(asked == 1)
        #expect(known.repairCounts[ReconcileReport.RepairKind.strayMember] == 1, "\(known.repairs)")
        #expect(backend.installed[names]!.members.count == 3)
    }

    @Test func withoutAConfigOnTheNodeTheRecordsConfigIsKept() throws {
        try addThree(extra: #","nonMasqueradeCIDRs":["198.19.0.0/16"]"#)
        let before = backend.installed
        backend.installed = [:]
        let report = plugin.reconcile(network: "net", desired: nil)
        #expect(report.problems.isEmpty)
        #expect(backend.installed == before)
    }

    @Test func aConfigChangeMovesRunningPodsNewFirstKeepingFlows() throws {
        try addThree()
        let old = backend.installed.keys.first!
        backend.calls = []
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","nonMasqueradeCIDRs":["198.19.0.0/16"]}"#))
        #expect(report.problems.isEmpty, "\(report.problems)")
        let new = Planner.family(.ipv4, network: "net", config: try PluginConfig.parse(Self.config(#"{"nonMasqueradeCIDRs":["198.19.0.0/16"]}"#)).config).names
        #expect(Array(backend.installed.keys) == [new])
        #expect(Set(backend.installed[new]!.members.map(\.comment)) == ["net/c1/eth0", "net/c2/eth0", "net/c3/eth0"])
        let firstOut = backend.calls.firstIndex { $0.hasPrefix("move out") }!
        #expect(backend.calls.prefix(firstOut).filter { $0.hasPrefix("add ") }.count == 3, "every new member before any old one goes: \(backend.calls)")
        #expect(!backend.calls.contains { $0.hasPrefix("remove 198") }, "no flow is forgotten")
        #expect(backend.calls.contains("uninstall ipv4"))
        #expect(Set(records.stored.values.map(\.generation)) == [new.generation])
        // Without the config on the node, the records' (moved) config is kept: nothing moves back.
        backend.calls = []
        let kept = plugin.reconcile(network: "net", desired: nil)
        #expect(kept.repairs.isEmpty && kept.problems.isEmpty)
        #expect(kept.pods == [.init(network: "net", family: .ipv4, backend: backend.kind.rawValue, generation: new.generation): 3])
        #expect(Array(backend.installed.keys) == [new])
        #expect(old != new)
    }

    @Test func midMoveEveryPodIsInBothGenerations() throws {
        try addThree()
        var seen: [[String]] = []
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","portRange":"40000-40999"}"#)) {
            seen = backend.installed.values.map { $0.members.map(\.comment).sorted() }
        }
        #expect(report.problems.isEmpty)
        #expect(seen.count == 2 && seen.allSatisfy { $0 == ["net/c1/eth0", "net/c2/eth0", "net/c3/eth0"] }, "\(seen)")
        #expect(backend.installed.count == 1)
    }

    @Test func membersNoRecordBacksAreLeftToGC() throws {
        try addThree()
        records.stored.removeValue(forKey: RandSNATCore.Attachment(network: "net", containerID: "c3", ifName: "eth0"))
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","nonMasqueradeCIDRs":["198.19.0.0/16"]}"#))
        #expect(report.problems.first?.contains("1 member(s) no record backs") == true, "\(report.problems)")
        let members = backend.installed.values.flatMap(\.members).map(\.comment)
        #expect(members.filter { $0 == "net/c3/eth0" }.count == 1, "c3 keeps its member in the old generation")
    }

    @Test func aNetworkWhoseStateIsElsewhereMovesToTheConfiguredBackend() throws {
        try addThree()
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","backend":"nftables"}"#))
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(backend.installed.isEmpty)
        #expect(nft.installed.values.flatMap(\.members).count == 3)
        #expect(Set(records.stored.values.map(\.backend)) == [.nftables])
    }

    @Test func aRefusedConfigChangesNothing() throws {
        try addThree()
        let before = backend.installed
        let report = plugin.reconcile(network: "net", desired: Self.config(#"{"name":"net","type":"randsnat","nonMasqueradeCIDRs":["bad"]}"#))
        #expect(report.problems.first?.contains("refused") == true)
        #expect(backend.installed == before)
    }

    @Test func nodeConfigsTakeTheFirstFileOfANetwork() {
        let configs = NodeConfigs.parse([
            ("20-b.conflist", Array(#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge"},{"type":"randsnat","portRange":"1-2"}]}"#.utf8)),
            ("10-a.conflist", Array(#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge"},{"type":"randsnat"}]}"#.utf8)),
            ("30-c.conf", Array(#"{"cniVersion":"1.0.0","name":"other","type":"randsnat","toSource":"203.0.113.5"}"#.utf8)),
            ("40-bad.conf", Array("{".utf8)),
        ])
        #expect(configs.networks["net"] == ["type": .string("randsnat"), "name": .string("net"), "cniVersion": .string("1.0.0")])
        #expect(configs.networks["other"]?["toSource"] == .string("203.0.113.5"))
        #expect(configs.problems == ["40-bad.conf is not a JSON object; it is ignored"])
    }

    /// What `randsnat_config_last_reload_successful{source="net.d"}` reads: a file that is no config, an
    /// entry that does not parse; nothing when net.d is taken whole.
    @Test func nodeConfigsRefusals() {
        let good = ("10-a.conflist", Array(#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge"},{"type":"randsnat"}]}"#.utf8))
        #expect(NodeConfigs.parse([good]).refusals.isEmpty)
        let refusals = NodeConfigs.parse([good, ("20-b.conf", Array("{".utf8)),
                                          ("30-c.conf", Array(#"{"cniVersion":"1.0.0","name":"other","type":"randsnat","portRange":"9-8"}"#.utf8))]).refusals
        #expect(refusals.count == 2)
        #expect(refusals.first == "20-b.conf is not a JSON object; it is ignored")
        #expect(refusals.last?.hasPrefix("network \"other\": its randsnat entry in net.d is refused") == true)
    }
}
