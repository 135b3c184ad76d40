// Fuzz target: the CNI_* environment (environ entries, CNI_ARGS, CNI_PATH, CNI_COMMAND and the checks
// of Environment.parse).
// Input: up to six fields separated by NUL bytes (a NUL cannot occur in an environment value):
// CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH; the whole input is also
// read as one environ entry "NAME=VALUE".
// Oracles: a byte-level reference for every split (entry at its first '=', CNI_ARGS at ';' then at
// each item's first '=', CNI_PATH at ':') and for every comparison (the verb is the one whose name
// has exactly these bytes); an error is code 4 and its message is printable ASCII (offending bytes
// shown as \xNN).
@testable import CNI

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvironment(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))

    // One environ entry.
    let entry = Environment.variable(fromEntry: bytes)
    if let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
        guard let entry else { violated("an entry with '=' at byte \(equals) was dropped") }
        expect(utf8(entry.name) == repaired(bytes[..<equals]) && utf8(entry.value) == repaired(bytes[(equals + 1)...]),
               "entry split elsewhere than at its first '=' byte")
    } else {
        expect(entry == nil, "an entry without '=' was read")
    }

    let fields = byteSplit(bytes, 0, maxSplits: 5).map { String(decoding: $0, as: UTF8.self) }
    let keys: [EnvironmentKey] = [.command, .containerID, .netns, .ifName, .args, .path]
    var variables: [String: String] = [:]
    for (key, value) in zip(keys, fields) { variables[key.rawValue] = value }

    // CNI_ARGS alone.
    let args = variables[EnvironmentKey.args.rawValue] ?? ""
    let items = byteSplit(utf8(args), UInt8(ascii: ";")).filter { !$0.isEmpty }.map { byteSplit($0, UInt8(ascii: "="), maxSplits: 1) }
    let argsValid = items.allSatisfy { $0.count == 2 && !$0[0].isEmpty }
    do {
        let pairs = try Environment.parseArgs(args)
        expect(argsValid, "CNI_ARGS \(args.escapedBytes) accepted; a byte split finds an item without KEY=")
        expect(pairs.map { [utf8($0.key), utf8($0.value)] } == items, "CNI_ARGS \(args.escapedBytes) split elsewhere than at ';' and '=' bytes")
    } catch {
        expect(!argsValid, "CNI_ARGS \(args.escapedBytes) refused; a byte split reads it: \(error.msg)")
        checkMessage(error)
    }

    // The whole environment.
    let command = variables[EnvironmentKey.command.rawValue] ?? ""
    let verb = Verb.allCases.first { utf8($0.rawValue) == utf8(command) }
    do {
        let environment = try Environment.parse(variables)
        expect(environment.verb == verb, "CNI_COMMAND \(command.escapedBytes) taken for \(environment.verb.rawValue)")
        let path = byteSplit(utf8(variables[EnvironmentKey.path.rawValue] ?? ""), UInt8(ascii: ":")).filter { !$0.isEmpty }
        expect(environment.path.map(utf8) == path, "CNI_PATH split elsewhere than at ':' bytes")
        expect(argsValid, "CNI_ARGS accepted by parse, refused by the reference")
        let ifName = utf8(environment.ifName)
        expect(ifName.count <= 15 && !ifName.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F }
                   && ifName != utf8(".") && ifName != utf8(".."), "CNI_IFNAME \(environment.ifName.escapedBytes) accepted")
        let id = utf8(environment.containerID)
        func alnum(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }
        expect(id.isEmpty || (alnum(id[0]) && id.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }),
               "CNI_CONTAINERID \(environment.containerID.escapedBytes) accepted")
    } catch {
        expect(error.code == .invalidEnvironment, "Environment.parse failed with code \(error.code.rawValue)")
        checkMessage(error)
    }
    return 0
}

/// An error message shows every byte a reader could not see (non-ASCII, control) as \xNN.
func checkMessage(_ error: CNIError) {
    expect(error.msg.utf8.allSatisfy { (0x20..<0x7F).contains($0) }, "message with raw bytes: \(error.msg.escapedBytes)")
}
