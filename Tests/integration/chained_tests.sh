# Chained mode: [bridge (ipMasq off), randsnat] on the test bed.

test_snat_and_bypass_ipv4() {
    local list; list=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/16","2001:db8:19::/48"]')
    local before; before=$(nat_state)
    canary_add
    local result; result=$(pod_add "$list" 1)
    expect_contains "ADD passes the bridge's result on" "$result" '"address":"198.18.0.2/24"'
    expect_contains "the result is in the config's version" "$result" '"cniVersion":"1.0.0"'
    pod_add "$list" 2 >/dev/null
    expect_eq "ext sees the node's address" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect_eq "vpc (nonMasqueradeCIDRs) sees the pod's own address" "$(ask 1 198.19.0.10)" "198.18.0.2"
    serve "$T-pod2" 20
    expect_eq "pod to pod on the bridge keeps the pod's address" "$(ask 1 198.18.0.3)" "198.18.0.2"
    expect_contains "the rule reads as a person would write it" "$(snat_rules)" "$(masquerade_text)"
    expect_eq "exactly one jump (IPv4)" "$(jump_count)" "1"
    expect "CHECK passes" pod_check "$list" 1
    pod_del "$list" 1 >/dev/null
    pod_del "$list" 2 >/dev/null
    expect_contains "the canary rule survives" "$(canary_text)" "canary"
    canary_del
    expect_eq "after the last DEL the nat tables and sets are exactly as before" "$(nat_state)" "$before"
}

test_snat_ipv6() {
    local list; list=$(conflist "$T-n" '"nonMasqueradeCIDRs":["2001:db8:19::/48"]')
    pod_add "$list" 1 >/dev/null
    expect_eq "ext sees the node's IPv6 address" "$(ask 1 2001:db8:ee::10)" "2001:db8:ee::1"
    expect_eq "vpc sees the pod's IPv6 address" "$(ask 1 2001:db8:19::10)" "2001:db8:18::2"
    expect_contains "the IPv6 rule is fully random" "$(snat_rules6)" "$(masquerade_text)"
    expect_eq "without a bypass, IPv4 to vpc is SNATed" "$(ask 1 198.19.0.10)" "198.19.0.1"
    pod_del "$list" 1 >/dev/null
}

test_to_source_and_port_range() {
    in_ns "$NODE" ip addr add 203.0.113.2/24 dev "${T}e0"
    in_ns "$NODE" ip addr add 203.0.113.3/24 dev "${T}e0"
    local list; list=$(conflist "$T-n" '"toSource":["203.0.113.2-203.0.113.3"],"portRange":"40000-40999"')
    pod_add "$list" 1 >/dev/null
    local seen; seen=$(for i in 1 2 3 4 5 6; do ask 1 203.0.113.10; done | sort -u | tr '\n' ' ')
    case "$seen" in
        *203.0.113.1\ *) fail "toSource: ext saw the interface address: $seen" ;;
        *203.0.113.[23]*) pass "toSource: ext sees only toSource addresses ($seen)" ;;
        *) fail "toSource: ext saw $seen" ;;
    esac
    local saved; saved=$(snat_rules)
    expect_contains "SNAT rule with ports per protocol" "$saved" "$(tcp_text)"
    expect_contains "SNAT to the range, fully random" "$saved" "$(snat_text)"
    in_ns "$EXT" timeout 5 bash -c "conntrack -L -p tcp --dport 8080 2>/dev/null" > "$WORK/ct" || true
    local ports; ports=$(in_ns "$NODE" conntrack -L -p tcp --dport 8080 2>/dev/null | grep -o 'dport=[0-9]*' | sed -n '2~2p' | cut -d= -f2 | sort -u)
    local outside=0
    for p in $ports; do [ "$p" -ge 40000 ] && [ "$p" -le 40999 ] || outside=$((outside + 1)); done
    expect_eq "every SNAT source port is in portRange ($(echo $ports | wc -w) seen)" "$outside" "0"
    pod_del "$list" 1 >/dev/null
}

