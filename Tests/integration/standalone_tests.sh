# Standalone mode: randsnat as the only plugin (bridge, veth, host-local IPAM, SNAT).

test_standalone_dual_stack() {
    local list; list=$(standalone "$T-s" '"nonMasqueradeCIDRs":["198.19.0.0/16","2001:db8:19::/48"]')
    local before; before=$(nat_state)
    local result; result=$(pod_add "$list" 1)
    expect_contains "result lists the pod interface with its sandbox" "$result" "\"name\":\"eth0\",\"sandbox\":\"/var/run/netns/$T-pod1\""
    expect_contains "result has the IPv4 address on interface 2 with its gateway" "$result" '{"address":"198.18.0.2/24","gateway":"198.18.0.1","interface":2}'
    expect_contains "result has the IPv6 address" "$result" '"address":"2001:db8:18::2/64"'
    # No sleep: IPv6 addresses are added without DAD, so they work at once.
    expect_eq "IPv6 works right after ADD: ext sees the node" "$(ask 1 2001:db8:ee::10)" "2001:db8:ee::1"
    pod_add "$list" 2 >/dev/null
    expect_eq "ext sees the node (IPv4)" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect_eq "vpc sees the pod (IPv4)" "$(ask 1 198.19.0.10)" "198.18.0.2"
    expect_eq "vpc sees the pod (IPv6)" "$(ask 1 2001:db8:19::10)" "2001:db8:18::2"
    serve "$T-pod2" 20
    expect_eq "pod to pod across the bridge keeps the address (IPv4)" "$(ask 1 198.18.0.3)" "198.18.0.2"
    expect_eq "pod to pod across the bridge keeps the address (IPv6)" "$(ask 1 2001:db8:18::3)" "2001:db8:18::2"
    expect "CHECK passes" pod_check "$list" 1
    in_ns "$T-pod1" ip route del default
    expect_contains "CHECK names a missing route" "$(pod_check "$list" 1)" "no route to 0.0.0.0/0 via 198.18.0.1"
    pod_del "$list" 1 >/dev/null
    pod_del "$list" 2 >/dev/null
    expect_eq "no veth is left on the node" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    expect_eq "the IPAM leases are released" "$(ls "$WORK/ipam/$T-s" | grep -c '^198\|^2001')" "0"
    expect_eq "nat tables and sets as before" "$(nat_state)" "$before"
    expect "the bridge stays" in_ns "$NODE" ip link show rsnsa0
}

test_standalone_ipv6_only_and_link_options() {
    local list; list=$(standalone "$T-s" '"mtu":1400,"hairpinMode":true,"promiscMode":true' '[[{"subnet":"2001:db8:18::/64"}]]')
    local result; result=$(pod_add "$list" 1)
    expect_eq "IPv6 only: ext sees the node at once" "$(ask 1 2001:db8:ee::10)" "2001:db8:ee::1"
    expect_contains "the pod's eth0 has mtu 1400" "$(in_ns "$T-pod1" ip link show eth0)" "mtu 1400"
    local veth; veth=$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["interfaces"][1]["name"])')
    expect_contains "the host veth has mtu 1400" "$(in_ns "$NODE" ip link show "$veth")" "mtu 1400"
    expect_contains "the host veth is a port of the bridge" "$(in_ns "$NODE" ip link show "$veth")" "master rsnsa0"
    expect_eq "hairpin mode is on" "$(in_ns "$NODE" cat "/sys/class/net/$veth/brport/hairpin_mode")" "1"
    expect_contains "the bridge is promiscuous" "$(in_ns "$NODE" ip link show rsnsa0)" "PROMISC"
    expect_eq "no IPv4 chain was written" "$(chain_count)" "0"
    pod_del "$list" 1 >/dev/null
}

test_standalone_del_is_idempotent() {
    local list; list=$(standalone "$T-s")
    local before; before=$(nat_state)
    pod_add "$list" 1 >/dev/null
    ip netns del "$T-pod1"
    expect "DEL after the pod's netns is gone" pod_del "$list" 1
    expect "DEL again" in_ns "$NODE" python3 "$HERE/cni.py" del "$list" "c1-$RUN" "" eth0
    expect_eq "the lease is released" "$(ls "$WORK/ipam/$T-s" | grep -c '^198\|^2001')" "0"
    expect_eq "no veth left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    expect_eq "nat tables and sets as before" "$(nat_state)" "$before"
}

