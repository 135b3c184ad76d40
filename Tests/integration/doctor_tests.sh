# `randsnat doctor` on test namespaces: each condition set up for real, then what doctor says.

doctor() { "$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 0 --cni-cache "$CNI_CACHE_DIR" "$@"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

test_doctor_reports_each_condition() {
    local out
    out=$(doctor); expect_eq "an empty node is healthy (exit 0)" "$?" "0"
    expect_contains "it says which netfilter the node uses" "$out" "netfilter: iptables-legacy"
    out=$("$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 0.3 --json)
    expect_eq "--interval gives counter deltas" "$(printf '%s' "$out" | json_get 'd["conntrack"]["insert_failed"]["delta"]')" "0"
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null; pod_add "$list" 2 >/dev/null
    out=$(doctor --json); expect_eq "with randsnat's pods it is healthy" "$?" "0"
    expect_eq "it lists the network and its pods" "$(printf '%s' "$out" | json_get '[(n["name"], n["family"], n["pods"]) for n in d["networks"]]')" \
        "[('$T-n', 'ipv4', 2), ('$T-n', 'ipv6', 2)]"
    expect_eq "randsnat's rules are fully random" "$(printf '%s' "$out" | json_get 'sorted(set((r["randsnat"], r["randomFully"]) for r in d["snatRules"]))')" "[(True, True)]"
    # A member whose pod the runtime does not know (its libcni cache entry is gone).
    rm "$CNI_CACHE_DIR/$T-n-c2-$RUN-eth0"
    out=$(doctor); expect_eq "an orphan member is a warning (exit 1)" "$?" "1"
    expect_contains "it names the orphan" "$out" "198.18.0.3 ($T-n/c2-$RUN/eth0)"
    pod_del "$list" 2 >/dev/null
    # Somebody else's MASQUERADE without --random-fully, after randsnat's jump.
    in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 10.9.0.0/16 -j MASQUERADE
    out=$(doctor); expect_eq "a foreign rule without --random-fully is a warning" "$?" "1"
    expect_contains "it is named" "$out" "iptables-legacy nat POSTROUTING rule 2: MASQUERADE without --random-fully"
    # ... and one before randsnat's jump: it takes pod traffic first.
    in_ns "$NODE" iptables-legacy -t nat -I POSTROUTING 1 -o "${T}e0" -j MASQUERADE
    out=$(doctor); expect_eq "a rule that shadows randsnat's is a problem (exit 2)" "$?" "2"
    expect_contains "it says so" "$out" "MASQUERADE without --random-fully, and it runs before randsnat's rule"
    in_ns "$NODE" iptables-legacy -t nat -D POSTROUTING 1
    # A kube-proxy-like chain jumped to before randsnat: its MASQUERADE may take pod traffic first.
    in_ns "$NODE" iptables-legacy -t nat -N KUBE-POSTROUTING
    in_ns "$NODE" iptables-legacy -t nat -A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully
    in_ns "$NODE" iptables-legacy -t nat -I POSTROUTING 1 -j KUBE-POSTROUTING
    out=$(doctor)
    expect_contains "a chain jumped to before randsnat is reported" "$out" "nat KUBE-POSTROUTING rule 1: MASQUERADE runs before randsnat's rule"
    # nf_tables holds nat rules too.
    in_ns "$NODE" nft add table ip other
    in_ns "$NODE" nft add chain ip other post '{ type nat hook postrouting priority 100; }'
    in_ns "$NODE" nft add rule ip other post ip saddr 10.8.0.0/16 masquerade
    out=$(doctor)
    expect_contains "nf_tables' masquerade is listed" "$out" "nftables ip other post #1 masquerade (no --random-fully)"
    expect_contains "both netfilters holding nat rules is reported" "$out" "both iptables-legacy"
    out=$(doctor --prometheus)
    expect_contains "--prometheus: health" "$out" "randsnat_health 1"
    expect_contains "--prometheus: pods per network" "$out" "randsnat_pods{network=\"$T-n\",family=\"ipv4\",backend=\"iptables\"} 1"
    pod_del "$list" 1 >/dev/null
}

test_doctor_sees_port_pressure() {
    # 100 SNAT ports toward ext; a pod opens 95 UDP flows to one ext address:port.
    local list; list=$(conflist "$T-n" '"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    in_ns "$T-pod1" python3 -c '
import socket
for port in range(41000, 41095):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port)); s.sendto(b"x", ("203.0.113.10", 9999)); s.close()'
    local out; out=$(doctor --json); local rc=$?
    expect_eq "95 of 100 ports in use is a problem (exit 2)" "$rc" "2"
    expect_eq "the busiest destination is ext's address and port" \
        "$(printf '%s' "$out" | json_get '[(p["destination"], p["port"], p["proto"], p["entries"], p["capacity"]) for p in d["portPressure"]][0]')" \
        "('203.0.113.10', 9999, 'udp', 95, 100)"
    expect_contains "the finding says what to do" "$(doctor)" "near exhaustion"
    pod_del "$list" 1 >/dev/null
}

test_doctor_sees_insert_failed_rising() {
    # 100 SNAT ports, 130 UDP flows to one destination while doctor watches: the flows past the
    # range cannot get a unique tuple, conntrack's insert fails, and doctor sees the counter rise.
    local list; list=$(conflist "$T-n" '"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    "$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 4 --json --cni-cache "$CNI_CACHE_DIR" > "$WORK/doctor.json" &
    local watcher=$!
    sleep 1
    in_ns "$T-pod1" python3 -c '
import socket
for port in range(41000, 41130):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port)); s.sendto(b"x", ("203.0.113.10", 9999)); s.close()'
    wait "$watcher"
    expect_eq "insert_failed rising during the interval is a problem (exit 2)" "$?" "2"
    local rose; rose=$(json_get 'd["conntrack"]["insert_failed"]["delta"]' < "$WORK/doctor.json")
    expect "doctor saw insert_failed rise ($rose)" test "${rose:-0}" -gt 0
    expect_contains "the finding says so" "$(json_get '[f["text"] for f in d["findings"]]' < "$WORK/doctor.json")" "insert_failed rose by"
    pod_del "$list" 1 >/dev/null
}

