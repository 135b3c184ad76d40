import CNI

/// What ADD applied for one attachment, kept on the node until DEL or GC: the agent's source of
/// truth for live pods (it survives a flush of the kernel state), and DEL's map of where the pod's
/// members are (no dump of the network's members).
///
/// One file per attachment, JSON, written atomically (temp file + rename) under the network lock:
///
///     $RANDSNAT_RUN_DIR/records/<network hash: 11 hex>/<attachment hash: 32 hex>.json
///     {"version":1,"network":"net","containerID":"c1","ifName":"eth0",
///      "addresses":["198.18.0.2/24"],"backend":"iptables","generation":"1a2b3c4",
///      "config":{"nonMasqueradeCIDRs":["198.19.0.0/16"]}}
///
/// `config` holds randsnat's own keys of the config ADD applied (`PluginConfig.keys`), so that a
/// network whose config has left the node can still be planned; `backend` and `generation` say
/// where the members are now (the agent rewrites them when it moves the pod).
///
/// NEVER CHANGE the layout or the meaning of a field of a released version: an upgraded binary
/// reads what the older one wrote. A new field is optional; an incompatible change is a new version.
public struct PodRecord: Equatable, Sendable {
    public static let formatVersion: Int64 = 1

    /// The largest record file read. A record holds randsnat's keys of a config that came on stdin
    /// (at most `Dispatcher.maxInputBytes`); written again it may grow (a number such as 1e6 is
    /// written out in full), hence the margin.
    public static let maxBytes = 2 * Dispatcher.maxInputBytes

    public let attachment: Attachment
    public let addresses: [PodAddress]
    public let backend: BackendKind
    public let generation: String
    /// randsnat's keys of the network config ADD applied.
    public let config: [JSONKey: JSONValue]
    /// Written by the agent's adoption of a pod set up without randsnat (optional field `"adopted":true`):
    /// the runtime may tear the pod down with the config it was set up with, without randsnat's DEL,
    /// so the agent releases the pod when libcni's cache no longer holds it.
    public let adopted: Bool

    public init(attachment: Attachment, addresses: [PodAddress], backend: BackendKind, generation: String, config: [JSONKey: JSONValue],
                adopted: Bool = false) {
        self.attachment = attachment
        self.addresses = addresses
        self.backend = backend
        self.generation = generation
        self.config = config
        self.adopted = adopted
    }

    /// randsnat's own keys of a network config: what a record keeps of it.
    public static func configKeys(of members: [JSONKey: JSONValue]) -> [JSONKey: JSONValue] {
        members.filter { member in PluginConfig.keys.contains { member.key.text.utf8Equals($0) } }
    }

    /// The same pod, now in `backend` under `config` (after a move): the record keeps the config
    /// the pod's members now follow, so that it plans the generation it names.
    public func moved(to backend: BackendKind, config: PluginConfig) -> PodRecord {
        PodRecord(attachment: attachment, addresses: addresses, backend: backend, generation: Planner.generation(of: config), config: config.members,
                  adopted: adopted)
    }

    /// The config ADD applied, parsed leniently (a record is never refused for a key a later version dropped).
    public var pluginConfig: PluginConfig { (try? PluginConfig.parse(config).config) ?? PluginConfig() }

    /// The kernel objects holding this pod's members.
    public var memberNames: [(address: PodAddress, names: ObjectNames)] {
        let id = NetworkID(network: attachment.network)
        return addresses.map { ($0, ObjectNames(id: id, generation: generation, family: $0.family)) }
    }

    // MARK: layout

    /// The directory under the run directory that holds every record.
    public static let directoryName = "records"

    /// The record's directory, relative to the run directory: one per network.
    public static func directory(of id: NetworkID) -> String { directoryName + "/" + id.hash }

    /// The record's file name in its network's directory.
    public static func fileName(of attachment: Attachment) -> String {
        String(SHA256.hex(attachment.network + "\u{0}" + attachment.containerID + "\u{0}" + attachment.ifName).prefix(32)) + ".json"
    }

    /// The temp file a writer with process id `writer` fills before renaming it over the record, in
    /// the same directory: `<record name>.tmp<pid>`.
    public static func tempFileName(of attachment: Attachment, writer: Int) -> String {
        fileName(of: attachment) + ".tmp\(writer)"
    }

