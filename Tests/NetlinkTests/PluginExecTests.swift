import Glibc
import Testing
@testable import Netlink

/// Running a delegated plugin: a plugin that exits without reading its stdin.
struct PluginExecTests {
    /// A script in a fresh directory; removed by the caller.
    func script(_ body: String) throws -> String {
        var template = Array("/tmp/randsnat-exec-XXXXXX".utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        let path = directory + "/plugin"
        let file = try #require(fopen(path, "w"))
        fputs("#!/bin/sh\n" + body + "\n", file)
        fclose(file)
        chmod(path, 0o755)
        return path
    }

    @Test func aPluginThatDoesNotReadItsStdinDoesNotKillRandsnat() throws {
        // More than a pipe holds (64 KiB), so the write meets the closed pipe: EPIPE, not SIGPIPE.
        let path = try script(#"grep SigIgn /proc/$$/status; exit 3"#)
        defer { unlink(path); rmdir(String(path.dropLast("/plugin".count))) }
        let input = [UInt8](repeating: UInt8(ascii: " "), count: 1 << 20)
        let (status, output) = try PluginExec.spawn(path, environment: [], input: input).finish(plugin: "test")
        #expect(status == 3)
        // The plugin gets SIGPIPE's default action back (bit 13 - 1 of SigIgn is clear).
        let text = String(decoding: output, as: UTF8.self)
        let mask = text.split(separator: "\t").last.flatMap { UInt64($0.filter(\.isHexDigit), radix: 16) }
        #expect(mask.map { $0 & (1 << (UInt64(SIGPIPE) - 1)) == 0 } == true, "\(text)")
    }
}
