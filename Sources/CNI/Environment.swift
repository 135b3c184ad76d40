/// The CNI_* variables of one invocation, checked for the verb they came with.
public struct Environment: Equatable, Sendable {
    public let verb: Verb
    public let containerID: String
    public let netns: String
    public let ifName: String
    /// `CNI_ARGS` as key/value pairs, in order; randsnat ignores keys it does not know.
    public let args: [(key: String, value: String)]
    public let path: [String]

    public static func == (lhs: Environment, rhs: Environment) -> Bool {
        func same(_ left: [String], _ right: [String]) -> Bool {
            left.count == right.count && zip(left, right).allSatisfy { $0.utf8Equals($1) }
        }
        return lhs.verb == rhs.verb && same([lhs.containerID, lhs.netns, lhs.ifName], [rhs.containerID, rhs.netns, rhs.ifName])
            && same(lhs.path, rhs.path) && same(lhs.args.map(\.key), rhs.args.map(\.key)) && same(lhs.args.map(\.value), rhs.args.map(\.value))
    }

    /// Reads and checks the variables; every missing one is named in a single code-4 error.
    public static func parse(_ variables: [String: String]) throws(CNIError) -> Environment {
        func value(_ key: EnvironmentKey) -> String { variables[key.rawValue] ?? "" }
        let command = value(.command)
        guard !command.isEmpty else {
            throw CNIError(.invalidEnvironment, "required environment variable CNI_COMMAND is missing",
                           details: "set CNI_COMMAND to one of \(Verb.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let verb = Verb(exactly: command) else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND=\"\(command.escapedBytes)\" is not a CNI verb",
                           details: "use one of \(Verb.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let missing = verb.requiredVariables.filter { value($0).isEmpty }
        if !missing.isEmpty {
            throw CNIError(.invalidEnvironment,
                           "required environment variables missing for \(verb.rawValue): \(missing.map(\.rawValue).joined(separator: ", "))",
                           details: "the runtime must set them (CNI spec 1.1.0, section Parameters)")
        }
        let containerID = value(.containerID)
        if !containerID.isEmpty, let problem = containerIDProblem(containerID) {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID=\"\(containerID.escapedBytes)\" is invalid: \(problem)")
        }
        let ifName = value(.ifName)
        if !ifName.isEmpty, let problem = interfaceNameProblem(ifName) {
            throw CNIError(.invalidEnvironment, "CNI_IFNAME=\"\(ifName.escapedBytes)\" is invalid: \(problem)")
        }
        let args = try parseArgs(value(.args))
        let path = value(.path).utf8Split(":", omittingEmpty: true)
        return Environment(verb: verb, containerID: containerID, netns: value(.netns), ifName: ifName, args: args, path: path)
    }

    /// One `environ` entry, "NAME=VALUE", split at its first '=' byte; nil without one. (As
    /// `Character`s, "=" followed by a combining mark is one character and no '='.)
    public static func variable(fromEntry entry: [UInt8]) -> (name: String, value: String)? {
        guard let equals = entry.firstIndex(of: UInt8(ascii: "=")) else { return nil }
        return (String(decoding: entry[..<equals], as: UTF8.self), String(decoding: entry[(equals + 1)...], as: UTF8.self))
    }

    /// The environment of a plugin randsnat delegates to (IPAM), as libcni builds it: this process's
    /// entries byte for byte (a dictionary of `String`s would merge names that are canonically
    /// equivalent and repair bytes that are not UTF-8), with CNI_COMMAND set to `verb`.
    public static func delegatedEntries(_ entries: [[UInt8]], verb: Verb) -> [[UInt8]] {
        let command = Array(EnvironmentKey.command.rawValue.utf8) + [UInt8(ascii: "=")]
        return entries.filter { !$0.starts(with: command) } + [command + Array(verb.rawValue.utf8)]
    }

    /// The spec's rule for container IDs: alphanumeric first, then alphanumerics, `_`, `.`, `-`.
    static func containerIDProblem(_ id: String) -> String? {
        let bytes = Array(id.utf8)
        func isAlnum(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        }
        guard let first = bytes.first, isAlnum(first) else { return "it must start with a letter or digit" }
        guard bytes.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { return "only letters, digits, '_', '.' and '-' are allowed" }
        return nil
    }

    /// The kernel's rule for interface names: 1–15 bytes, not "." or "..", no '/', ':' or whitespace.
    static func interfaceNameProblem(_ name: String) -> String? {
        if name.utf8.count > 15 { return "longer than 15 bytes" }
        if name.utf8Equals(".") || name.utf8Equals("..") { return "\".\" and \"..\" are not interface names" }
        if name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F }) {
            return "'/', ':' and whitespace are not allowed"
        }
        return nil
    }

    /// `CNI_ARGS` is "K1=V1;K2=V2", split at ';' bytes and then at each item's first '=' byte. An
    /// item without '=' or with an empty key is malformed.
    static func parseArgs(_ text: String) throws(CNIError) -> [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        for item in text.utf8Split(";", omittingEmpty: true) {
            let parts = item.utf8Split("=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS item \"\(item.escapedBytes)\" is not KEY=VALUE",
                               details: "CNI_ARGS must look like \"K1=V1;K2=V2\"")
            }
            pairs.append((parts[0], parts[1]))
        }
        return pairs
    }
}
