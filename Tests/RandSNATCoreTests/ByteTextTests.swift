import CNI
import Testing
@testable import RandSNATCore

/// Addresses and plugin names are read as bytes, as inet_pton and execve read them.
struct ByteTextTests {
    /// Each is rejected by inet_pton(3): a hex group is one to four hex digits, with no sign.
    @Test(arguments: ["+1::", "-0::", "1::+f", "::-1", "fd00:+10::5", "+1:2:3:4:5:6:7:8", "1::+1.2.3.4", "::ffff:+1.2.3.4"])
    func signedGroupsAreNotAddresses(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func signedGroupInACIDRIsRejected() {
        #expect(CIDR("fd00:+10::5/64") == nil)
        #expect(PodAddress("fd00:+10::5/64") == nil)
        #expect(CIDR("fd00::5/+64") == nil)
    }

    @Test(arguments: ["1.2.3.4:\u{301}", "1.2.3.4\u{301}", "::1\u{301}", "1:\u{301}:2::", "1.2.3.4/2\u{301}4", "\u{301}1.2.3.4"])
    func combiningMarksAreNotPartOfAnAddress(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test(arguments: ["../\u{301}evil", "/\u{301}bin/sh", "a/\u{301}", "..", "."])
    func ipamTypeWithASlashByteIsRefused(type: String) {
        let error = #expect(throws: ConfigError.self) { try BridgeConfig.parse(["ipam": .object(["type": .string(type)])]) }
        #expect(error?.description.hasPrefix("ipam.type") == true, "\(error?.description ?? "")")
    }

    @Test func ipamTypeErrorShowsTheBytes() {
        let error = #expect(throws: ConfigError.self) { try BridgeConfig.parse(["ipam": .object(["type": .string("../\u{301}evil")])]) }
        #expect(error?.description.contains(#"../\xcc\x81evil"#) == true, "\(error?.description ?? "")")
    }

    /// A pod's interface named "\u{301}x" (the kernel takes any bytes but '/', ':' and spaces).
    static let markedIfName = "\u{301}x"

    @Test func ownerCommentSplitsAtSlashBytes() throws {
        let owner = try #require(Attachment.owner(fromComment: Attachment(network: "net", containerID: "c1", ifName: Self.markedIfName).comment(limit: 255),
                                                  network: "net"))
        #expect(owner.containerID == "c1" && Array(owner.ifName.utf8) == Array(Self.markedIfName.utf8))
    }

    static func request(_ verb: Verb, ifName: String, extra: String = "") -> Request {
        var text = #"{"cniVersion":"1.1.0","name":"net","type":"randsnat""# + extra
        if verb == .add {
            text += #","prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"\#(ifName)","sandbox":"/ns"}],"ips":[{"address":"198.18.0.2/24","interface":0}]}"#
        }
        text += "}"
        let env = try! Environment.parse(["CNI_COMMAND": verb.rawValue, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/ns", "CNI_IFNAME": ifName, "CNI_PATH": "/x"])
        return Request(environment: env, config: try! NetworkConfig.parse(Array(text.utf8)))
    }

    @Test func gcKeepsAValidPodWhoseInterfaceNameStartsWithAMark() throws {
        let backend = FakeBackend()
        let plugin = SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
        _ = try plugin.add(Self.request(.add, ifName: Self.markedIfName))
        try plugin.gc(Self.request(.gc, ifName: Self.markedIfName,
                                   extra: #","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"\#(Self.markedIfName)"}]"#))
        #expect(backend.installed.values.flatMap(\.members).count == 1)
    }

    @Test func delRemovesOnlyTheMemberWithTheSameBytes() throws {
        // Two interfaces of one container whose names are canonically equivalent: "K" and KELVIN SIGN.
        let backend = FakeBackend()
        let plugin = SNATPlugin(makeBackend: { _, _ in backend }, lock: NoLock(), log: { _ in }, pathExists: { _ in true })
        _ = try plugin.add(Self.request(.add, ifName: "\u{212A}"))
        try plugin.del(Self.request(.del, ifName: "K"))
        #expect(backend.installed.values.flatMap(\.members).map { Array($0.comment.utf8) } == [Array("net/c1/\u{212A}".utf8)])
    }
}
