import CNI
import Testing
@testable import RandSNATCore

/// The owner comment on a pod's set member: one type renders it per backend limit and recognises it,
/// including what earlier releases wrote (issue 10 §1: long network names on nf_tables).
struct OwnerCommentTests {
    static let longNetwork = String(repeating: "n", count: 128)
    static let hexID = String(repeating: "0123456789abcdef", count: 4)
    static let otherHexID = String(repeating: "fedcba9876543210", count: 4)

    @Test func fullFormWhenItFitsCompactWhenNotDigestLast() {
        let short = Attachment(network: "pods", containerID: "c1", ifName: "eth0")
        #expect(short.comment(limit: 127) == "pods/c1/eth0")
        #expect(short.comment(limit: 255) == "pods/c1/eth0", "what every release so far writes")
        let long = Attachment(network: Self.longNetwork, containerID: Self.hexID, ifName: "eth0")
        #expect(long.comment(limit: 255) == "\(Self.longNetwork)/\(Self.hexID)/eth0")
        #expect(long.comment(limit: 127) == "\(Self.hexID)/eth0")
        let huge = Attachment(network: "pods", containerID: String(repeating: "a", count: 200), ifName: "eth0")
        let digest = huge.comment(limit: 127)
        #expect(digest.hasPrefix("#") && digest.utf8.count == 41)
        #expect(digest != Attachment(network: "pods", containerID: String(repeating: "a", count: 199), ifName: "eth0").comment(limit: 127))
    }

    @Test(arguments: [127, 255])
    func everyRenderingFitsAndClaimsItself(limit: Int) {
        for network in ["pods", Self.longNetwork] {
            for id in ["c1", Self.hexID, String(repeating: "b", count: 300)] {
                let owner = Attachment(network: network, containerID: id, ifName: "eth0")
                let comment = owner.comment(limit: limit)
                #expect(comment.utf8.count <= limit)
                #expect(owner.claim(comment, limit: limit) == .exact)
                let other = Attachment(network: network, containerID: id + "x", ifName: "eth0")
                #expect(other.claim(comment, limit: limit) == nil)
                #expect(Attachment(network: network, containerID: id, ifName: "eth1").claim(comment, limit: limit) == nil)
            }
        }
    }

    @Test func earlierReleasesCutCommentsAreStillClaimed() {
        let a = Attachment(network: Self.longNetwork, containerID: Self.hexID, ifName: "eth0")
        let b = Attachment(network: Self.longNetwork, containerID: Self.otherHexID, ifName: "eth0")
        // 128-byte network: the cut at 127 leaves no container ID at all; both pods wrote the same text.
        let old = Attachment.clip("\(Self.longNetwork)/\(Self.hexID)/eth0", to: 127)
        #expect(a.claim(old, limit: 127) == .ambiguous)
        #expect(b.claim(old, limit: 127) == .ambiguous)
        // A network of 40 bytes: the cut keeps the whole container ID and part of the ifname: exact.
        let mid = Attachment(network: String(repeating: "m", count: 40), containerID: Self.hexID, ifName: "eth0")
        let cut = Attachment.clip("\(mid.network)/\(Self.hexID)/eth0", to: 107)
        #expect(cut.utf8.count == 107)
        #expect(mid.claim(cut, limit: 107) == .exact)
        #expect(Attachment(network: mid.network, containerID: Self.otherHexID, ifName: "eth0").claim(cut, limit: 107) == nil)
    }

    @Test func anAmbiguousMemberIsOwnedOnlyAtThePodsAddress() {
        let a = Attachment(network: Self.longNetwork, containerID: Self.hexID, ifName: "eth0")
        let old = Attachment.clip(a.description, to: 127)
        let member = InstalledMember(address: IPAddress("198.18.0.7")!, comment: old)
        #expect(a.owns(member, of: [IPAddress("198.18.0.7")!], limit: 127))
        #expect(!a.owns(member, of: [IPAddress("198.18.0.8")!], limit: 127))
        #expect(!a.owns(member, of: [], limit: 127))
    }

    @Test func commentsParseBackOnlyWhenWhole() {
        let owner = Attachment(network: "pods", containerID: "c1", ifName: "eth0")
        #expect(Attachment.owner(fromComment: "pods/c1/eth0", network: "pods") == owner)
        #expect(Attachment.owner(fromComment: "c1/eth0", network: "pods") == owner)
        #expect(Attachment.owner(fromComment: "other/c1/eth0", network: "pods") == nil, "another network's full form")
        #expect(Attachment.owner(fromComment: "#0123", network: "pods") == nil)
        #expect(Attachment.owner(fromComment: "pods/c1/", network: "pods") == nil, "an ifname cut away")
        #expect(Attachment.owner(fromComment: "randsnat: pod subnet", network: "pods") == nil)
    }