test_del_is_idempotent_and_leaves_no_trace() {
    local list; list=$(conflist "$T-n")
    local before; before=$(nat_state)
    pod_add "$list" 1 >/dev/null
    pod_add "$list" 2 >/dev/null
    local conf="$WORK/del.json"
    printf '{"cniVersion":"1.1.0","name":"%s","type":"randsnat"}' "$T-n" > "$conf"
    expect "DEL without prevResult and with empty CNI_NETNS succeeds" randsnat_exec DEL "$conf" "c1-$RUN" "" eth0
    expect_absent "pod 1's container id is in no rule or set" "$(nat_state)" "c1-$RUN"
    expect_absent "pod 1's address is in no set" "$(snat_members)" "198.18.0.2 "
    expect_contains "pod 2 is still there" "$(snat_members)" "c2-$RUN"
    expect "a second DEL succeeds" randsnat_exec DEL "$conf" "c1-$RUN" "" eth0
    expect "DEL of a pod never added succeeds" randsnat_exec DEL "$conf" "never-$RUN" "/nonexistent" eth0
    pod_del "$list" 1 >/dev/null
    pod_del "$list" 2 >/dev/null
    expect_eq "nat tables and sets exactly as before" "$(nat_state)" "$before"
    expect "DEL on an empty node succeeds" randsnat_exec DEL "$conf" "c2-$RUN" "" eth0
}

test_check_names_what_is_missing() {
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null
    expect "CHECK passes on a whole pod" pod_check "$list" 1
    local set; set=$(member_set)
    del_member "$set" 198.18.0.2
    local out; out=$(pod_check "$list" 1)
    expect_contains "CHECK names the missing member" "$out" "198.18.0.2 is not in set $set"
    pod_del "$list" 1 >/dev/null; pod_add "$list" 1 >/dev/null
    local chain; chain=$(drop_second_rule)
    out=$(pod_check "$list" 1)
    expect_contains "CHECK names the changed chain" "$out" "chain $chain has"
    pod_del "$list" 1 >/dev/null
}

test_gc_and_status() {
    local list; list=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    local before; before=$(nat_state)
    pod_add "$list" 1 >/dev/null; pod_add "$list" 2 >/dev/null; pod_add "$list" 3 >/dev/null
    local gc; gc=$(randsnat_conf "$T-n" '"cni.dev/valid-attachments":[{"containerID":"c2-'"$RUN"'","ifname":"eth0"}]')
    expect "GC keeping pod 2" randsnat_exec GC "$gc"
    local sets; sets=$(snat_members)
    expect_absent "GC removed pod 1" "$sets" "c1-$RUN"
    expect_absent "GC removed pod 3" "$sets" "c3-$RUN"
    expect_contains "GC kept pod 2" "$sets" "c2-$RUN"
    expect_eq "pod 2 still SNATed" "$(ask 2 203.0.113.10)" "203.0.113.1"
    expect "GC with no valid attachment" randsnat_exec GC "$(randsnat_conf "$T-n" '"cni.dev/valid-attachments":[]')"
    expect_eq "GC of everything leaves the tables as before" "$(nat_state)" "$before"
    local conf; conf=$(randsnat_conf "$T-n")
    expect "STATUS succeeds on a healthy node" randsnat_exec STATUS "$conf"
    mkdir -p "$WORK/lockdir"
    local out
    if [ "$BACKEND" = nftables ]; then
        touch "$WORK/notadir"
        out=$(in_ns "$NODE" env CNI_COMMAND=STATUS CNI_PATH=/x RANDSNAT_RUN_DIR="$WORK/notadir" "$RANDSNAT_BIN" < "$conf")
        expect_contains "STATUS fails with 50 when randsnat's run directory is unusable" "$out" '"code":50'
    else
        out=$(in_ns "$NODE" env CNI_COMMAND=STATUS CNI_PATH=/x XTABLES_LOCKFILE="$WORK/lockdir" "$RANDSNAT_BIN" < "$conf")
        expect_contains "STATUS fails with 50 when the xtables lock is unusable" "$out" '"code":50'
    fi
    printf '{"cniVersion":"1.0.0","name":"%s","type":"randsnat"}' "$T-n" > "$conf"
    expect_contains "STATUS needs 1.1.0" "$(randsnat_exec STATUS "$conf")" '"code":1'
    pod_del "$list" 2 >/dev/null
}

