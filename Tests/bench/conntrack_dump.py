#!/usr/bin/env python3
"""A bare ctnetlink dump of the conntrack table of the namespace it runs in: the request randsnat-agent
sends (IPCTNL_MSG_CT_GET, NLM_F_DUMP, optionally with CTA_STATUS/CTA_STATUS_MASK), the replies read and
dropped (only each message's header looked at, to find the end). What the kernel spends building the
dump is this process's system time, so `sys` is the kernel's floor for a scan of that table.
Usage: conntrack_dump.py [STATUS MASK]   (e.g. 16 16: SNATed entries only; 0 16: entries not SNATed)
Prints: entries N bytes B recvs R wall W user U sys S"""
import resource, socket, struct, sys, time

NETLINK_NETFILTER, SO_RCVBUFFORCE = 12, 33
CTA_STATUS, CTA_STATUS_MASK = 3, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3


def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def main():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    body = struct.pack("=BBH", 0, 0, 0)
    if len(sys.argv) > 2:
        body += attr(CTA_STATUS, struct.pack(">I", int(sys.argv[1], 0))) + attr(CTA_STATUS_MASK, struct.pack(">I", int(sys.argv[2], 0)))
    # IPCTNL_MSG_CT_GET of NFNL_SUBSYS_CTNETLINK, NLM_F_REQUEST | NLM_F_DUMP
    request = struct.pack("=IHHII", 16 + len(body), (1 << 8) | 1, 1 | 0x300, 7, 0) + body
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    s.send(request)
    buffer = bytearray(1 << 17)
    entries = total = recvs = 0
    done = False
    while not done:
        n = s.recv_into(buffer)
        recvs += 1
        total += n
        offset = 0
        while offset + 16 <= n:
            length, kind = struct.unpack_from("=IH", buffer, offset)
            if kind == NLMSG_ERROR and struct.unpack_from("=i", buffer, offset + 16)[0] != 0:
                sys.exit("the dump failed: errno %d" % -struct.unpack_from("=i", buffer, offset + 16)[0])
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                done = True
                break
            entries += 1
            offset += (length + 3) & ~3
    after, end = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    print("entries %d bytes %d recvs %d wall %.2f user %.2f sys %.2f" % (
        entries, total, recvs, end - start, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))


main()
