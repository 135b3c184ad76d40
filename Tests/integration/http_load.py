#!/usr/bin/env python3
"""Hostile clients of an HTTP endpoint, bounded in count and time (metrics_tests.sh).

http_load.py MODE HOST PORT COUNT SECONDS
  pipeline  one connection sends COUNT `GET /metrics` back to back and never reads an answer
  idle      COUNT connections that send nothing
  slow      COUNT connections: half send a request one byte every 0.2 s, half send a whole request
            and read the answer 16 bytes every 0.6 s
Prints "ready N" once its connections are open (N: how many), holds them for SECONDS, then prints
"closed-by-server N" (connections the server had closed by then) and exits."""
import select, socket, sys, time

mode, host, port, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def connect():
    s = socket.create_connection((host, port), timeout=5)
    s.setblocking(False)
    return s


def send_some(s, data):
    """Sends what the socket takes now; returns the bytes sent (0 when the server closed it)."""
    try:
        return s.send(data)
    except BlockingIOError:
        return 0
    except OSError:
        return -1


held = []
if mode == "pipeline":
    s = connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it never reads: keep its own buffer small
    data = REQUEST * count
    sent, deadline = 0, time.time() + seconds / 2
    while sent < len(data) and time.time() < deadline:
        n = send_some(s, data[sent:])
        if n < 0:
            break
        sent += n
        if n == 0:
            select.select([], [s], [], 0.1)
    held.append(s)
    print("ready 1 (%d of %d requests sent)" % (sent // len(REQUEST), count), flush=True)
elif mode in ("idle", "slow"):
    for i in range(count):
        held.append(connect())
    print("ready", len(held), flush=True)
else:
    sys.exit("unknown mode " + mode)

closed = set()
end = time.time() + seconds
if mode == "slow":
    for s in held[1::2]:
        send_some(s, REQUEST)
step = 0
while time.time() < end:
    step += 1
    time.sleep(0.2)
    if mode == "pipeline":
        continue  # it never reads
    for i, s in enumerate(held):
        if i in closed:
            continue
        try:
            if mode == "slow" and i % 2 == 0:
                # A header that never ends, one byte every 0.2 s.
                if send_some(s, b"X-Slow: " if step == 1 else b"a") < 0:
                    closed.add(i)
            elif mode == "idle" or step % 3 == 0:
                # idle: only notices the server's close; slow readers take 16 bytes every 0.6 s.
                if select.select([s], [], [], 0)[0] and s.recv(1 if mode == "idle" else 16) == b"":
                    closed.add(i)
        except BlockingIOError:
            pass
        except OSError:
            closed.add(i)
print("closed-by-server", len(closed), flush=True)