# fake_ipam NAME SCRIPT: an IPAM plugin for failure injection, in a directory put first in CNI_PATH.
fake_ipam() {
    mkdir -p "$WORK/fakebin"
    printf '#!/bin/bash\n%s\n' "$2" > "$WORK/fakebin/$1"
    chmod +x "$WORK/fakebin/$1"
}

test_standalone_failed_add_leaves_nothing() {
    local before; before=$(nat_state)
    local saved_path=$CNI_PATH
    export CNI_PATH="$WORK/fakebin:$CNI_PATH"
    # 1. The IPAM plugin fails: its error is randsnat's error, nothing is made.
    fake_ipam failing 'cat >/dev/null; echo "{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"pool exhausted\"}"; exit 1'
    local list; list=$(standalone "$T-f1")
    sed -i 's/"type":"host-local"/"type":"failing"/' "$list"
    local out; out=$(pod_add_may_fail "$list" 1)
    expect_contains "a failing IPAM's error comes back" "$out" '"code":11,"msg":"pool exhausted"'
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    # The bridge is made while IPAM runs, and stays (as the reference bridge's does); remove it here.
    in_ns "$NODE" ip link del rsnsa0 2>/dev/null
    # 2. A bridge name taken by a non-bridge: ADD fails after IPAM, and gives the lease back.
    in_ns "$NODE" ip link add rsnsa0 type veth peer name rsnsa0p   # (this kernel has no dummy driver)
    list=$(standalone "$T-f2")
    out=$(pod_add_may_fail "$list" 2)
    expect_contains "a non-bridge of that name is refused" "$out" "rsnsa0 exists and is not a bridge"
    expect_eq "the lease was given back" "$(ls "$WORK/ipam/$T-f2" 2>/dev/null | grep -c '^198\|^2001')" "0"
    in_ns "$NODE" ip link del rsnsa0
    # 3. The netns vanishes mid-ADD (the IPAM plugin removes it, then allocates).
    fake_ipam vanishing "ip netns del $T-pod3; exec /usr/lib/cni/host-local"
    list=$(standalone "$T-f3")
    sed -i 's/"type":"host-local"/"type":"vanishing"/' "$list"
    out=$(pod_add_may_fail "$list" 3)
    expect_contains "a vanished netns fails the ADD, naming the netns" "$out" "$T-pod3"
    expect_eq "the lease was given back" "$(ls "$WORK/ipam/$T-f3" 2>/dev/null | grep -c '^198\|^2001')" "0"
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    expect_eq "nat tables and sets as before" "$(nat_state)" "$before"
    export CNI_PATH=$saved_path
}

test_standalone_result_has_the_reference_bridge_shape() {
    # The same config through the reference bridge and through randsnat: same keys, same shapes.
    local mine; mine=$(standalone "$T-r")
    local theirs="$WORK/ref.conflist"
    sed 's/"type":"randsnat"/"type":"bridge","ipMasq":false/; s/"bridge":"rsnsa0"/"bridge":"rsnref0"/; s/"name":"'"$T"'-r"/"name":"'"$T"'-ref"/' "$mine" > "$theirs"
    local a b
    a=$(pod_add "$mine" 1)
    b=$(pod_add "$theirs" 2)
    local shape='import json,sys
def shape(v):
    if isinstance(v, dict): return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list): return [shape(x) for x in v]
    return type(v).__name__
print(json.dumps(shape(json.loads(sys.argv[1]))))'
    expect_eq "same keys and shapes as the reference bridge's result" "$(python3 -c "$shape" "$a")" "$(python3 -c "$shape" "$b")"
    local values='import json,sys
r=json.loads(sys.argv[1]); print(json.dumps([[i.get("address"), i.get("gateway"), i.get("interface")] for i in r["ips"]] + [r.get("routes"), r["interfaces"][2]["name"], r["dns"]]))'
    expect_eq "same ips, gateways, routes and dns" "$(python3 -c "$values" "$a")" "$(python3 -c "$values" "$b")"
    pod_del "$mine" 1 >/dev/null
    pod_del "$theirs" 2 >/dev/null
}
