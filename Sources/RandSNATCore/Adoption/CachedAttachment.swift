import CNI

/// libcni's result cache: one file per attachment that libcni's ADD completed (containerd, CRI-O and
/// podman's CNI mode write it; DEL removes it). randsnat reads it to find the attachments of its
/// networks that it never saw (set up before randsnat was chained into the config).
///
///     <cache>/<network>-<containerID>-<ifName>        (mode 0600, written in place by libcni)
///     {"kind":"cniCacheV1","containerId":"c1","config":"<base64 of the network config's bytes>",
///      "ifName":"eth0","networkName":"net","netns":"/var/run/netns/x","cniArgs":[["K","V"]],
///      "capabilityArgs":{...},"result":{"cniVersion":"1.0.0","interfaces":[...],"ips":[...]}}
///
/// `netns` is in the files of newer libcni only; `config` is the whole conflist the runtime used.
public enum LibcniCache {
    /// Where libcni keeps its results unless the runtime says otherwise (`--cni-cache` of doctor and
    /// the agent, `RANDSNAT_CNI_CACHE` of STATUS).
    public static let defaultDirectory = "/var/lib/cni/results"
    /// The `kind` of the only format libcni writes.
    public static let kind = "cniCacheV1"
    /// The most randsnat reads of one entry. An entry holds the config the runtime passed (at most
    /// `Dispatcher.maxInputBytes`, or randsnat refused it) as base64 (4/3 of it), and the result.
    public static let entryLimit = 3 * Dispatcher.maxInputBytes

    /// The entry's file name, as libcni makes it.
    public static func fileName(of attachment: Attachment) -> String {
        "\(attachment.network)-\(attachment.containerID)-\(attachment.ifName)"
    }
}

/// One attachment as libcni's cache holds it: who it is, the addresses its result gave the pod's
/// interface, and what the config it was set up with chained.
public struct CachedAttachment: Equatable, Sendable {
    public let attachment: Attachment
    public let addresses: [PodAddress]
    /// The pod's network namespace, when the entry names one.
    public let netns: String?
    /// The types of the plugins of the config the runtime used; nil when the entry's config cannot be
    /// read (it is not needed to adopt the attachment: the node's current config is used).
    public let cachedPlugins: [String]?
    /// randsnat's `podTCPTimestamps` in the config the runtime used; nil when not set there (or
    /// randsnat is not in it). Doctor compares it with what the pods hold.
    public let podTCPTimestamps: Int?

    public init(attachment: Attachment, addresses: [PodAddress], netns: String? = nil, cachedPlugins: [String]? = nil,
                podTCPTimestamps: Int? = nil) {
        self.attachment = attachment
        self.addresses = addresses
        self.netns = netns
        self.cachedPlugins = cachedPlugins
        self.podTCPTimestamps = podTCPTimestamps
    }

    /// Whether the config the pod was set up with already chained randsnat.
    public var chainedRandsnat: Bool { cachedPlugins?.contains("randsnat") == true }

