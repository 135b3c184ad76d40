import CNI
import RandSNATCore

/// Why the installer will not touch a node's config; each says what to do.
public struct Refusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of refusal it is: the installer's exit status follows from it, never from the text.
    public enum Reason: Equatable, Sendable {
        /// The config is not understood or conflicts with randsnat (exit status 3).
        case conflict
        /// net.d holds no network config yet: the primary CNI is not installed (exit status 4).
        case noNetworkConfig
    }

    public let reason: Reason
    public let description: String

    init(_ reason: Reason = .conflict, description: String) {
        self.reason = reason
        self.description = description
    }
}

/// One file of `etc/cni/net.d` as the installer read it.
public struct ConfigFile: Equatable, Sendable {
    public let name: String
    public let bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// What to write so that the runtime's network config chains randsnat, as data. Pure.
public struct ChainPlan: Equatable, Sendable {
    /// The file the runtime loads, as it is now.
    public let primary: String
    /// The file to write (the primary's name, or `<base>.conflist` for a `.conf`/`.json`).
    public let target: String
    public let bytes: [UInt8]
    /// The node's own config, to keep under `backupName` if no backup exists yet.
    public let original: ConfigFile
    /// Files to remove once the target is written (a `.conf` turned into a conflist).
    public let remove: [String]
    /// Notes for the operator (stderr).
    public let warnings: [String]

    public var backupName: String { Self.backupName(of: original.name) }

    /// The suffix libcni does not load (it loads only .conf, .conflist and .json).
    public static let backupSuffix = ".randsnat-backup"
    public static func backupName(of name: String) -> String { name + backupSuffix }

    /// True when the runtime loads files with this name.
    public static func isLoadable(_ name: String) -> Bool {
        // By bytes, as the runtime's filepath.Ext reads them: ".\u{301}x.conf" is hidden, though its first Character is no ".".
        !name.utf8HasPrefix(".") && [".conf", ".conflist", ".json"].contains { name.utf8HasSuffix($0) }
    }

    /// The file the runtime uses: the lexically first loadable one, as libcni and containerd pick it.
    public static func primary(of files: [ConfigFile]) -> ConfigFile? {
        files.filter { isLoadable($0.name) }.min { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }
}

public enum ChainPlanner {
    /// The settings file: a JSON object of randsnat's keys, checked as randsnat will check them.
    public static func settings(_ bytes: [UInt8]) throws -> (settings: [JSONKey: JSONValue], warnings: [String]) {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw Refusal(description: "the settings file is not JSON: \(error.description)")
        }
        guard var members = document.objectValue else { throw Refusal(description: "the settings file must hold a JSON object of randsnat's keys") }
        for key in ["type", "name", "cniVersion", "prevResult", "ipam"] { members[key] = nil }
        do {
            let (_, warnings) = try PluginConfig.parse(members)
            return (members, warnings)
        } catch {
            throw Refusal(description: "the settings file is invalid: \(error)")
        }
    }

