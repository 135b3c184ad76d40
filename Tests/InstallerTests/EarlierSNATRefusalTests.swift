import CNI
import RandSNATCore
import Testing
@testable import Installer

/// The installer's use of the shadowing check, with a fake check: refuse on a certain earlier SNAT
/// (naming the setting and the flag), go on with `--allow-earlier-snat` or for a "may" rule, warning.
struct EarlierSNATRefusalTests {
    final class Log: @unchecked Sendable { var lines: [String] = [] }

    static func shadow(certain: Bool) -> EarlierSNAT {
        EarlierSNAT(source: "iptables-legacy", table: "nat", chain: "AWS-SNAT-CHAIN-0", position: 1,
                    rules: ["-A POSTROUTING -j AWS-SNAT-CHAIN-0", "-A AWS-SNAT-CHAIN-0 -j SNAT --to-source 198.19.0.1"],
                    certain: certain, primary: certain ? .awsVPCCNI : nil)
    }

    func installer(_ found: [EarlierSNAT], allow: Bool = false, unreadable: [String] = [], log: Log, asked: Log) -> Installer {
        var options = Installer.Options()
        options.allowEarlierSNAT = allow
        return Installer(options: options, files: HostFiles(), log: { log.lines.append($0) }, earlierSNAT: { choice in
            asked.lines.append(choice.rawValue)
            return (found, unreadable)
        })
    }

    @Test func refusesWithTheSettingAndTheFlag() {
        let log = Log(), asked = Log()
        #expect(throws: Refusal.self) { try installer([Self.shadow(certain: true)], log: log, asked: asked).checkEarlierSNAT([:]) }
        var message = ""
        do {
            try installer([Self.shadow(certain: true)], log: log, asked: asked).checkEarlierSNAT(["backend": .string("nftables")])
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("AWS_VPC_K8S_CNI_EXTERNALSNAT=true"))
        #expect(message.contains("--allow-earlier-snat"))
        #expect(asked.lines == ["auto", "nftables"])
    }

    @Test func goesOnWithTheFlagOrForAMaybeWithAWarning() throws {
        let log = Log(), asked = Log()
        try installer([Self.shadow(certain: true)], allow: true, log: log, asked: asked).checkEarlierSNAT([:])
        try installer([Self.shadow(certain: false)], log: log, asked: asked).checkEarlierSNAT([:])
        try installer([], unreadable: ["cannot read"], log: log, asked: asked).checkEarlierSNAT([:])
        #expect(log.lines.count == 3)
        #expect(log.lines.allSatisfy { $0.hasPrefix("randsnat install: warning: ") })
        #expect(log.lines[2].contains("CAP_NET_ADMIN"))
        #expect(try Installer.parse(["--allow-earlier-snat"]).allowEarlierSNAT == true)
    }
}
