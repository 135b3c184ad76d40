import CNI

extension PluginConfig {
    /// The config as randsnat's keys, in the form `parse` reads back to an equal config (defaults
    /// left out): what a pod record keeps of a config that the agent moved the pod into.
    public var members: [JSONKey: JSONValue] {
        let defaults = PluginConfig()
        var members: [JSONKey: JSONValue] = [:]
        if !nonMasqueradeCIDRs.isEmpty { members["nonMasqueradeCIDRs"] = .array(nonMasqueradeCIDRs.map { .string($0.description) }) }
        if masqLinkLocal != defaults.masqLinkLocal { members["masqLinkLocal"] = .bool(masqLinkLocal) }
        if !toSource.isEmpty { members["toSource"] = .array(toSource.map { .string($0.description) }) }
        if let portRange { members["portRange"] = .string(portRange.description) }
        if let egressInterface { members["egressInterface"] = .string(egressInterface) }
        if lockTimeoutSeconds != defaults.lockTimeoutSeconds { members["lockTimeoutSeconds"] = .double(lockTimeoutSeconds) }
        if backend != defaults.backend { members["backend"] = .string(backend.rawValue) }
        return members
    }
}
