#!/usr/bin/env python3
"""Server-closes-first TCP, for the PAWS test and benchmark.

  paws.py serve PORT SECONDS
      accepts on PORT, writes one byte and closes first (so this side holds TIME_WAIT), for SECONDS.
  paws.py connect HOST PORT COUNT THREADS SECONDS [SLOW_MS]
      THREADS threads open fresh connections to HOST:PORT (each: connect, read to EOF, close) until
      COUNT connections were tried or SECONDS passed; prints one JSON line: attempts, ok, failed,
      slow (connect took SLOW_MS or more, default 200: a SYN was retransmitted), seconds, latencies (ms).
  paws.py counters [NAME...]
      the TcpExt/Tcp counters of this network namespace (/proc/net/netstat, /proc/net/snmp) as JSON.
"""
import json, socket, sys, threading, time


def serve(port, seconds):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(4096)
    server.settimeout(0.5)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        try:
            conn.sendall(b"x")
        except OSError:
            pass
        conn.close()


def connect(host, port, count, threads, seconds, slow_ms):
    lock = threading.Lock()
    state = {"attempts": 0, "ok": 0, "failed": 0, "slow": 0, "latencies": []}
    deadline = time.time() + seconds

    def worker():
        while True:
            with lock:
                if state["attempts"] >= count or time.time() >= deadline:
                    return
                state["attempts"] += 1
            begin = time.perf_counter()
            ok = True
            try:
                s = socket.create_connection((host, port), timeout=8)
                connected = (time.perf_counter() - begin) * 1000
                s.settimeout(8)
                while s.recv(64):
                    pass
                s.close()
            except OSError:
                ok = False
                connected = (time.perf_counter() - begin) * 1000
            with lock:
                state["ok" if ok else "failed"] += 1
                state["slow"] += connected >= slow_ms
                state["latencies"].append(round(connected, 2))

    started = time.time()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    state["seconds"] = round(time.time() - started, 2)
    print(json.dumps(state))


def counters(names):
    values = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for head, row in zip(lines[0::2], lines[1::2]):
            prefix, keys = head.split(":", 1)
            for key, value in zip(keys.split(), row.split(":", 1)[1].split()):
                values[prefix + key] = int(value)
    print(json.dumps({n: values.get(n, 0) for n in names} if names else values))


if __name__ == "__main__":
    verb = sys.argv[1]
    if verb == "serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
    elif verb == "connect":
        connect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
                float(sys.argv[7]) if len(sys.argv) > 7 else 200)
    elif verb == "counters":
        counters(sys.argv[2:])
