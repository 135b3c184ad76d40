import CNI
import RandSNATCore
import Testing
@testable import Installer

struct ChainPlannerTests {
    static func file(_ name: String, _ text: String) -> ConfigFile { ConfigFile(name: name, bytes: Array(text.utf8)) }
    static let bridge = file("10-bridge.conflist", #"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipMasq":false,"ipam":{"type":"host-local"}}]}"#)

    func plugins(_ plan: ChainPlan?) throws -> [JSONValue] {
        let bytes = try #require(plan).bytes
        return try #require(try JSONValue.parse(bytes)["plugins"]?.arrayValue)
    }

    @Test func appendsRandsnatWithTheSettings() throws {
        let plan = try ChainPlanner.plan([Self.bridge], settings: ["nonMasqueradeCIDRs": .array([.string("10.0.0.0/8")])], fixMasquerade: false)
        #expect(plan?.target == "10-bridge.conflist")
        #expect(plan?.backupName == "10-bridge.conflist.randsnat-backup")
        #expect(plan?.original == Self.bridge)
        let chain = try plugins(plan)
        #expect(chain.map { $0["type"]?.stringValue ?? "" } == ["bridge", "randsnat"])
        #expect(chain[1]["nonMasqueradeCIDRs"] == .array([.string("10.0.0.0/8")]))
    }

    @Test func picksTheLexicallyFirstLoadableFile() throws {
        let files = [Self.file("20-other.conflist", "{}"), Self.bridge, Self.file("05-notes.txt", "x"), Self.file(".00-hidden.conf", "x"),
                     Self.file("00-old.conflist.randsnat-backup", "x")]
        #expect(ChainPlan.primary(of: files)?.name == "10-bridge.conflist")
    }

    @Test func aConfBecomesAConflist() throws {
        let conf = Self.file("10-flannel.conf", #"{"cniVersion":"0.3.1","name":"cbr0","type":"flannel","delegate":{"ipMasq":false}}"#)
        let plan = try #require(try ChainPlanner.plan([conf], settings: [:], fixMasquerade: false))
        #expect(plan.target == "10-flannel.conflist" && plan.remove == ["10-flannel.conf"])
        let document = try JSONValue.parse(plan.bytes)
        #expect(document["name"] == .string("cbr0") && document["cniVersion"] == .string("0.3.1"))
        #expect(try plugins(plan).map { $0["type"]?.stringValue ?? "" } == ["flannel", "randsnat"])
        // A second run finds the conflist it wrote and the .conf's backup: same bytes, same original.
        let again = try #require(try ChainPlanner.plan([Self.file(plan.target, String(decoding: plan.bytes, as: UTF8.self)),
                                                      ConfigFile(name: plan.backupName, bytes: conf.bytes)], settings: [:], fixMasquerade: false))
        #expect(again.bytes == plan.bytes && again.original == conf && again.remove.isEmpty)
    }

    @Test func anAlreadyChainedConfigIsUpdatedNotDuplicated() throws {
        let first = try #require(try ChainPlanner.plan([Self.bridge], settings: [:], fixMasquerade: false))
        let chained = Self.file(Self.bridge.name, String(decoding: first.bytes, as: UTF8.self))
        let second = try ChainPlanner.plan([chained, ConfigFile(name: first.backupName, bytes: Self.bridge.bytes)],
                                           settings: ["masqLinkLocal": .bool(true)], fixMasquerade: false)
        #expect(try plugins(second).filter { $0["type"]?.stringValue == "randsnat" }.count == 1)
        #expect(second?.original == Self.bridge)
    }

    @Test func aMasqueradingPrimaryIsRefusedOrFixed() throws {
        let masq = Self.file("10-bridge.conflist", #"{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"bridge","ipMasq":true}]}"#)
        #expect(throws: Refusal.self) { try ChainPlanner.plan([masq], settings: [:], fixMasquerade: false) }
        let fixed = try ChainPlanner.plan([masq], settings: [:], fixMasquerade: true)
        #expect(try plugins(fixed)[0]["ipMasq"] == .bool(false))
        let flannel = Self.file("10-flannel.conflist", #"{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"flannel","delegate":{"ipMasq":true}}]}"#)
        #expect(throws: Refusal.self) { try ChainPlanner.plan([flannel], settings: [:], fixMasquerade: false) }
        #expect(try plugins(ChainPlanner.plan([flannel], settings: [:], fixMasquerade: true))[0]["delegate"]?["ipMasq"] == .bool(false))
    }

    @Test(arguments: [("10-x.conflist", "{not json"), ("10-x.conflist", "[]"), ("10-x.conflist", #"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"bridge"}]}"#),
                      ("10-x.conflist", #"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#), ("10-x.conf", #"{"cniVersion":"1.0.0","name":"n"}"#)])
    func refusesWhatItCannotUnderstand(name: String, text: String) {
        #expect(throws: Refusal.self) { try ChainPlanner.plan([Self.file(name, text)], settings: [:], fixMasquerade: false) }
    }

    @Test func noConfigIsRefusedAndStandaloneRandsnatNeedsNothing() throws {
        #expect(throws: Refusal.self) { try ChainPlanner.plan([], settings: [:], fixMasquerade: false) }
        let standalone = Self.file("10-pods.conflist", #"{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"randsnat","ipam":{"type":"host-local"}}]}"#)
        #expect(try ChainPlanner.plan([standalone], settings: [:], fixMasquerade: false) == nil)
    }

    @Test func settingsAreCheckedAsRandsnatChecksThem() throws {
        let (settings, warnings) = try ChainPlanner.settings(Array(#"{"nonMasqueradeCIDRs":["10.0.0.0/8"],"type":"x","nonMasq":1}"#.utf8))
        #expect(settings["type"] == nil && settings["nonMasqueradeCIDRs"] != nil)
        #expect(warnings.count == 1)
        #expect(throws: Refusal.self) { try ChainPlanner.settings(Array(#"{"nonMasqueradeCIDRs":["10.0.0.0/99"]}"#.utf8)) }
        #expect(throws: Refusal.self) { try ChainPlanner.settings(Array("[]".utf8)) }
    }

    @Test func parsesTheCommandLine() throws {
        #expect(try Installer.parse(["--host-root", "/host", "--watch", "--uninstall-on-exit"]).uninstallOnExit == true)
        #expect(throws: UsageError("--uninstall cannot be used with --watch or --check")) { try Installer.parse(["--uninstall", "--watch"]) }
        #expect(throws: UsageError("--uninstall-on-exit needs --watch")) { try Installer.parse(["--uninstall-on-exit"]) }
        #expect(throws: UsageError.unknown("--bogus", accepted: Installer.optionForms)) { try Installer.parse(["--bogus"]) }
        #expect(throws: UsageError.missingValue("--config", form: "--config FILE")) { try Installer.parse(["--config"]) }
        #expect(try Installer.parse([]).hostRoot == "/")
    }
}
