/// The pod's own network namespace settings (`podTCPTimestamps`), set at ADD and compared at CHECK.
extension SNATPlugin {
    /// Sets what the config asks for in the pod's namespace; returns what puts the old value back
    /// (for a failed ADD). Changes nothing when the config asks for nothing or the value is there.
    func applyPodSettings(_ config: PluginConfig, netns: String) throws -> () -> Void {
        guard let wanted = config.podTCPTimestamps else { return {} }
        let before = try tcpTimestamps(netns: netns)
        guard before != wanted else { return {} }
        let sysctls = self.sysctls
        do {
            try sysctls.setTCPTimestamps(wanted, netns: netns)
        } catch {
            throw (error as? PodSettingError) ?? PodSettingError(netns: netns, wanted: wanted, reason: "\(error)")
        }
        let restore = { _ = try? sysctls.setTCPTimestamps(before, netns: netns) }
        // A kernel that ignores a value it does not know would leave another one in place.
        let after = try tcpTimestamps(netns: netns)
        guard after == wanted else {
            restore()
            throw PodSettingError(netns: netns, wanted: wanted, reason: "the kernel kept \(after)")
        }
        log("randsnat: \(netns): \(TCPTimestamps.name) \(before) -> \(wanted) (\(TCPTimestamps.meaning(wanted)))")
        return restore
    }

    /// How the pod's namespace differs from what the config asks for (CHECK), one sentence each.
    func podSettingsProblems(_ config: PluginConfig, netns: String) throws -> [String] {
        guard let wanted = config.podTCPTimestamps else { return [] }
        let actual = try tcpTimestamps(netns: netns)
        guard actual != wanted else { return [] }
        return ["\(TCPTimestamps.name) in the pod's network namespace is \(actual) (\(TCPTimestamps.meaning(actual))), "
                + "podTCPTimestamps says \(wanted) (\(TCPTimestamps.meaning(wanted)))"]
    }

    private func tcpTimestamps(netns: String) throws -> Int {
        do { return try sysctls.tcpTimestamps(netns: netns) } catch {
            throw (error as? PodSettingError) ?? PodSettingError(netns: netns, wanted: nil, reason: "\(error)")
        }
    }
}