    /// Plans chaining randsnat (with `settings`) into the node's primary config.
    /// - Parameter fixMasquerade: turn the primary's own masquerade off instead of refusing.
    /// - Returns: nil when there is nothing to do (randsnat is the primary itself).
    public static func plan(_ files: [ConfigFile], settings: [JSONKey: JSONValue], fixMasquerade: Bool) throws -> ChainPlan? {
        guard let primary = ChainPlan.primary(of: files) else {
            throw Refusal(.noNetworkConfig, description: "no network config (.conf, .conflist, .json) in etc/cni/net.d yet: install the primary CNI first (or run with --watch to wait for it)")
        }
        // The backup of the node's original: of this file, or of the .conf/.json a run turned into it.
        let base = primary.name.split(separator: ".", omittingEmptySubsequences: false).dropLast().joined(separator: ".")
        let candidates = [primary.name] + (primary.name.hasSuffix(".conflist") ? [base + ".conf", base + ".json"] : [])
        let backup = candidates.lazy.compactMap { name in files.first { $0.name == ChainPlan.backupName(of: name) } }.first
        let document: JSONValue
        do {
            document = try JSONValue.parse(primary.bytes)
        } catch {
            throw Refusal(description: "\(primary.name) is not JSON (\(error.description)): fix it or remove it; nothing was changed")
        }
        guard var list = document.objectValue else { throw Refusal(description: "\(primary.name) is not a JSON object; nothing was changed") }
        var warnings: [String] = []
        var target = primary.name
        var remove: [String] = []
        if list["plugins"] == nil {
            // A single-plugin .conf/.json becomes a conflist of the same base name.
            guard list["type"]?.stringValue != nil else { throw Refusal(description: "\(primary.name) has neither \"plugins\" nor \"type\"; nothing was changed") }
            var plugin = list
            plugin["cniVersion"] = nil
            plugin["name"] = nil
            list = ["cniVersion": list["cniVersion"] ?? .string("0.3.1"), "name": list["name"] ?? .string("network"), "plugins": .array([.object(plugin)])]
            target = base + ".conflist"
            remove = [primary.name]
            warnings.append("\(primary.name) is a single plugin config: writing it as \(target) with randsnat chained")
        }
        guard let version = list["cniVersion"]?.stringValue.flatMap(CNIVersion.init), version >= CNIVersion(0, 3, 0) else {
            throw Refusal(description: "\(primary.name) has cniVersion \(list["cniVersion"]?.stringValue ?? "none"): chaining needs 0.3.0 or later; nothing was changed")
        }
        guard var plugins = list["plugins"]?.arrayValue, !plugins.isEmpty else {
            throw Refusal(description: "\(primary.name) has no plugins; nothing was changed")
        }
        if plugins.first?["type"]?.stringValue == "randsnat" && plugins.first?["ipam"] != nil {
            return nil  // randsnat standalone is the primary: its SNAT is already randsnat's
        }
        plugins.removeAll { $0["type"]?.stringValue == "randsnat" }
        // The first nat rule that matches picks the source port: the primary must not masquerade too.
        for index in plugins.indices {
            guard var plugin = plugins[index].objectValue else { continue }
            let type = plugin["type"]?.stringValue ?? "?"
            if plugin["ipMasq"]?.boolValue == true {
                guard fixMasquerade else {
                    throw Refusal(description: "\(primary.name): plugin \"\(type)\" masquerades itself (\"ipMasq\": true), so its rule, without --random-fully, would SNAT before randsnat's; set it to false, or run with --turn-off-primary-masquerade; nothing was changed")
                }
                plugin["ipMasq"] = .bool(false)
                warnings.append("\(primary.name): turned off \"ipMasq\" of plugin \"\(type)\"")
            }
            if type == "flannel", var delegate = plugin["delegate"]?.objectValue ?? (fixMasquerade ? [:] : nil) {
                if delegate["ipMasq"]?.boolValue != false {
                    if delegate["ipMasq"]?.boolValue == true && !fixMasquerade {
                        throw Refusal(description: "\(primary.name): flannel's delegate masquerades (\"delegate\": {\"ipMasq\": true}); set it to false, or run with --turn-off-primary-masquerade; nothing was changed")
                    }
                    if fixMasquerade {
                        delegate["ipMasq"] = .bool(false)
                        warnings.append("\(primary.name): turned off flannel's delegate \"ipMasq\"")
                    } else {
                        warnings.append("\(primary.name): flannel's delegate does not say \"ipMasq\": false; flannel then masquerades when flanneld runs with --ip-masq; turn that off (or use --turn-off-primary-masquerade)")
                    }
                }
                plugin["delegate"] = .object(delegate)
            }
            plugins[index] = .object(plugin)
        }
        var entry = settings
        entry["type"] = .string("randsnat")
        plugins.append(.object(entry))
        list["plugins"] = .array(plugins)
        // The original is what the node had before randsnat: the backup if there is one and the
        // primary still chains randsnat, else the primary as it is now (the primary CNI rewrote it).
        let chainedAlready = document["plugins"]?.arrayValue?.contains { $0["type"]?.stringValue == "randsnat" } ?? false
        let original = chainedAlready && backup != nil
            ? ConfigFile(name: String(backup!.name.dropLast(ChainPlan.backupSuffix.count)), bytes: backup!.bytes) : primary
        return ChainPlan(primary: primary.name, target: target, bytes: JSONValue.object(list).pretty(), original: original,
                         remove: remove, warnings: warnings)
    }
}
