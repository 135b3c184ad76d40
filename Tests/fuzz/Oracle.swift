// Shared by every fuzz target (compiled into each; see run.sh). No Foundation: the targets link the
// same Swift as the shipped binary.

/// Stops the run with `message` on stderr: libFuzzer sees the trap, reports a crash and keeps the input.
func violated(_ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("oracle violated: \(message())", file: file, line: line)
}

/// Checks an oracle.
func expect(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition { violated(message(), file: file, line: line) }
}

/// The reference split: the pieces between `separator` bytes, as Go's strings.Split (and libcni) cut.
func byteSplit(_ bytes: some Collection<UInt8>, _ separator: UInt8, maxSplits: Int = .max) -> [[UInt8]] {
    var pieces: [[UInt8]] = [[]]
    for byte in bytes {
        if byte == separator && pieces.count <= maxSplits { pieces.append([]) } else { pieces[pieces.count - 1].append(byte) }
    }
    return pieces
}

/// Text as bytes, for comparisons that `String`'s `==` (canonical equivalence) would blur.
func utf8(_ text: some StringProtocol) -> [UInt8] { Array(text.utf8) }

/// What `String(decoding:as:)` makes of these bytes, as bytes (invalid UTF-8 becomes U+FFFD).
func repaired(_ bytes: some Collection<UInt8>) -> [UInt8] { Array(String(decoding: bytes, as: UTF8.self).utf8) }

/// Whether `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
func isValidUTF8(_ bytes: some Collection<UInt8>) -> Bool {
    var iterator = bytes.makeIterator()
    while let lead = iterator.next() {
        let (count, low, high): (Int, UInt8, UInt8)
        switch lead {
        case 0x00...0x7F: continue
        case 0xC2...0xDF: (count, low, high) = (1, 0x80, 0xBF)
        case 0xE0: (count, low, high) = (2, 0xA0, 0xBF)
        case 0xED: (count, low, high) = (2, 0x80, 0x9F)
        case 0xE1...0xEC, 0xEE...0xEF: (count, low, high) = (2, 0x80, 0xBF)
        case 0xF0: (count, low, high) = (3, 0x90, 0xBF)
        case 0xF1...0xF3: (count, low, high) = (3, 0x80, 0xBF)
        case 0xF4: (count, low, high) = (3, 0x80, 0x8F)
        default: return false
        }
        for index in 0..<count {
            guard let next = iterator.next() else { return false }
            if index == 0 ? !(low...high).contains(next) : !(0x80...0xBF).contains(next) { return false }
        }
    }
    return true
}
