import CNI

extension CNICacheEntry {
    /// The largest libcni cache file read. An entry holds the config the runtime passed (at most
    /// `Dispatcher.maxInputBytes`, or randsnat refused it) as base64 (4/3 of it), and the result.
    public static let maxFileBytes = 3 * Dispatcher.maxInputBytes
}
