// Fuzz target: addresses, CIDRs, address ranges and port ranges as they appear in configs and results.
// Oracles: IPAddress accepts exactly what glibc's inet_pton(3) accepts (AF_INET6 when the text holds
// a ':' byte, AF_INET otherwise) and reads the same bytes; CIDR and PodAddress are that address, one
// '/' byte and 1–3 decimal digits up to the family's bit count; AddressRange and PortRange split at
// the '-' byte; every value printed parses back to itself.
import Glibc
import RandSNATCore

/// inet_pton's reading of `text`, or nil.
func pton(_ text: [UInt8]) -> [UInt8]? {
    let family = text.contains(UInt8(ascii: ":")) ? AF_INET6 : AF_INET
    var out = [UInt8](repeating: 0, count: 16)
    let ok = (text + [0]).withUnsafeBufferPointer { source in
        source.withMemoryRebound(to: CChar.self) { inet_pton(family, $0.baseAddress, &out) }
    }
    return ok == 1 ? Array(out.prefix(family == AF_INET6 ? 16 : 4)) : nil
}

/// 1–`maxDigits` ASCII digits, nothing else.
func digits(_ bytes: [UInt8], maxDigits: Int) -> Int? {
    guard !bytes.isEmpty, bytes.count <= maxDigits, bytes.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
    return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // inet_pton reads a C string; Swift text is valid UTF-8. Other inputs say nothing about either.
    guard !bytes.contains(0), isValidUTF8(bytes) else { return 0 }
    let text = String(decoding: bytes, as: UTF8.self)

    let address = IPAddress(text)
    expect(address?.bytes == pton(bytes), "IPAddress(\(text.escapedBytes)) = \(address?.description ?? "nil"); inet_pton disagrees")
    if let address { expect(IPAddress(address.description) == address, "\(address) does not parse back") }

    let parts = byteSplit(bytes, UInt8(ascii: "/"))
    let cidr = CIDR(text)
    var expected: (bytes: [UInt8], prefix: Int)?
    if parts.count <= 2, let host = pton(parts[0]) {
        let bits = host.count * 8
        if parts.count == 1 { expected = (host, bits) } else if let prefix = digits(parts[1], maxDigits: 3), prefix <= bits { expected = (host, prefix) }
    }
    expect((cidr?.address.masked(to: cidr!.prefix).bytes, cidr?.prefix) == (expected.map { IPAddress(family: $0.bytes.count == 4 ? .ipv4 : .ipv6, bytes: $0.bytes)!.masked(to: $0.prefix).bytes }, expected?.prefix),
           "CIDR(\(text.escapedBytes)) = \(cidr?.description ?? "nil"); the byte reference disagrees")
    if let cidr { expect(CIDR(cidr.description) == cidr, "\(cidr) does not parse back") }
    let pod = PodAddress(text)
    expect((pod != nil) == (cidr != nil && parts.count == 2), "PodAddress(\(text.escapedBytes)) disagrees with CIDR and the '/' bytes")
    if let pod {
        expect(pod.address.bytes == pton(parts[0]) && pod.prefix == cidr?.prefix, "PodAddress(\(text.escapedBytes)) = \(pod)")
        expect(PodAddress(pod.description) == pod, "\(pod) does not parse back")
    }

    let ends = byteSplit(bytes, UInt8(ascii: "-"))
    if let range = AddressRange(text) {
        expect(ends.count <= 2 && range.first.bytes == pton(ends[0]) && range.last.bytes == pton(ends[ends.count - 1]),
               "AddressRange(\(text.escapedBytes)) = \(range); the '-' bytes and inet_pton disagree")
        expect(AddressRange(range.description) == range, "\(range) does not parse back")
    } else if ends.count <= 2, let first = pton(ends[0]), let last = pton(ends[ends.count - 1]), first.count == last.count {
        expect(last.lexicographicallyPrecedes(first), "AddressRange(\(text.escapedBytes)) refused; the byte reference reads it")
    }
    let ports = ends.map { digits($0, maxDigits: 5) }
    let portsValid = ends.count <= 2 && ports.allSatisfy { $0 != nil } && ports[0]! >= 1 && ports[0]! <= ports[ports.count - 1]! && ports[ports.count - 1]! <= 65535
    let range = PortRange(text)
    expect((range != nil) == portsValid, "PortRange(\(text.escapedBytes)) = \(range?.description ?? "nil"); the byte reference disagrees")
    if let range {
        expect(Int(range.first) == ports[0]! && Int(range.last) == ports[ports.count - 1]!, "PortRange(\(text.escapedBytes)) = \(range)")
        expect(PortRange(range.description) == range, "\(range) does not parse back")
    }
    return 0
}
