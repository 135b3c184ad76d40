import Testing
@testable import CNI

struct EnvironmentTests {
    static let full: [String: String] = [
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/var/run/netns/pod",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
    ]

    /// One row per required variable per verb, as skel's table has.
    static let requiredRows: [(Verb, EnvironmentKey)] = Verb.allCases.flatMap { verb in
        verb.requiredVariables.filter { $0 != .command }.map { (verb, $0) }
    }

    @Test(arguments: requiredRows)
    func missingRequiredVariableIsCode4(verb: Verb, key: EnvironmentKey) {
        var variables = Self.full
        variables["CNI_COMMAND"] = verb.rawValue
        variables[key.rawValue] = nil
        #expect {
            _ = try Environment.parse(variables)
        } throws: { error in
            guard let error = error as? CNIError else { return false }
            return error.code == .invalidEnvironment && error.msg.contains(key.rawValue)
        }
    }

    @Test func allMissingNamesComeInOneError() throws {
        let error = #expect(throws: CNIError.self) { try Environment.parse(["CNI_COMMAND": "ADD"]) }
        for key in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] { #expect(error?.msg.contains(key) == true) }
    }

    @Test func delNeedsNoNetns() throws {
        var variables = Self.full
        variables["CNI_COMMAND"] = "DEL"
        variables["CNI_NETNS"] = ""
        let env = try Environment.parse(variables)
        #expect(env.verb == .del && env.netns.isEmpty)
    }

    @Test func statusAndGCNeedOnlyCommandAndPath() throws {
        for verb in ["STATUS", "GC"] {
            let env = try Environment.parse(["CNI_COMMAND": verb, "CNI_PATH": "/opt/cni/bin"])
            #expect(env.path == ["/opt/cni/bin"])
        }
    }

    @Test func parsesArgsAndPath() throws {
        let env = try Environment.parse(Self.full)
        #expect(env.args.map(\.key) == ["IgnoreUnknown", "K8S_POD_NAME"])
        #expect(env.args.map(\.value) == ["1", "web"])
        #expect(env.path == ["/opt/cni/bin", "/usr/lib/cni"])
    }

    @Test(arguments: ["", "DELETE", "add"])
    func unknownCommandIsCode4(command: String) {
        var variables = Self.full
        variables["CNI_COMMAND"] = command
        let error = #expect(throws: CNIError.self) { try Environment.parse(variables) }
        #expect(error?.code.rawValue == 4)
        #expect(error?.msg.contains("CNI_COMMAND") == true)
        #expect(error?.msg.contains("\"\(command)\"") == true || command.isEmpty, "the message shows the value: \(error?.msg ?? "")")
    }

    @Test(arguments: [("CNI_CONTAINERID", "-leading-dash"), ("CNI_CONTAINERID", "has space"), ("CNI_CONTAINERID", "semi;colon"),
                      ("CNI_IFNAME", "a-very-long-interface"), ("CNI_IFNAME", "eth/0"), ("CNI_IFNAME", "."), ("CNI_IFNAME", "eth 0"),
                      ("CNI_ARGS", "novalue"), ("CNI_ARGS", "=x")])
    func invalidValuesAreCode4(key: String, value: String) {
        var variables = Self.full
        variables[key] = value
        let error = #expect(throws: CNIError.self) { try Environment.parse(variables) }
        #expect(error?.code == .invalidEnvironment)
        #expect(error?.msg.contains(key) == true)
    }
}