# first_member_set: randsnat's member set (either family) listed first, i.e. the generation GC meets
# first. pin_set SET / unpin_set SET: a foreign rule that uses SET (so the set cannot be deleted) and
# its removal.
first_member_set() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list sets inet 2>/dev/null | grep -o 'RANDSNAT-[^ ]*-P[46]' | head -1
    else in_ns "$NODE" ipset list -n | grep -- '-P[46]$' | head -1; fi
}
pin_set() {
    local match=ip tool=iptables-legacy
    case $1 in *-P6) match=ip6; tool=ip6tables-legacy ;; esac
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft add chain inet randsnat rspin
        in_ns "$NODE" nft add rule inet randsnat rspin "$match" saddr "@$1" return
    else
        in_ns "$NODE" "$tool" -t nat -N RSPIN
        in_ns "$NODE" "$tool" -t nat -A RSPIN -m set --match-set "$1" src -j RETURN
    fi
}
unpin_set() {
    local tool=iptables-legacy
    case $1 in *-P6) tool=ip6tables-legacy ;; esac
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft flush chain inet randsnat rspin
        in_ns "$NODE" nft delete chain inet randsnat rspin
    else
        in_ns "$NODE" "$tool" -t nat -F RSPIN
        in_ns "$NODE" "$tool" -t nat -X RSPIN
    fi
}

test_gc_goes_on_past_a_failure() {
    # Two generations of one network (the config changed between two pods). A foreign rule uses the
    # member set GC meets first, so that generation cannot be removed: GC must still remove the
    # other generation, and report the failure at the end (spec: "should continue").
    local before; before=$(nat_state)
    local a; a=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    pod_add "$a" 1 >/dev/null
    local b; b=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/24"]')
    pod_add "$b" 2 >/dev/null
    expect_eq "two generations" "$(chain_count)" "2"
    local pinned; pinned=$(first_member_set)
    expect "a set to pin ($pinned)" test -n "$pinned"
    pin_set "$pinned"
    local gc; gc=$(randsnat_conf "$T-n" '"cni.dev/valid-attachments":[]')
    local out; out=$(randsnat_exec GC "$gc")
    local rc=$?
    expect "GC fails" test "$rc" -ne 0
    expect_contains "GC says it went on" "$out" "removed what it could"
    expect_contains "the failure names the pinned set" "$out" "$pinned"
    local members; members=$(snat_members)
    expect_absent "pod 1's members are gone" "$members" "c1-$RUN"
    expect_absent "pod 2's members are gone (its generation comes after the failure)" "$members" "c2-$RUN"
    local sets
    if [ "$BACKEND" = nftables ]; then sets=$(in_ns "$NODE" nft list sets inet 2>/dev/null | grep -o 'RANDSNAT-[^ ]*-P[46]')
    else sets=$(in_ns "$NODE" ipset list -n | grep -- '-P[46]$'); fi
    expect_eq "only the pinned set is left" "$sets" "$pinned"
    unpin_set "$pinned"
    expect "GC again, with nothing in the way" randsnat_exec GC "$gc"
    expect_eq "then the tables are as before" "$(nat_state)" "$before"
}

test_versions() {
    # Debian 12's bridge (1.1.1) speaks up to 1.0.0; randsnat's 1.1.0 results are covered by the
    # other tests' direct runs and the unit tests.
    for version in 0.3.0 0.3.1 0.4.0 1.0.0; do
        local list; list=$(conflist "$T-v${version//./}" "" "$version")
        local n=${version//./}
        local result; result=$(pod_add "$list" "$n")
        expect_contains "$version: ADD result in $version" "$result" "\"cniVersion\":\"$version\""
        case $version in
            0.*) expect_contains "$version: ips carry version" "$result" '"version":"4"' ;;
            *) expect_absent "$version: ips carry no version" "$result" '"version":' ;;
        esac
        expect_eq "$version: ext sees the node" "$(ask "$n" 203.0.113.10)" "203.0.113.1"
        case $version in
            0.3.*) ;;
            *) expect "$version: CHECK passes" pod_check "$list" "$n" ;;
        esac
        expect "$version: DEL" pod_del "$list" "$n"
    done
    expect_absent "no randsnat state left" "$(nat_state)" "RANDSNAT"
}

