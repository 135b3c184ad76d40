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

/// One file of libcni's result cache (`/var/lib/cni/results/NETWORK-CONTAINER-IFNAME`, kind
/// `cniCacheV1`): the network, the config the runtime used (base64 of its bytes) and the result.
public struct CNICacheEntry: Equatable, Sendable {
    public let network: String
    /// The pod's network namespace: the entry's `netns`, else the `sandbox` of the result's interfaces.
    public let netns: String?
    /// randsnat's `podTCPTimestamps` in the cached config; nil when not set (or randsnat is not in it).
    public let podTCPTimestamps: Int?
    /// Whether randsnat is a plugin of the cached config.
    public let hasRandsnat: Bool

    public init(network: String, netns: String?, podTCPTimestamps: Int?, hasRandsnat: Bool) {
        self.network = network
        self.netns = netns
        self.podTCPTimestamps = podTCPTimestamps
        self.hasRandsnat = hasRandsnat
    }

    public init?(_ bytes: [UInt8]) {
        guard let entry = try? JSONValue.parse(bytes), let network = entry["networkName"]?.stringValue else { return nil }
        self.network = network
        let sandbox = entry["result"]?["interfaces"]?.arrayValue?.compactMap { $0["sandbox"]?.stringValue }.first { !$0.isEmpty }
        netns = entry["netns"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? sandbox
        var plugin: JSONValue?
        if let text = entry["config"]?.stringValue, let decoded = Base64.decode(text), let config = try? JSONValue.parse(decoded) {
            plugin = (config["plugins"]?.arrayValue ?? [config]).first { $0["type"]?.stringValue == "randsnat" }
        }
        hasRandsnat = plugin != nil
        podTCPTimestamps = plugin.flatMap { try? PluginConfig.parse($0.objectValue ?? [:]).config.podTCPTimestamps }
    }
}

/// RFC 4648 base64 (Go's encoding of a []byte in JSON); padding optional, no line breaks.
public enum Base64 {
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for byte in text.utf8 where byte != UInt8(ascii: "=") {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
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