# ts_probe: the kernel's per-port timestamp offsets, measured apart from randsnat (python, a fresh
# namespace): "True" when two loopback connections from two source ports read different TCP_TIMESTAMPs.
ts_probe() {
    unshare -n python3 -c '
import socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(4)
clients = [socket.create_connection(server.getsockname()) for _ in range(2)]
a, b = (c.getsockopt(socket.IPPROTO_TCP, 24) & 0xffffffff for c in clients)   # TCP_TIMESTAMP
print(min((a - b) % 2**32, (b - a) % 2**32) > 1000)'
}

test_doctor_sees_pod_tcp_timestamps() {
    local list; list=$(conflist "$T-n" '"portRange":"40000-40049"')
    local keyed="$WORK/keyed.conflist"
    sed 's/"portRange":"40000-40049"/"portRange":"40000-40049","podTCPTimestamps":2/' "$list" > "$keyed"
    pod_add "$keyed" 1 >/dev/null
    local out; out=$(doctor --json); local rc=$?
    expect_eq "a pod at its configured value is healthy (exit 0)" "$rc" "0"
    expect_eq "the probe agrees with a measurement apart from randsnat" "$(printf '%s' "$out" | json_get 'd["tcpTimestamps"]["perPortOffsets"]')" "$(ts_probe)"
    expect_eq "the probe's control (no offsets) readings agree" "$(printf '%s' "$out" | json_get 'abs(d["tcpTimestamps"]["probeControl"][0] - d["tcpTimestamps"]["probeControl"][1]) <= 1000')" "True"
    expect_eq "the network's configured value and its pods' values" \
        "$(printf '%s' "$out" | json_get '[(n["network"], n["configured"], n["pods"]) for n in d["podTimestamps"]]')" "[('$T-n', 2, {'2': 1})]"
    in_ns "$T-pod1" sysctl -qw net.ipv4.tcp_timestamps=1
    out=$(doctor); rc=$?
    expect_eq "a pod changed behind randsnat's back is a warning (exit 1)" "$rc" "1"
    expect_contains "it is named" "$out" "1 pods have net.ipv4.tcp_timestamps=1 while podTCPTimestamps says 2"
    expect_contains "--prometheus: pods per value" "$(doctor --prometheus)" "randsnat_pod_tcp_timestamps_pods{network=\"$T-n\",value=\"1\"} 1"
    pod_del "$keyed" 1 >/dev/null
    # A pod with the default timestamps opens server-closes-first connections through 50 SNAT ports
    # while doctor watches: its SYN retransmits (the PAWS rejections' cost) rise, and doctor says so.
    pod_add "$list" 2 >/dev/null
    ( in_ns "$EXT" timeout 40 python3 "$HERE/paws.py" serve 9101 40 & )
    sleep 0.3
    "$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 8 --json --cni-cache "$CNI_CACHE_DIR" > "$WORK/doctor.json" &
    local watcher=$!
    sleep 1
    in_ns "$T-pod2" python3 "$HERE/paws.py" connect 203.0.113.10 9101 300 16 6 >/dev/null
    wait "$watcher"; rc=$?
    local pod; pod=$(in_ns "$T-pod2" python3 "$HERE/paws.py" counters TcpExtTCPSynRetrans | json_get 'd["TcpExtTCPSynRetrans"]')
    local rejected; rejected=$(in_ns "$EXT" python3 "$HERE/paws.py" counters TcpExtPAWSTimewait | json_get 'd["TcpExtPAWSTimewait"]')
    local seen; seen=$(json_get '[(n["synRetransmits"]["total"], n["synRetransmits"]["delta"]) for n in d["podTimestamps"]][0]' < "$WORK/doctor.json")
    echo "    server PAWSTimewait $rejected, pod TcpExtTCPSynRetrans $pod, doctor (total, delta) $seen"
    expect "the server rejected SYNs by PAWS ($rejected)" test "${rejected:-0}" -gt 0
    expect_eq "doctor's SYN retransmits are the pod's own counter, all during the interval" "$seen" "($pod, $pod)"
    # (The 50 ports full of conntrack TIME_WAIT entries are also reported, as port pressure: exit 2.)
    expect "SYN retransmits rising with per-port offsets is at least a warning (exit $rc)" test "$rc" -ge 1
    expect_contains "the finding names the lever" "$(json_get '[f["text"] for f in d["findings"]]' < "$WORK/doctor.json")" "podTCPTimestamps 2 removes that"
    pod_del "$list" 2 >/dev/null
}