test_config_change_makes_a_new_generation() {
    local a; a=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    pod_add "$a" 1 >/dev/null
    local b; b=$(conflist "$T-n" '"nonMasqueradeCIDRs":["198.19.0.0/24"],"masqLinkLocal":true')
    pod_add "$b" 2 >/dev/null
    expect_eq "two generations side by side" "$(chain_count)" "2"
    expect_eq "pod 1 keeps its config (vpc bypass)" "$(ask 1 198.19.0.10)" "198.18.0.2"
    expect_eq "pod 2 has the new config" "$(ask 2 198.19.0.10)" "198.18.0.3"
    pod_del "$a" 1 >/dev/null
    expect_eq "the old generation goes with its last pod" "$(chain_count)" "1"
    expect_eq "pod 2 still SNATed to ext" "$(ask 2 203.0.113.10)" "203.0.113.1"
    pod_del "$b" 2 >/dev/null
}

test_del_forgets_the_pods_flows() {
    # One address in the range, so the next pod gets the departed pod's address.
    local list; list=$(conflist "$T-n")
    python3 - "$list" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
conf["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.2", "rangeEnd": "198.18.0.2"}]]
json.dump(conf, open(sys.argv[1], "w"))
PY
    pod_add "$list" 1 >/dev/null
    in_ns "$T-pod1" python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40000)); [s.sendto(b"x", ("203.0.113.10", 9999)) for _ in range(3)]'
    local flows; flows=$(in_ns "$NODE" conntrack -L -p udp -s 198.18.0.2 2>/dev/null)
    local mapped; mapped=$(printf '%s\n' "$flows" | grep -o 'dport=[0-9]*' | sed -n 2p | cut -d= -f2)
    expect "pod 1's UDP flow is in conntrack, SNATed to port $mapped" test -n "$mapped"
    # Flows that are not the pod's: another source, the pod's address as destination, and IPv6.
    in_ns "$NODE" conntrack -I -p udp -s 198.18.0.77 -d 203.0.113.10 --sport 1111 --dport 2222 -t 120 >/dev/null 2>&1
    in_ns "$NODE" conntrack -I -p udp -s 203.0.113.10 -d 198.18.0.2 --sport 3333 --dport 4444 -t 120 >/dev/null 2>&1
    in_ns "$NODE" conntrack -I -p udp -s 2001:db8::2 -d 2001:db8:1::10 --sport 5555 --dport 6666 -t 120 >/dev/null 2>&1
    expect_eq "the three foreign flows are there before DEL" "$(in_ns "$NODE" conntrack -L -f ipv4 2>/dev/null | grep -c -e sport=1111 -e sport=3333)$(in_ns "$NODE" conntrack -L -f ipv6 2>/dev/null | grep -c sport=5555)" "21"
    pod_del "$list" 1 >/dev/null
    expect_eq "after DEL, no conntrack entry has pod 1's address as its source" "$(in_ns "$NODE" conntrack -L -s 198.18.0.2 2>/dev/null | grep -c src=)" "0"
    expect_eq "the other flows are still there (another source, the pod as destination, IPv6)" \
        "$(in_ns "$NODE" conntrack -L -f ipv4 2>/dev/null | grep -c -e sport=1111 -e sport=3333)$(in_ns "$NODE" conntrack -L -f ipv6 2>/dev/null | grep -c sport=5555)" "21"
    local result; result=$(pod_add "$list" 2)
    expect_contains "pod 2 gets the same address" "$result" '"address":"198.18.0.2/24"'
    in_ns "$T-pod2" timeout 3 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40000)); s.settimeout(2)
try:
    print(s.recvfrom(100)[0].decode())
except socket.timeout:
    pass' > "$WORK/received" &
    local listener=$!
    # Bound before ext answers: a listener not yet there would receive nothing whatever DEL did.
    wait_listening "$T-pod2" 40000 udp
    # ext answers the old flow: to the node's address and the port pod 1's flow was mapped to.
    in_ns "$EXT" python3 -c 'import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999)); s.sendto(b"old-reply", ("203.0.113.1", int(sys.argv[1])))' "${mapped:-1}"
    wait "$listener"
    expect_eq "pod 2 does not receive the old flow's reply" "$(cat "$WORK/received")" ""
    pod_del "$list" 2 >/dev/null
}

# The same on the path of kernels whose ctnetlink cannot flush with a filter (before the 2024 patch
# "netfilter: ctnetlink: support CTA_FILTER for flush"): the pod's entries listed, then deleted one by
# one. The shipped binary takes that path only on such a kernel, so this test runs the test executable
# randsnat-dump-cleanup (the same edge, PluginMain, with that cleanup) as the chain's randsnat.
test_del_forgets_the_pods_flows_by_dump_and_delete() {
    local variant; variant="$(dirname "$RANDSNAT_BIN")/randsnat-dump-cleanup"
    expect "the test executable randsnat-dump-cleanup is built beside randsnat" test -x "$variant"
    mkdir -p "$WORK/dump-cleanup-bin"
    ln -sf "$variant" "$WORK/dump-cleanup-bin/randsnat"
    local saved=$CNI_PATH
    export CNI_PATH="$WORK/dump-cleanup-bin:/usr/lib/cni"
    test_del_forgets_the_pods_flows
    export CNI_PATH=$saved
}