    /// The writer's process id when `name` is a temp file `tempFileName(of:writer:)` can make.
    public static func writer(ofTemp name: String) -> Int? {
        guard name.utf8.count > 41 else { return nil }  // a record's name (37 bytes), without a copy
        let bytes = Array(name.utf8)
        guard bytes.count > 41, isRecordName(String(decoding: bytes[..<37], as: UTF8.self)),
              bytes[37..<41].elementsEqual(".tmp".utf8), bytes.count - 41 <= 10,
              bytes[41...].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), bytes[41] != 0x30 else { return nil }
        return Int(String(decoding: bytes[41...], as: UTF8.self))
    }

    /// True for a name `fileName(of:)` can make (the store ignores anything else, such as temp files).
    public static func isRecordName(_ name: String) -> Bool {
        name.utf8.count == 37 && name.hasSuffix(".json")
            && name.utf8.prefix(32).allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    // MARK: format

    public func encode() -> [UInt8] {
        var object: [JSONKey: JSONValue] = [
            "version": .int(Self.formatVersion),
            "network": .string(attachment.network),
            "containerID": .string(attachment.containerID),
            "ifName": .string(attachment.ifName),
            "addresses": .array(addresses.map { .string($0.description) }),
            "backend": .string(backend.rawValue),
            "generation": .string(generation),
        ]
        object["config"] = .object(config)
        if adopted { object["adopted"] = .bool(true) }
        return JSONValue.object(object).serialized() + [0x0A]
    }

    public static func decode(_ bytes: [UInt8]) throws(RecordError) -> PodRecord {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw .malformed("it is not JSON: \(error)")
        }
        guard let version = document["version"]?.intValue else { throw .malformed("it has no \"version\"") }
        guard version == formatVersion else { throw .unknownVersion(version) }
        func string(_ key: String) throws(RecordError) -> String {
            guard let text = document[key]?.stringValue else { throw .malformed("\"\(key)\" is missing or not a string") }
            return text
        }
        let attachment = Attachment(network: try string("network"), containerID: try string("containerID"), ifName: try string("ifName"))
        guard let items = document["addresses"]?.arrayValue else { throw .malformed("\"addresses\" is missing or not an array") }
        var addresses: [PodAddress] = []
        for item in items {
            guard let text = item.stringValue, let address = PodAddress(text) else {
                throw .malformed("\"addresses\" holds \(item.stringValue ?? item.typeName), not an address with a prefix length")
            }
            addresses.append(address)
        }
        guard let backend = BackendKind(rawValue: try string("backend")) else { throw .malformed("\"backend\" is not iptables or nftables") }
        let generation = try string("generation")
        guard generation.utf8.count == 7 else { throw .malformed("\"generation\" is not 7 hex digits") }
        guard let config = document["config"]?.objectValue else { throw .malformed("\"config\" is missing or not an object") }
        return PodRecord(attachment: attachment, addresses: addresses, backend: backend, generation: generation, config: config,
                         adopted: document["adopted"]?.boolValue ?? false)
    }
}

/// A record file randsnat cannot use; says why.
public enum RecordError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case unknownVersion(Int64)

    public var description: String {
        switch self {
        case .malformed(let reason): "the pod record is unusable: \(reason); DEL or GC of the attachment removes it"
        case .unknownVersion(let version):
            "the pod record has format version \(version); this randsnat reads version \(PodRecord.formatVersion) (an older binary after a newer one?)"
        }
    }
}

/// Where records live: files under the run directory on a node, a dictionary in tests. Every
/// method is called under the network lock of the record's network.
public protocol RecordStore {
    func read(_ attachment: Attachment) throws -> PodRecord?
    /// Replaces the attachment's record as a whole: a reader sees the old record or the new one.
    func write(_ record: PodRecord) throws
    /// Removes the attachment's record; a record that is not there counts as removed.
    func remove(_ attachment: Attachment) throws
    /// The records of one network; files it cannot read come back as problems, one sentence each.
    func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String])
    /// The names of the networks that have records.
    func networks() throws -> [String]
    /// Removes the temp files that writers which are gone left in the network's directory (an ADD
    /// killed between writing a record and renaming it); one sentence per file removed.
    func removeLeftoverTemps(of id: NetworkID) throws -> [String]
    /// Removes every file in the network's directory that has a record's name but is not the record
    /// of an attachment in `valid`, whatever it holds (one randsnat cannot trust: a link, a record
    /// of another pod); one sentence per file removed. GC's cleanup of what no record listing shows.
    func removeFiles(of id: NetworkID, notNamedFor valid: Set<Attachment>) throws -> [String]
}

extension RecordStore {
    /// A store without temp files has none to remove.
    public func removeLeftoverTemps(of id: NetworkID) throws -> [String] { [] }
    /// A store without files has none to remove.
    public func removeFiles(of id: NetworkID, notNamedFor valid: Set<Attachment>) throws -> [String] { [] }
}

/// No records: for callers that keep none (tests of other parts).
public struct NoRecords: RecordStore {
    public init() {}
    public func read(_ attachment: Attachment) throws -> PodRecord? { nil }
    public func write(_ record: PodRecord) throws {}
    public func remove(_ attachment: Attachment) throws {}
    public func records(of id: NetworkID) throws -> (records: [PodRecord], problems: [String]) { ([], []) }
    public func networks() throws -> [String] { [] }
}
