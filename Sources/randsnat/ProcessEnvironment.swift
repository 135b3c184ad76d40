import CNI
import Glibc

/// The process's environment, stdin and stdout, through libc (no Foundation on the start-up path).
enum ProcessEnvironment {
    /// The variables by name, for randsnat's own lookups.
    static func read() -> [String: String] {
        var variables: [String: String] = [:]
        for entry in entries() {
            if let (name, value) = Environment.variable(fromEntry: entry) { variables[name] = value }
        }
        return variables
    }

    /// Every `environ` entry, "NAME=VALUE", as its bytes (passed on to delegated plugins unchanged).
    static func entries() -> [[UInt8]] {
        var entries: [[UInt8]] = []
        var pointer = environ
        while let entry = pointer.pointee {
            entries.append(Array(UnsafeRawBufferPointer(start: entry, count: strlen(entry))))
            pointer += 1
        }
        return entries
    }

    /// Reads stdin to EOF, stopping once more than `limit` bytes arrived.
    static func readStandardInput(limit: Int) -> (bytes: [UInt8], tooLarge: Bool) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return (bytes, bytes.count > limit)
    }

    static func write(_ text: String, to descriptor: Int32) { write(Array(text.utf8), to: descriptor) }

    static func write(_ bytes: [UInt8], to descriptor: Int32) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}
