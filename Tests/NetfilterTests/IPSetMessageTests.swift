import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import Netlink
@testable import RandSNATCore

/// ipset and ctnetlink replies read through the typed attribute names and the checked reader.
struct IPSetMessageTests {
    static func reply(_ build: (inout NetlinkRequest) -> Void) -> NetlinkReply {
        var message = NetlinkRequest(type: 0, flags: 0, sequence: 1, family: 2)
        build(&message)
        return NetlinkReply.parse(message.finished[...])[0]
    }

    static func member(_ message: inout NetlinkRequest, _ address: IPAddress, comment: String) {
        message.nested(IPSetAttribute.data) { data in
            IPSet.addAddress(&data, IPSetAttribute.ip, address)
            data.addString(IPSetAttribute.comment, comment)
        }
    }

    @Test func aListingsMembersAreRead() throws {
        let one = try #require(IPAddress("198.18.0.2")), two = try #require(IPAddress("2001:db8::5"))
        let reply = Self.reply { message in
            message.addString(IPSetAttribute.setName, "RANDSNAT-X")
            message.nested(IPSetAttribute.adt) {
                Self.member(&$0, one, comment: "net/c1/eth0")
                Self.member(&$0, two, comment: "net/c2/eth0")
            }
        }
        #expect(try IPSet.entries(in: reply) == [IPSet.Entry(address: one, prefix: nil, comment: "net/c1/eth0"),
                                                  IPSet.Entry(address: two, prefix: nil, comment: "net/c2/eth0")])
    }

    /// A member cut inside its address: the listing fails, it does not read as "no such member".
    @Test func aTruncatedMemberThrows() throws {
        let address = try #require(IPAddress("198.18.0.2"))
        let whole = Self.reply { message in message.nested(IPSetAttribute.adt) { Self.member(&$0, address, comment: "c") } }
        // The innermost attribute (the IPv4 address) claims 4 bytes more than it has; the lengths
        // around it are left as they were, so only the reader of the address nest can tell.
        var body = whole.body
        let at = try #require((0..<(body.count - 3)).first { body[$0] == 8 && body[$0 + 2] == UInt8(IPSET_ATTR_IPADDR_IPV4) })
        body[at] = 12
        let cut = NetlinkReply(type: whole.type, flags: whole.flags, sequence: whole.sequence, body: body)
        #expect(throws: NetfilterError.self) { try IPSet.entries(in: cut) }
    }

    @Test func ipsetsOwnNumbersAreSaidInWords() {
        // IPSET_ERR_HASH_FULL in linux/netfilter/ipset/ip_set_hash.h is IPSET_ERR_TYPE_SPECIFIC (4352).
        #expect(IPSet.describe(Int32(IPSET_ERR_TYPE_SPECIFIC.rawValue)) == "the set is full (maxelem reached)")
        #expect(IPSet.describe(Int32(IPSET_ERR_EXIST.rawValue)) == "the element already exists")
        #expect(IPSet.describe(1) == "Operation not permitted")
    }

    @Test func aConntrackEntryIsReadAndATruncatedOneThrows() throws {
        let source = try #require(IPAddress("198.18.0.2")), destination = try #require(IPAddress("203.0.113.9"))
        let node = try #require(IPAddress("198.19.0.1"))
        func tuple(_ message: inout NetlinkRequest, _ name: ConntrackAttribute, _ from: IPAddress, _ to: IPAddress, port: UInt16) {
            message.nested(name) { tuple in
                tuple.nested(ConntrackAttribute.Tuple.ip) {
                    $0.add(ConntrackAttribute.IP.v4Source, from.bytes)
                    $0.add(ConntrackAttribute.IP.v4Destination, to.bytes)
                }
                tuple.nested(ConntrackAttribute.Tuple.proto) {
                    $0.addU8(ConntrackAttribute.Proto.number.type, 6)
                    $0.add(ConntrackAttribute.Proto.destinationPort, [UInt8(port >> 8), UInt8(port & 0xFF)])
                }
            }
        }
        let reply = Self.reply { message in
            tuple(&message, .originalTuple, source, destination, port: 443)
            tuple(&message, .replyTuple, destination, node, port: 40000)
            message.addBE32(ConntrackAttribute.status, Conntrack.sourceNATBit)
        }
        let entry = try #require(try Conntrack.parse(reply, family: .ipv4))
        #expect(entry.originalSource == source && entry.originalDestination == destination && entry.replyDestination == node)
        #expect(entry.originalDestinationPort == 443 && entry.replyDestinationPort == 40000 && entry.proto == 6)
        #expect(entry.isSourceNATed)
        let cut = NetlinkReply(type: reply.type, flags: reply.flags, sequence: reply.sequence, body: Array(reply.body.dropLast(6)))
        #expect(throws: NetlinkError.self) { try Conntrack.parse(cut, family: .ipv4) }
    }
}
