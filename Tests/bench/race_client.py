#!/usr/bin/env python3
"""One pod's share of the race benchmark: COUNT fresh connections (TCP) or fresh-socket request/reply
exchanges (UDP) to HOST:PORT, as fast as it can, starting at the wall-clock time START, for at most
SECONDS. Prints one JSON line: attempts, failures, latencies in ms."""
import json, socket, sys, time

kind, host, port, count, start, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
while time.time() < start:
    time.sleep(0.001)
deadline = time.time() + seconds
attempts = failures = 0
latencies = []
while attempts < count and time.time() < deadline:
    attempts += 1
    begin = time.perf_counter()
    try:
        if kind == "tcp":
            s = socket.create_connection((host, port), timeout=3)
            s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.sendto(b"q", (host, port))
            s.recvfrom(16)
            s.close()
        latencies.append((time.perf_counter() - begin) * 1000)
    except OSError:
        failures += 1
        latencies.append((time.perf_counter() - begin) * 1000)
print(json.dumps({"attempts": attempts, "failures": failures, "latencies": latencies}))
