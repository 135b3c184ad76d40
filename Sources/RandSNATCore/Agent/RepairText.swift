extension ReconcileReport {
    /// The log line of a generation's rules put back, naming what was missing as the backend found
    /// it (`iptables nat POSTROUTING has no jump to RANDSNAT-…` when only the jump was gone).
    static func rulesRepair(network: String, names: ObjectNames, pods: Int, backend: String, missing: [String]) -> String {
        let what = missing.isEmpty
            ? "its chain, jump and sets were not in place"
            : missing.prefix(3).joined(separator: "; ") + (missing.count > 3 ? "; and \(missing.count - 3) more" : "")
        return "network \"\(network)\": repaired generation \(names.generation) (\(names.family == .ipv4 ? "IPv4" : "IPv6"), "
            + "\(pods) pods) in \(backend): \(what)"
    }
}
