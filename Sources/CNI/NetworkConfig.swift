/// The fields the spec defines for every plugin's network config; the plugin's own keys stay in
/// `members` for it to read.
public struct NetworkConfig: Sendable {
    public let cniVersion: CNIVersion
    public let name: String
    public let type: String
    /// The previous plugin's result, when the runtime chains this plugin after another.
    public let prevResult: JSONValue?
    /// Capability arguments from the runtime; keys the plugin does not know are ignored.
    public let runtimeConfig: [JSONKey: JSONValue]
    /// The whole config object.
    public let members: [JSONKey: JSONValue]
    /// The config exactly as it came on stdin (delegated plugins get the same bytes).
    public let raw: [UInt8]

    /// Keys the spec (or a runtime) puts in a plugin's config; they never count as unknown.
    public static let specKeys: Set<JSONKey> = [
        "cniVersion", "cniVersions", "name", "type", "args", "ipMasq", "ipam", "dns", "capabilities",
        "runtimeConfig", "prevResult", "disableCheck", "disableGC",
        "cni.dev/valid-attachments", "cni.dev/attachments",
    ]

    /// Decodes a network config: code 6 when it is not a JSON object of the right types, code 1 for
    /// a version randsnat does not implement, code 7 for values the spec does not allow.
    public static func parse(_ bytes: [UInt8]) throws(CNIError) -> NetworkConfig {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw CNIError(.decodingFailure, "network config on stdin is not valid JSON", details: error.description)
        }
        guard let members = document.objectValue else {
            throw CNIError(.decodingFailure, "network config on stdin must be a JSON object, not \(document.typeNameWithArticle)")
        }
        let version = try parseVersion(members["cniVersion"])
        let name = try requiredString(members, "name")
        if let problem = Environment.containerIDProblem(name) {
            throw CNIError(.invalidConfig, "network name \"\(name.escapedBytes)\" is invalid: \(problem)",
                           details: "the CNI spec requires names of letters, digits, '_', '.' and '-'")
        }
        if name.utf8.count > 128 {
            throw CNIError(.invalidConfig, "network name is \(name.utf8.count) bytes long; randsnat accepts at most 128")
        }
        let type = try requiredString(members, "type")
        var runtimeConfig: [JSONKey: JSONValue] = [:]
        if let value = members["runtimeConfig"], value != .null {
            guard let object = value.objectValue else {
                throw CNIError(.decodingFailure, "\"runtimeConfig\" must be an object, not \(value.typeNameWithArticle)")
            }
            runtimeConfig = object
        }
        var prevResult: JSONValue?
        if let value = members["prevResult"], value != .null {
            guard value.objectValue != nil else {
                throw CNIError(.decodingFailure, "\"prevResult\" must be an object (a CNI result), not \(value.typeNameWithArticle)")
            }
            prevResult = value
        }
        return NetworkConfig(cniVersion: version, name: name, type: type, prevResult: prevResult,
                             runtimeConfig: runtimeConfig, members: members, raw: bytes)
    }

    /// The version a config names, best effort, for printing an error in it before the config is
    /// known to be valid.
    public static func versionHint(_ bytes: [UInt8]) -> CNIVersion? {
        guard let document = try? JSONValue.parse(bytes), let text = document["cniVersion"]?.stringValue,
              let version = CNIVersion(text), CNIVersion.supported.contains(version) else { return nil }
        return version
    }

    static func parseVersion(_ value: JSONValue?) throws(CNIError) -> CNIVersion {
        guard let value else {
            throw CNIError(.invalidConfig, "network config has no \"cniVersion\"",
                           details: "add \"cniVersion\": \"\(CNIVersion.current)\"")
        }
        guard let text = value.stringValue else {
            throw CNIError(.decodingFailure, "\"cniVersion\" must be a string such as \"1.1.0\", not \(value.typeNameWithArticle)")
        }
        guard let version = CNIVersion(text) else {
            throw CNIError(.decodingFailure, "\"cniVersion\": \"\(text.escapedBytes)\" is not a version of the form MAJOR.MINOR.PATCH")
        }
        guard CNIVersion.supported.contains(version) else {
            throw CNIError(.incompatibleVersion, "cniVersion \(version) is not supported",
                           details: "supported versions: \(CNIVersion.supported.map(\.description).joined(separator: ", "))")
        }
        return version
    }

    static func requiredString(_ members: [JSONKey: JSONValue], _ key: String) throws(CNIError) -> String {
        guard let value = members[key] else {
            throw CNIError(.invalidConfig, "network config has no \"\(key)\"")
        }
        guard let text = value.stringValue else {
            throw CNIError(.decodingFailure, "\"\(key)\" must be a string, not \(value.typeNameWithArticle)")
        }
        guard !text.isEmpty else { throw CNIError(.invalidConfig, "\"\(key)\" must not be empty") }
        return text
    }
}