    @Test func movingToASmallerLimitRewritesTheForm() {
        let full = "\(Self.longNetwork)/\(Self.hexID)/eth0"
        #expect(Attachment.recomment(full, network: Self.longNetwork, limit: 127) == "\(Self.hexID)/eth0")
        #expect(Attachment.recomment("\(Self.hexID)/eth0", network: Self.longNetwork, limit: 255) == full)
        #expect(Attachment.recomment(String(repeating: "z", count: 200), network: "pods", limit: 127).utf8.count == 127)
    }

    @Test func clipCutsOnScalarBoundaries() {
        #expect(Attachment.clip("ab\u{e9}", to: 3) == "ab", "é is two bytes: it does not fit in the third")
        #expect(Attachment.clip("abc", to: 3) == "abc")
    }
}

/// The plugin on a backend with nf_tables' 127-byte comments and the longest network name randsnat
/// accepts: ADD, CHECK, GC keeping both pods, DEL of each.
struct LongNetworkNameTests {
    let nft = FakeBackend(kind: .nftables)
    var plugin: SNATPlugin {
        SNATPlugin(makeBackend: { [nft] kind, _ in
            if kind == .iptables { let unreadable = FakeBackend(); unreadable.unreadable = true; return unreadable }
            return nft
        }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
    }
    static let network = OwnerCommentTests.longNetwork

    static func request(_ verb: Verb, container: String, ip: String?, extra: String = "") -> Request {
        var text = #"{"cniVersion":"1.1.0","name":"\#(network)","type":"randsnat","backend":"nftables""# + extra
        if let ip {
            text += #","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],"ips":[{"address":"\#(ip)","interface":0}]}"#
        }
        text += "}"
        let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": container, "CNI_NETNS": "/ns",
                                          "CNI_IFNAME": "eth0", "CNI_PATH": "/x"])
        return Request(environment: env, config: try! NetworkConfig.parse(Array(text.utf8)))
    }

    var members: [InstalledMember] { (try? nft.generations(of: NetworkID(network: Self.network)))?.flatMap(\.members) ?? [] }

    @Test func addCheckGCAndDelFindEveryPod() throws {
        let (a, b) = (OwnerCommentTests.hexID, OwnerCommentTests.otherHexID)
        _ = try plugin.add(Self.request(.add, container: a, ip: "198.18.0.2/24"))
        _ = try plugin.add(Self.request(.add, container: b, ip: "198.18.0.3/24"))
        #expect(members.allSatisfy { $0.comment.utf8.count <= 127 })
        try plugin.check(Self.request(.check, container: a, ip: "198.18.0.2/24"))
        try plugin.check(Self.request(.check, container: b, ip: "198.18.0.3/24"))
        let valid = #","cni.dev/valid-attachments":[{"containerID":"\#(a)","ifname":"eth0"},{"containerID":"\#(b)","ifname":"eth0"}]"#
        try plugin.gc(Self.request(.gc, container: "", ip: nil, extra: valid))
        #expect(members.count == 2, "GC keeps both live pods")
        try plugin.del(Self.request(.del, container: a, ip: nil))
        #expect(members.map(\.address) == [IPAddress("198.18.0.3")!])
        try plugin.del(Self.request(.del, container: b, ip: nil))
        #expect(members.isEmpty)
        #expect(nft.installed.isEmpty)
    }

    @Test func membersTheEarlierReleaseWroteAreFound() throws {
        let (a, b) = (OwnerCommentTests.hexID, OwnerCommentTests.otherHexID)
        _ = try plugin.add(Self.request(.add, container: a, ip: "198.18.0.2/24"))
        _ = try plugin.add(Self.request(.add, container: b, ip: "198.18.0.3/24"))
        // What the earlier release left: the full form cut to 127 bytes (the same text for both pods).
        let old = Attachment.clip("\(Self.network)/\(a)/eth0", to: 127)
        for names in nft.installed.keys {
            nft.installed[names]!.members = nft.installed[names]!.members.map { InstalledMember(address: $0.address, comment: old) }
        }
        try plugin.check(Self.request(.check, container: a, ip: "198.18.0.2/24"))
        let valid = #","cni.dev/valid-attachments":[{"containerID":"\#(a)","ifname":"eth0"},{"containerID":"\#(b)","ifname":"eth0"}]"#
        try plugin.gc(Self.request(.gc, container: "", ip: nil, extra: valid))
        #expect(members.count == 2, "GC keeps both")
        // DEL with the cached result (libcni passes it): only the pod's own address goes.
        try plugin.del(Self.request(.del, container: a, ip: "198.18.0.2/24"))
        #expect(members.map(\.address) == [IPAddress("198.18.0.3")!], "pod b's member stays")
        try plugin.del(Self.request(.del, container: b, ip: "198.18.0.3/24"))
        #expect(members.isEmpty)
    }
}
