// Fuzz target: JSON text → JSONValue → JSON text.
// Oracles: (1) JSONValue.parse accepts exactly what an independent byte-level reference parser
// accepts, and gives the same tree, member names and strings compared as bytes (an object keeps
// every member whose name differs in bytes, the last of equal ones); (2) serialized() parses back to
// an equal value and is stable; pretty() parses back to an equal value.
import CNI

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let parsed = try? JSONValue.parse(bytes)
    let reference = ReferenceParser.parse(bytes)
    guard let value = parsed else {
        expect(reference == nil, "JSONValue.parse refused what the reference reads: \(String(decoding: bytes, as: UTF8.self).escapedBytes)")
        return 0
    }
    guard let reference else { violated("JSONValue.parse accepted what the reference refuses: \(String(decoding: bytes, as: UTF8.self).escapedBytes)") }
    expect(Reference(value) == reference, "JSONValue.parse and the reference read different values from \(String(decoding: bytes, as: UTF8.self).escapedBytes)")
    let text = value.serialized()
    guard let again = try? JSONValue.parse(text) else { violated("serialized() is not JSON: \(String(decoding: text, as: UTF8.self).escapedBytes)") }
    expect(again == value, "serialized() does not parse back to the same value")
    expect(again.serialized() == text, "serialized() is not stable")
    expect((try? JSONValue.parse(value.pretty())) == value, "pretty() does not parse back to the same value")
    return 0
}
