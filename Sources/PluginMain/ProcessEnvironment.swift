import CNI
internal import Glibc
import SystemCalls

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

    /// Reads stdin to EOF, stopping once more than `limit` bytes arrived (a read error ends it as EOF
    /// does: the input is then incomplete and fails to parse, with its own message).
    static func readStandardInput(limit: Int) -> (bytes: [UInt8], tooLarge: Bool) {
        let stdin = FileDescriptor(rawValue: 0)
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
        defer { chunk.deallocate() }
        while bytes.count <= limit, let count = try? stdin.read(into: chunk), count > 0 {
            bytes += chunk[0..<count]
        }
        return (bytes, bytes.count > limit)
    }

    static func write(_ text: String, to descriptor: Int32) { write(Array(text.utf8), to: descriptor) }

    /// Writes everything to stdout (1) or stderr (2); a write that fails (the reader is gone) is dropped.
    static func write(_ bytes: [UInt8], to descriptor: Int32) {
        try? FileDescriptor(rawValue: descriptor).writeAll(bytes)
    }
}
