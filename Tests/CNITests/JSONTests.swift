import Testing
@testable import CNI

struct JSONTests {
    func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func parsesEveryKind() throws {
        let value = try parse(#" {"a":[1,-2,3.5,1e3,true,false,null],"s":"x\"\\\/\n\t\u00e9\ud83d\ude00","o":{}} "#)
        #expect(value["a"] == .array([.int(1), .int(-2), .double(3.5), .double(1000), .bool(true), .bool(false), .null]))
        #expect(value["s"] == .string("x\"\\/\n\té😀"))
        #expect(value["o"] == .object([:]))
    }

    @Test func serializesSortedAndEscaped() throws {
        let value = JSONValue.object(["b": .string("q\"\u{01}\n"), "a": .array([.int(1), .double(0.5), .null])])
        #expect(String(decoding: value.serialized(), as: UTF8.self) == #"{"a":[1,0.5,null],"b":"q\"\u0001\n"}"#)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func bigIntegersBecomeDoubles() throws {
        #expect(try parse("9223372036854775807") == .int(Int64.max))
        #expect(try parse("92233720368547758070") == .double(9.2233720368547758e19))
    }

    @Test(arguments: ["", " ", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "1e", "tru", "nul", "\"abc",
                      "\"\\x\"", "\"\\ud800\"", "\"a\u{01}b\"", "{} x", "[1 2]", "{1:2}", "1e999",
                      String(repeating: "[", count: 300) + String(repeating: "]", count: 300)])
    func rejectsBadJSON(text: String) {
        #expect(throws: JSONValue.SyntaxError.self) { try parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func errorsSayWhere() {
        let error = #expect(throws: JSONValue.SyntaxError.self) { try parse(#"{"a":tru}"#) }
        #expect(error?.description.contains("byte 5") == true)
    }
}
