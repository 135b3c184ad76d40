import Testing
@testable import Netlink

/// The attribute reader on whole, truncated and garbage input: it returns whole attributes or
/// throws, never reads past the end, never traps.
struct AttributeReaderTests {
    /// nil expected: the reader must throw.
    static let rows: [(name: String, bytes: [UInt8], expected: [NetlinkAttribute]?)] = [
        ("empty", [], []),
        ("one u8, padded", [5, 0, 1, 0, 42, 0, 0, 0], [NetlinkAttribute(type: 1, payload: [42])]),
        ("the last attribute unpadded at the end", [5, 0, 1, 0, 42], [NetlinkAttribute(type: 1, payload: [42])]),
        ("flags are not part of the type", [8, 0, 2, 0xC0, 1, 2, 3, 4], [NetlinkAttribute(type: 2, payload: [1, 2, 3, 4])]),
        ("an empty payload", [4, 0, 7, 0], [NetlinkAttribute(type: 7, payload: [])]),
        ("two attributes", [5, 0, 1, 0, 9, 0, 0, 0, 6, 0, 2, 0, 1, 2, 0, 0],
         [NetlinkAttribute(type: 1, payload: [9]), NetlinkAttribute(type: 2, payload: [1, 2])]),
        ("trailing zero padding", [5, 0, 1, 0, 9, 0, 0, 0, 0, 0], [NetlinkAttribute(type: 1, payload: [9])]),
        ("a header cut short", [5, 0, 1], nil),
        ("a length below the header's", [2, 0, 1, 0, 9, 9, 9, 9], nil),
        ("a zero length", [0, 0, 1, 0], nil),
        ("a length past the end", [12, 0, 1, 0, 1, 2, 3, 4], nil),
        ("a whole attribute, then one past the end", [5, 0, 1, 0, 9, 0, 0, 0, 200, 0, 2, 0, 1], nil),
        ("the largest length on a short payload", [0xFF, 0xFF, 1, 0, 1, 2, 3, 4], nil),
    ]

    @Test(arguments: rows.indices)
    func table(_ index: Int) throws {
        let row = Self.rows[index]
        // Read from the middle of a larger buffer: the reader must keep to its slice.
        let framed = [0xAA, 0xAA] + row.bytes + [0xBB, 0xBB, 0xBB]
        let slice = framed[2..<(2 + row.bytes.count)]
        if let expected = row.expected {
            #expect(try NetlinkAttribute.attributes(in: slice) == expected, "\(row.name)")
        } else {
            #expect(throws: NetlinkError.self, "\(row.name)") { try NetlinkAttribute.attributes(in: slice) }
            // The lenient reader keeps the whole attributes before the fault.
            #expect(NetlinkAttribute.parse(slice).allSatisfy { $0.payload.count <= row.bytes.count }, "\(row.name)")
        }
    }

    @Test func aTruncatedNestThrowsWhereTheOuterAttributeIsWhole() throws {
        let outer = try NetlinkAttribute.attributes(in: [12, 0, 2, 0x80, 9, 0, 1, 0, 42, 0, 0, 0][...])
        #expect(outer.count == 1)
        #expect(throws: NetlinkError.self) { try outer[0].nestedAttributes() }
        #expect(outer[0].nested.isEmpty)
    }

    @Test func typedAccessorsOnShortPayloadsAreNil() {
        let short = NetlinkAttribute(type: 1, payload: [1])
        #expect(short.be16 == nil && short.be32 == nil && short.u32 == nil)
        #expect(NetlinkAttribute(type: 1, payload: []).u8 == nil)
    }

    /// Random bytes, with a fixed seed: every outcome is whole attributes inside the input, or an
    /// error; the messages' reader likewise.
    @Test func garbageNeverTraps() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        var thrown = 0
        for round in 0..<3000 {
            let length = round % 70
            // Small lengths are likelier to be near-valid: bias the first byte of each word down.
            let bytes = (0..<length).map { $0 % 4 == 0 ? next() % 24 : ($0 % 4 == 1 ? 0 : next()) }
            do {
                let attributes = try NetlinkAttribute.attributes(in: bytes[...])
                #expect(attributes.reduce(0) { $0 + 4 + $1.payload.count } <= length)
                for attribute in attributes { _ = try? attribute.nestedAttributes() }
            } catch {
                thrown += 1
            }
            _ = NetlinkReply.parse(bytes[...])
        }
        #expect(thrown > 0 && thrown < 3000, "the input mixes valid and invalid attribute runs")
    }

    @Test func nestedClosuresWriteWhatBeginAndEndWrite() {
        struct Name: NetlinkAttributeName { let type: UInt16 }
        var closures = NetlinkRequest(type: 1, flags: 1, sequence: 1, family: 2)
        closures.nested(Name(type: 7)) { $0.nested(Name(type: 8)) { $0.addBE32(Name(type: 9), 0x10) } }
        var calls = NetlinkRequest(type: 1, flags: 1, sequence: 1, family: 2)
        calls.beginNested(7)
        calls.beginNested(8)
        calls.addBE32(9, 0x10)
        calls.endNested()
        calls.endNested()
        #expect(closures.finished == calls.finished)
        #expect(Array(closures.finished[20...]) == [16, 0, 7, 0x80, 12, 0, 8, 0x80, 8, 0, 9, 0x40, 0, 0, 0, 0x10])
    }

    @Test func theNetfilterHeaderIsBuiltOnce() {
        let typed = NetlinkRequest(NetfilterMessageType(.ctnetlink, command: 2), flags: [.request, .ack], sequence: 3,
                                   header: NetfilterHeader(family: 10, version: 1, resourceID: 0x0A0B))
        #expect(Array(typed.finished[4..<8]) == [0x02, 0x01, 0x05, 0x00])
        #expect(Array(typed.finished[16..<20]) == [10, 1, 0x0A, 0x0B])
        #expect(NetfilterSubsystem.ipset.rawValue == 6 && NetfilterSubsystem.nftables.rawValue == 10)
    }
}
