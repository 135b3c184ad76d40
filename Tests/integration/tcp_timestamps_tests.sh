# podTCPTimestamps: net.ipv4.tcp_timestamps in the pod's network namespace, set at ADD, compared at
# CHECK, refused (code 7) for any other value, and an ADD the kernel refuses it to leaves nothing.

# pod_ts N: the pod's net.ipv4.tcp_timestamps.
pod_ts() { in_ns "$T-pod$1" cat /proc/sys/net/ipv4/tcp_timestamps; }
# cni_code JSON: the error code and message of a CNI error on stdout ("" for a success).
cni_code() { printf '%s' "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("code", "")); print(d.get("msg", ""))' 2>/dev/null; }
# read_only_proc_sys COMMAND...: COMMAND in a mount namespace of its own whose /proc/sys is read-only
# (as in a container runtime's sandbox): the kernel refuses every sysctl write with EROFS.
read_only_proc_sys() {
    unshare -m sh -c 'mount --make-rprivate / && mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"' sh "$@"
}

# timestamps_test MODE: the shared body of the chained and standalone tests (MODE: chained|standalone).
timestamps_test() {
    local mode=$1 list
    if [ "$mode" = standalone ]; then list=$(standalone "$T-ts" '"podTCPTimestamps":2')
    else list=$(conflist "$T-ts" '"podTCPTimestamps":2'); fi
    local node_before; node_before=$(in_ns "$NODE" cat /proc/sys/net/ipv4/tcp_timestamps)
    local root_before; root_before=$(cat /proc/sys/net/ipv4/tcp_timestamps)
    local before; before=$(nat_state)
    pod_add "$list" 1 >/dev/null
    expect_eq "ADD set net.ipv4.tcp_timestamps=2 in the pod's namespace" "$(pod_ts 1)" "2"
    expect_eq "the node's namespace keeps its value" "$(in_ns "$NODE" cat /proc/sys/net/ipv4/tcp_timestamps)" "$node_before"
    expect_eq "the root namespace keeps its value" "$(cat /proc/sys/net/ipv4/tcp_timestamps)" "$root_before"
    expect_eq "ext still sees the node" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect "CHECK passes" pod_check "$list" 1
    in_ns "$T-pod1" sysctl -qw net.ipv4.tcp_timestamps=1
    local out; out=$(pod_check "$list" 1)
    expect_contains "CHECK names the changed setting" "$out" "net.ipv4.tcp_timestamps in the pod's network namespace is 1"
    expect_contains "CHECK says what the config wants" "$out" "podTCPTimestamps says 2"
    pod_del "$list" 1 >/dev/null

    # Any other value: code 7 naming the key, the pod's setting and the node as they were.
    local value
    for value in 3 -1 1.5 2.0 '"2"' true '[2]'; do
        if [ "$mode" = standalone ]; then list=$(standalone "$T-bad" "\"podTCPTimestamps\":$value")
        else list=$(conflist "$T-bad" "\"podTCPTimestamps\":$value"); fi
        out=$(pod_add_may_fail "$list" 2)
        local got; got=$(cni_code "$out")
        expect_eq "podTCPTimestamps $value is code 7" "$(printf '%s\n' "$got" | head -1)" "7"
        expect_contains "podTCPTimestamps $value: the message names the key and the values" "$got" "podTCPTimestamps: $value"
        expect_contains "podTCPTimestamps $value: the message says the values" "$got" "must be the number 0, 1 or 2"
        expect_eq "podTCPTimestamps $value: the pod's setting is unchanged" "$(pod_ts 2)" "1"
        # A chained runtime DELs after a failed ADD (the bridge before randsnat made the veth).
        pod_del "$list" 2 >/dev/null
        ip netns del "$T-pod2"
    done
    expect_eq "after the bad values: nat tables and sets as before" "$(nat_state)" "$before"

    # The kernel refuses the value (a read-only /proc/sys): ADD fails, saying so, and leaves nothing.
    # (Standalone without isGateway: turning forwarding on would meet the read-only /proc/sys first.)
    if [ "$mode" = standalone ]; then
        list=$(standalone "$T-ro" '"podTCPTimestamps":2')
        sed -i 's/"isGateway":true,"isDefaultGateway":true/"isGateway":false/' "$list"
    else list=$(conflist "$T-ro" '"podTCPTimestamps":2'); fi
    ip netns add "$T-pod3"
    out=$(read_only_proc_sys ip netns exec "$NODE" python3 "$HERE/cni.py" add "$list" "c3-$RUN" "/var/run/netns/$T-pod3" eth0)
    got=$(cni_code "$out")
    expect_eq "a refused value fails the ADD (code 999)" "$(printf '%s\n' "$got" | head -1)" "999"
    expect_contains "the error says which setting, where, and what to do" "$got" \
        "podTCPTimestamps: setting net.ipv4.tcp_timestamps to 2 in the pod's network namespace /var/run/netns/$T-pod3 failed"
    expect_contains "the error carries the kernel's reason" "$got" "Read-only file system"
    expect_eq "the pod's setting is unchanged" "$(pod_ts 3)" "1"
    if [ "$mode" = standalone ]; then
        expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
        expect_eq "the lease is given back" "$(ls "$WORK/ipam/$T-ro" 2>/dev/null | grep -c '^198\|^2001')" "0"
    fi
    pod_del "$list" 3 >/dev/null
    expect_eq "after the refused value: nat tables and sets as before" "$(nat_state)" "$before"
}

test_pod_tcp_timestamps_chained() { timestamps_test chained; }
test_pod_tcp_timestamps_standalone() { timestamps_test standalone; }

# A server that closes first holds TIME_WAIT; through a narrow SNAT range new flows land on those
# 4-tuples. With the kernel's per-port timestamp offsets (6.18) the server's PAWS check drops some of
# their SYNs (TcpExtPAWSTimewait); with podTCPTimestamps 2 it drops none. Bounded: at most 400
# connections per pod, 25 s each.
test_paws_timewait_through_narrow_snat() {
    local list; list=$(conflist "$T-paws" '"portRange":"40000-40049"')
    local keyed="$WORK/paws-keyed.conflist"
    sed 's/"portRange":"40000-40049"/"portRange":"40000-40049","podTCPTimestamps":2/' "$list" > "$keyed"
    pod_add "$list" 1 >/dev/null
    pod_add "$keyed" 2 >/dev/null
    expect_eq "pod 1 keeps the default timestamps" "$(pod_ts 1)" "1"
    expect_eq "pod 2 has timestamps without the offset" "$(pod_ts 2)" "2"
    # One server port per pod: pod 2's flows must not meet TIME_WAIT left by pod 1's.
    ( in_ns "$EXT" timeout 80 python3 "$HERE/paws.py" serve 9101 80 & )
    ( in_ns "$EXT" timeout 80 python3 "$HERE/paws.py" serve 9102 80 & )
    sleep 0.5
    local n port out before after rejected
    for n in 1 2; do
        port=910$n
        in_ns "$NODE" conntrack -F >/dev/null 2>&1
        before=$(in_ns "$EXT" python3 "$HERE/paws.py" counters TcpExtPAWSTimewait | python3 -c 'import json,sys; print(json.load(sys.stdin)["TcpExtPAWSTimewait"])')
        out=$(in_ns "$T-pod$n" python3 "$HERE/paws.py" connect 203.0.113.10 $port 400 16 25)
        after=$(in_ns "$EXT" python3 "$HERE/paws.py" counters TcpExtPAWSTimewait | python3 -c 'import json,sys; print(json.load(sys.stdin)["TcpExtPAWSTimewait"])')
        rejected=$((after - before))
        local summary; summary=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["attempts"], d["ok"], d["failed"], d["slow"], d["seconds"])')
        echo "    pod $n (tcp_timestamps $(pod_ts $n)): attempts ok failed slow seconds = $summary; server PAWSTimewait +$rejected"
        read -r attempts ok failed slow seconds <<< "$summary"
        expect "pod $n: more connections than SNAT ports (4-tuples were reused): $attempts" test "$attempts" -gt 100
        if [ $n = 1 ]; then
            expect "default timestamps: the server rejected SYNs by PAWS ($rejected)" test "$rejected" -gt 0
            expect "default timestamps: connects were slowed by retransmitted SYNs ($slow)" test "$slow" -gt 0
        else
            expect_eq "podTCPTimestamps 2: the server rejected no SYN by PAWS" "$rejected" "0"
            expect_eq "podTCPTimestamps 2: every connection succeeded" "$ok" "$attempts"
        fi
    done
    pod_del "$list" 1 >/dev/null
    pod_del "$keyed" 2 >/dev/null
}