    /// Parses one cache file. Refuses anything libcni would not have written for an attachment with
    /// addresses: another kind, a missing or empty name, a file named for another attachment, a
    /// result without an address on the pod's interface, an address no pod can have.
    /// - Parameter fileName: the file's name in the cache; it must be the one libcni makes for the
    ///   entry's attachment (nil: not checked).
    public static func parse(_ bytes: [UInt8], fileName: String? = nil) throws(CacheEntryError) -> CachedAttachment {
        guard bytes.count <= LibcniCache.entryLimit else { throw .tooLarge(limit: LibcniCache.entryLimit) }
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw .notJSON("\(error)")
        }
        guard document.objectValue != nil else { throw .notJSON("it is a \(document.typeName), not an object") }
        let network = document["networkName"]?.stringValue
        func required(_ key: String) throws(CacheEntryError) -> String {
            guard let value = document[key] else { throw .missing(key: key, network: network) }
            guard let text = value.stringValue, !text.isEmpty else { throw .wrongType(key: key, expected: "a non-empty string", actual: value.typeName, network: network) }
            return text
        }
        guard let kind = document["kind"]?.stringValue, kind.utf8Equals(LibcniCache.kind) else {
            throw .wrongKind(document["kind"]?.stringValue ?? document["kind"]?.typeName ?? "none", network: network)
        }
        let attachment = Attachment(network: try required("networkName"), containerID: try required("containerId"), ifName: try required("ifName"))
        if let fileName, !fileName.utf8Equals(LibcniCache.fileName(of: attachment)) {
            throw .misnamed(fileName: fileName, attachment: attachment)
        }
        guard let result = document["result"], result != .null else { throw .missing(key: "result", network: network) }
        let items: [CNIResult.Address]
        do {
            items = try CNIResult.podAddresses(result, ifName: attachment.ifName)
        } catch {
            throw .badResult(error.msg, network: network)
        }
        var addresses: [PodAddress] = []
        for item in items {
            guard let address = PodAddress(item.cidr) else { throw .badAddress(item.cidr, reason: "is not an address with a prefix length", network: network) }
            if let reason = Self.refusal(of: address) { throw .badAddress(item.cidr, reason: reason, network: network) }
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw .noAddress(interface: attachment.ifName, network: network) }
        var plugins: [String]?
        var podTCPTimestamps: Int?
        if let text = document["config"]?.stringValue, let decoded = Base64.decode(text), let config = try? JSONValue.parse(decoded) {
            let entries = config["plugins"]?.arrayValue ?? [config]
            plugins = entries.compactMap { $0["type"]?.stringValue }
            if let randsnat = entries.first(where: { $0["type"]?.stringValue == "randsnat" })?.objectValue {
                podTCPTimestamps = try? PluginConfig.parse(randsnat).config.podTCPTimestamps
            }
        }
        // The entry's `netns` (newer libcni), else the sandbox its result gives the pod's interface.
        let sandbox = result["interfaces"]?.arrayValue?.first { $0["name"]?.stringValue == attachment.ifName }?["sandbox"]?.stringValue
        let netns = (document["netns"]?.stringValue ?? sandbox).flatMap { $0.isEmpty ? nil : $0 }
        return CachedAttachment(attachment: attachment, addresses: addresses, netns: netns, cachedPlugins: plugins,
                                podTCPTimestamps: podTCPTimestamps)
    }

    /// Why no pod can have this address (nil: it can): a member for it would SNAT what is not a pod's.
    static func refusal(of address: PodAddress) -> String? {
        let ip = address.address
        if address.prefix == 0 { return "has prefix length 0 (the whole address space)" }
        if ip.bytes.allSatisfy({ $0 == 0 }) { return "is the unspecified address" }
        let special: [(CIDR, String)] = ip.family == .ipv4
            ? [(CIDR("127.0.0.0/8")!, "a loopback address"), (.ipv4Multicast, "a multicast address"), (.ipv4LinkLocal, "a link-local address"),
               (CIDR("255.255.255.255/32")!, "the broadcast address")]
            : [(CIDR("::1/128")!, "the loopback address"), (.ipv6Multicast, "a multicast address"), (.ipv6LinkLocal, "a link-local address")]
        return special.first { $0.0.contains(ip) }.map { "is \($0.1)" }
    }
}

/// A cache file randsnat cannot take an attachment from; says why. `network` is the entry's network
/// when it could be read.
public enum CacheEntryError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case notJSON(String)
    case wrongKind(String, network: String?)
    case missing(key: String, network: String?)
    case wrongType(key: String, expected: String, actual: String, network: String?)
    case misnamed(fileName: String, attachment: Attachment)
    case badResult(String, network: String?)
    case noAddress(interface: String, network: String?)
    case badAddress(String, reason: String, network: String?)
    /// The file cannot be read: why ("a FIFO, not a regular file", "gone"); set by the reader.
    case unreadable(String)

    public var network: String? {
        switch self {
        case .tooLarge, .notJSON, .unreadable: nil
        case .misnamed(_, let attachment): attachment.network
        case .wrongKind(_, let network), .missing(_, let network), .wrongType(_, _, _, let network), .badResult(_, let network),
             .noAddress(_, let network), .badAddress(_, _, let network): network
        }
    }

    public var description: String {
        switch self {
        case .tooLarge(let limit): "it is larger than \(limit) bytes"
        case .notJSON(let reason): "it is not a JSON object (\(reason))"
        case .wrongKind(let kind, _): "its kind is \"\(kind)\", not \"\(LibcniCache.kind)\""
        case .missing(let key, _): "it has no \"\(key)\""
        case .wrongType(let key, let expected, let actual, _): "its \"\(key)\" is \(actual == "string" ? "an empty string" : "a \(actual)"), not \(expected)"
        case .misnamed(let fileName, let attachment):
            "its name \"\(fileName)\" is not the one libcni gives attachment \(attachment) (\"\(LibcniCache.fileName(of: attachment))\")"
        case .badResult(let reason, _): "its result cannot be read: \(reason)"
        case .noAddress(let interface, _): "its result gives interface \(interface) no address"
        case .badAddress(let text, let reason, _): "its result's address \(text) \(reason)"
        case .unreadable(let reason): "it is \(reason)"
        }
    }
}
