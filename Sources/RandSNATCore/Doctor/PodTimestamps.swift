import CNI

/// The result of the doctor's timestamp probe (see `TimestampProbe` in Netlink): `TCP_TIMESTAMP` of two
/// loopback connections that differ only in their source port, with tcp_timestamps 1 and, as a
/// control, with 2 (no offset).
public struct TimestampOffsets: Equatable, Sendable {
    /// Difference (ms) above which two readings taken together carry different offsets.
    public static let threshold: UInt32 = 1000

    /// True: the two connections got different offsets; false: the same; nil: the control failed
    /// (readings without offsets differed too), so the method says nothing on this kernel.
    public let perPort: Bool?
    public let readings: [UInt32]
    public let control: [UInt32]

    public init(withOffsets readings: [UInt32], control: [UInt32]) {
        self.readings = readings
        self.control = control
        func apart(_ pair: [UInt32]) -> Bool? {
            guard pair.count == 2 else { return nil }
            return min(pair[0] &- pair[1], pair[1] &- pair[0]) > Self.threshold
        }
        perPort = apart(control) == false ? apart(readings) : nil
    }
}

/// The TCP counters of a network namespace, from /proc/net/netstat and /proc/net/snmp: pairs of
/// lines "Prefix: names..." and "Prefix: values...", keyed "PrefixName" as nstat names them.
public enum PodTCPCounters {
    /// SYNs the namespace's TCP had to send again (`TcpExtTCPSynRetrans`): a rejected or lost SYN.
    public static let synRetransmits = "TcpExtTCPSynRetrans"

    public static func parse(_ text: String) -> [String: UInt64] {
        let lines = text.split(separator: "\n")
        var values: [String: UInt64] = [:]
        var index = 0
        while index + 1 < lines.count {
            let names = lines[index].split(separator: " "), numbers = lines[index + 1].split(separator: " ")
            if let prefix = names.first, prefix.hasSuffix(":"), numbers.first == prefix {
                for (name, number) in zip(names.dropFirst(), numbers.dropFirst()) {
                    values[String(prefix.dropLast()) + name] = UInt64(number)
                }
                index += 2
            } else {
                index += 1
            }
        }
        return values
    }
}

extension NodeFacts {
    /// The TCP timestamps of one network's pods (from libcni's cache and each pod's namespace).
    public struct PodTimestamps: Equatable, Sendable {
        public let network: String
        /// `podTCPTimestamps` in the network's config; nil: not set (the pods keep their own).
        public let configured: Int?
        /// Pods by their namespace's net.ipv4.tcp_timestamps.
        public let podsByValue: [Int: Int]
        /// `TcpExtTCPSynRetrans` summed over the network's pods (each since its namespace was made).
        public let synRetransmits: UInt64
        /// Pods whose namespace could not be read (gone, or no netns in the cache).
        public let unreadable: Int

        public init(network: String, configured: Int?, podsByValue: [Int: Int], synRetransmits: UInt64, unreadable: Int) {
            self.network = network
            self.configured = configured
            self.podsByValue = podsByValue
            self.synRetransmits = synRetransmits
            self.unreadable = unreadable
        }
    }
}
