import Testing
@testable import Installer

/// The installer's exit status follows from the kind of refusal, not from its wording.
struct InstallerOutcomeTests {
    final class Log: @unchecked Sendable { var lines: [String] = [] }

    static let rows: [(reason: Refusal.Reason, text: String, status: Installer.Status, logged: String)] = [
        (.noNetworkConfig, "net.d is empty", .noConfig, "randsnat install: net.d is empty"),
        (.conflict, "10-x.conflist is not JSON", .refused, "randsnat install: refused: 10-x.conflist is not JSON"),
        // The wording alone decides nothing: a conflict that happens to start with the other's words.
        (.conflict, "no network config is chained", .refused, "randsnat install: refused: no network config is chained"),
        (.noNetworkConfig, "nothing to chain yet", .noConfig, "randsnat install: nothing to chain yet"),
    ]

    @Test(arguments: rows.indices)
    func statusFollowsTheReason(row: Int) {
        let (reason, text, status, logged) = Self.rows[row]
        let log = Log()
        let installer = Installer(options: Installer.Options(), files: HostFiles(), log: { log.lines.append($0) })
        #expect(installer.outcome(of: Refusal(reason, description: text)) == status)
        #expect(log.lines == [logged])
    }

    @Test func anEmptyNetDIsNoNetworkConfigAndABrokenOneIsAConflict() {
        let empty = #expect(throws: Refusal.self) { try ChainPlanner.plan([], settings: [:], fixMasquerade: false) }
        #expect(empty?.reason == .noNetworkConfig)
        let broken = #expect(throws: Refusal.self) {
            try ChainPlanner.plan([ConfigFile(name: "10-x.conflist", bytes: Array("{".utf8))], settings: [:], fixMasquerade: false)
        }
        #expect(broken?.reason == .conflict)
    }
}
