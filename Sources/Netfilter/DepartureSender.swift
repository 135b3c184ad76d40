internal import Glibc
import RandSNATCore
import SystemCalls

/// Sends `NFTDeparture` packets from a raw IP socket (IP_HDRINCL / IPV6_HDRINCL: the packet is
/// written whole, source address included). The one place randsnat writes IP packets itself.
enum DepartureSender {
    enum Outcome: Equatable {
        /// A rule dropped it (the kernel answers EPERM for a packet a hook dropped): the departure
        /// chain took it.
        case dropped
        /// Nothing dropped it: no departure rule took it (the packet goes to the loopback
        /// address, where nobody listens on protocol 253).
        case sent
        /// The socket could not be made or the packet not sent (no CAP_NET_RAW, say).
        case failed(Errno)
    }

    /// Sends `packets` (`NFTDeparture.packet`s of `family`) to the family's loopback address from one
    /// socket: `.dropped` when a rule dropped every one, else the first other outcome.
    static func send(_ packets: [[UInt8]], family: Family) -> Outcome {
        guard !packets.isEmpty else { return .dropped }
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(NFTDeparture.protocolNumber))
        guard fd >= 0 else { return .failed(.current) }
        defer { close(fd) }
        var one: Int32 = 1
        let (level, option) = family == .ipv4 ? (Int32(IPPROTO_IP), IP_HDRINCL) : (Int32(IPPROTO_IPV6), IPV6_HDRINCL)
        guard setsockopt(fd, level, option, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else { return .failed(.current) }
        var outcome = Outcome.dropped
        for packet in packets {
            let sent = send(packet, family: family, on: fd)
            if outcome == .dropped { outcome = sent }
        }
        return outcome
    }

    private static func send(_ packet: [UInt8], family: Family, on fd: Int32) -> Outcome {
        let destination = NFTDeparture.destination(family).bytes
        func send<Address>(to address: Address) -> Int {
            var address = address
            return packet.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<Address>.size))
                    }
                }
            }
        }
        let sent: Int
        switch family {
        case .ipv4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: destination) }
            sent = send(to: address)
        case .ipv6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: destination) }
            sent = send(to: address)
        }
        if sent >= 0 { return .sent }
        let error = Errno.current
        return error == Errno(EPERM) ? .dropped : .failed(error)
    }
}
