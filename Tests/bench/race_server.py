#!/usr/bin/env python3
"""The far end of the race benchmark: accepts TCP connections and answers UDP datagrams on PORT,
for at most SECONDS."""
import selectors, socket, sys, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port))
tcp.listen(4096)
tcp.setblocking(False)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
udp.setblocking(False)
selector = selectors.DefaultSelector()
selector.register(tcp, selectors.EVENT_READ)
selector.register(udp, selectors.EVENT_READ)
deadline = time.time() + seconds
while time.time() < deadline:
    for key, _ in selector.select(timeout=0.5):
        try:
            if key.fileobj is tcp:
                while True:
                    conn, _ = tcp.accept()
                    conn.close()
            else:
                while True:
                    data, peer = udp.recvfrom(16)
                    udp.sendto(b"a", peer)
        except (BlockingIOError, InterruptedError):
            pass
