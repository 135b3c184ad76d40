#!/usr/bin/env python3
"""Traffic helpers for the test bed, each bounded in time.

  peer.py serve PORT SECONDS        TCP server on [::]:PORT answering each client with the address it
                                    sees, for at most SECONDS
  peer.py ask HOST PORT             connect (3 s timeout) and print what the server saw
  peer.py load HOST PORT COUNT SECONDS
                                    at most COUNT fresh connections, one after another, for at most
                                    SECONDS; prints "attempts failures slowest_ms"
"""
import socket, sys, time

if sys.argv[1] == "serve":
    port, seconds = int(sys.argv[2]), float(sys.argv[3])
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", port))
    server.listen(256)
    deadline = time.time() + seconds
    while time.time() < deadline:
        server.settimeout(max(0.1, deadline - time.time()))
        try:
            conn, peer = server.accept()
        except socket.timeout:
            break
        address = peer[0]
        if address.startswith("::ffff:"):
            address = address[7:]
        try:
            conn.sendall((address + "\n").encode())
        except OSError:
            pass
        conn.close()
elif sys.argv[1] == "load":
    host, port, count, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    deadline = time.time() + seconds
    attempts = failures = 0
    slowest = 0.0
    while attempts < count and time.time() < deadline:
        attempts += 1
        start = time.time()
        try:
            conn = socket.create_connection((host, port), timeout=3)
            conn.recv(200)
            conn.close()
        except OSError:
            failures += 1
        slowest = max(slowest, time.time() - start)
    print("%d %d %.1f" % (attempts, failures, slowest * 1000))
else:
    host, port = sys.argv[2], int(sys.argv[3])
    try:
        conn = socket.create_connection((host, port), timeout=3)
        print(conn.recv(200).decode().strip())
    except OSError as error:
        print("FAILED: %s" % error)
        sys.exit(1)
