import CNI

/// Where randsnat reads libcni's result cache: files on a node, a dictionary in tests.
public protocol LibcniCacheSource {
    /// A value that changes whenever a file is added to or removed from the cache (the directory's
    /// modification time); nil when it cannot be told (the cache is then read every time).
    func version() -> Int64?
    /// The names of the cache's files; nil when there is no cache there.
    func fileNames() throws -> [String]?
    /// One file's bytes, read up to `LibcniCache.entryLimit`; a file that is not a regular file, or is
    /// larger, is refused.
    func read(_ fileName: String) -> Result<[UInt8], CacheEntryError>
}

extension LibcniCacheSource {
    /// The named file, read and parsed.
    public func entry(_ fileName: String) -> Result<CachedAttachment, CacheEntryError> {
        read(fileName).flatMap { bytes in Result { () throws(CacheEntryError) in try CachedAttachment.parse(bytes, fileName: fileName) } }
    }
}

/// One network's pods that libcni's cache holds and randsnat has no record of: randsnat never saw
/// their ADD, so they have no SNAT until the agent adopts them (STATUS and doctor report them).
public struct NeverSeenPods: Equatable, Sendable {
    public let network: String
    /// The cache files of those pods.
    public var fileNames: [String] = []
    /// Files named for the network that cannot be read as an entry, each "FILE: why".
    public var unreadable: [String] = []

    public init(network: String) { self.network = network }

    public var isEmpty: Bool { fileNames.isEmpty && unreadable.isEmpty }

    /// One sentence per kind, naming the files.
    public var sentences: [String] {
        var lines: [String] = []
        if !fileNames.isEmpty {
            lines.append("network \"\(network)\": \(fileNames.count) pod(s) in libcni's cache have no SNAT: randsnat never saw their ADD (\(fileNames.joined(separator: ", "))); "
                         + "the agent adopts them; while it cannot, its log and randsnat_network_pods_unadopted say why")
        }
        for line in unreadable {
            lines.append("network \"\(network)\": libcni's cache entry \(line); its pod may have no SNAT")
        }
        return lines
    }
}

extension LibcniCacheSource {
    /// The entries of `network` (by file name, then by content) that have no record in `recorded`.
    /// Reads only the files of unrecorded names: none on a node where every pod has its record.
    /// - Parameter recorded: the cache file names of the network's recorded attachments.
    public func neverSeen(network: String, recorded: Set<String>, in names: [String]) -> NeverSeenPods {
        var found = NeverSeenPods(network: network)
        let prefix = Array((network + "-").utf8)
        for name in names.sorted() where name.utf8.starts(with: prefix) && !recorded.contains(name) {
            switch entry(name) {
            case .success(let cached):
                if cached.attachment.network.utf8Equals(network) { found.fileNames.append(name) }
            case .failure(let error):
                if error.network.map({ $0.utf8Equals(network) }) ?? true { found.unreadable.append("\(name): \(error)") }
            }
        }
        return found
    }
}
