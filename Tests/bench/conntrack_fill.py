#!/usr/bin/env python3
"""Fills the conntrack table of the network namespace it runs in with COUNT SNATed UDP entries, over
netlink (IPCTNL_MSG_CT_NEW with CTA_NAT_SRC, many messages per send: a conntrack exec per entry would
take an hour for a million). Entries: 198.18.a.b:sport -> 203.0.113.x / 198.51.100.x : dport, SNAT
to 203.0.113.1, over DESTINATIONS distinct (destination, port) tuples, timeout 1200 s. With
SNAT_PERCENT below 100, only that share of the entries is SNATed (the others are plain tracked flows,
as a node's pod-to-service or host traffic is), to measure what the kernel-side status filter skips.
Usage: conntrack_fill.py COUNT [DESTINATIONS [SNAT_PERCENT]]"""
import socket, struct, sys

NETLINK_NETFILTER = 12
IPCTNL_MSG_CT_NEW = 0
NFNL_SUBSYS_CTNETLINK = 1
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL = 1, 4, 0x400, 0x200
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_TIMEOUT, CTA_NAT_SRC = 1, 2, 3, 7, 6
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_NAT_V4_MINIP, CTA_NAT_V4_MAXIP = 1, 2
NESTED = 0x8000


def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def nest(kind, *children):
    return attr(kind | NESTED, b"".join(children))


def tuple_(kind, src, dst, sport, dport):
    return nest(kind, nest(CTA_TUPLE_IP, attr(CTA_IP_V4_SRC, src), attr(CTA_IP_V4_DST, dst)),
                nest(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, b"\x11"), attr(CTA_PROTO_SRC_PORT, struct.pack(">H", sport)),
                     attr(CTA_PROTO_DST_PORT, struct.pack(">H", dport))))


def main():
    count = int(sys.argv[1])
    destinations = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    snat_percent = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    snat = socket.inet_aton("203.0.113.1")
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 0))
    batch, sent, errors = [], 0, 0
    for i in range(count):
        src = bytes([198, 18, (i >> 16) & 0xFF, (i >> 8) & 0xFF])
        sport = 1024 + (i & 0xFF) * 200 + (i >> 24)
        d = i % destinations
        dst = bytes([203, 0, 113, 10 + d % 200]) if d < 200 * 100 else bytes([198, 51, 100, d % 250])
        dport = 1000 + d // 200
        body = (tuple_(CTA_TUPLE_ORIG, src, dst, sport, dport) + tuple_(CTA_TUPLE_REPLY, dst, src, dport, sport)
                + attr(CTA_TIMEOUT, struct.pack(">I", 1200)))
        if i % 100 < snat_percent:
            body += nest(CTA_NAT_SRC, attr(CTA_NAT_V4_MINIP, snat), attr(CTA_NAT_V4_MAXIP, snat))
        header = struct.pack("=BBH", socket.AF_INET, 0, 0)
        flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | (NLM_F_ACK if i == count - 1 else 0)
        message = struct.pack("=IHHII", 16 + len(header) + len(body), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, flags, i + 1, 0) + header + body
        batch.append(message)
        if len(batch) == 200 or i == count - 1:
            s.send(b"".join(batch))
            sent += len(batch)
            batch = []
            # Errors come back as NLMSG_ERROR; read what is there without waiting.
            while True:
                try:
                    reply = s.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                offset = 0
                while offset + 20 <= len(reply):
                    length, kind = struct.unpack_from("=IH", reply, offset)
                    if kind == 2 and struct.unpack_from("=i", reply, offset + 16)[0] != 0:
                        errors += 1
                    offset += (length + 3) & ~3
    print("sent %d, errors %d" % (sent, errors))


main()