# Issue 10 §1: the longest network name randsnat accepts (128 bytes) with 64-hex container ids, as
# Kubernetes runtimes make them. nf_tables comments hold 127 bytes, so a comment repeating the network
# name no longer fits: ADD, CHECK, GC keeping both pods, DEL of each must still find every member, and
# members commented as the previous release wrote them (the full form cut to the backend's limit) too.
test_long_network_names_keep_their_pods() {
    local name; name=$T-$(printf 'n%.0s' $(seq 1 $((128 - ${#T} - 1))))
    [ ${#name} -eq 128 ] || fail "test setup: network name is ${#name} bytes, not 128"
    local list; list=$(conflist "$name")
    local c1 c2 pod1=$T-pod1 pod2=$T-pod2
    c1=$(printf '%s' "1-$RUN" | sha256sum | cut -c1-64); c2=$(printf '%s' "2-$RUN" | sha256sum | cut -c1-64)
    ip netns add "$pod1"; ip netns add "$pod2"
    expect "ADD pod 1" in_ns "$NODE" python3 "$HERE/cni.py" add "$list" "$c1" "/var/run/netns/$pod1" eth0
    expect "ADD pod 2" in_ns "$NODE" python3 "$HERE/cni.py" add "$list" "$c2" "/var/run/netns/$pod2" eth0
    expect_eq "two members" "$(member_count)" 2
    expect "CHECK pod 1" in_ns "$NODE" python3 "$HERE/cni.py" check "$list" "$c1" "/var/run/netns/$pod1" eth0
    expect "CHECK pod 2" in_ns "$NODE" python3 "$HERE/cni.py" check "$list" "$c2" "/var/run/netns/$pod2" eth0
    expect_eq "pod 1 SNATed" "$(ask 1 203.0.113.10)" "203.0.113.1"
    local gc; gc=$(randsnat_conf "$name" '"cni.dev/valid-attachments":[{"containerID":"'"$c1"'","ifname":"eth0"},{"containerID":"'"$c2"'","ifname":"eth0"}]')
    expect "GC listing both pods" randsnat_exec GC "$gc"
    expect_eq "GC kept both members" "$(member_count)" 2
    expect_eq "pod 2 still SNATed after GC" "$(ask 2 203.0.113.10)" "203.0.113.1"
    # Pod 2's member as the previous release wrote it: "<network>/<container>/<ifname>" cut to the limit.
    local set address limit old
    set=$(member_set)
    address=$(in_ns "$pod2" ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
    if [ "$BACKEND" = nftables ]; then limit=127; else limit=255; fi
    old=$(printf '%s/%s/eth0' "$name" "$c2" | cut -c1-$limit)
    del_member "$set" "$address"
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft add element inet randsnat "$set" "{ $address comment \"$old\" }"
    else in_ns "$NODE" ipset add "$set" "$address" comment "$old"; fi
    expect_contains "the old-format comment is in place" "$(snat_members)" "$old"
    expect "CHECK pod 2 with the old-format comment" in_ns "$NODE" python3 "$HERE/cni.py" check "$list" "$c2" "/var/run/netns/$pod2" eth0
    expect "GC listing both pods, old format" randsnat_exec GC "$gc"
    expect_eq "GC kept the old-format member" "$(member_count)" 2
    expect "DEL pod 1" in_ns "$NODE" python3 "$HERE/cni.py" del "$list" "$c1" "/var/run/netns/$pod1" eth0
    expect_eq "one member after DEL of pod 1" "$(member_count)" 1
    expect "DEL pod 2 (old-format comment)" in_ns "$NODE" python3 "$HERE/cni.py" del "$list" "$c2" "/var/run/netns/$pod2" eth0
    expect_eq "no member left" "$(member_count)" 0
    expect_eq "no chain left" "$(chain_count)" 0
    expect_eq "no jump left" "$(jump_count)" 0
}
