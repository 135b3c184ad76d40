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
    local result; result=$(pod_add_may_fail "$list" 9)
    expect_contains "hairpinMode with promiscMode is refused, as the reference bridge refuses it" "$result" \
        'hairpinMode: true cannot be set with \"promiscMode\": true'
    expect_eq "nothing was made" "$(in_ns "$NODE" ip -o link show | grep -c 'veth\|rsnsa0')" "0"
    list=$(standalone "$T-s" '"mtu":1400,"hairpinMode":true,"runtimeConfig":{"mac":"02:42:c6:12:00:07"}' '[[{"subnet":"2001:db8:18::/64"}]]')
    result=$(pod_add "$list" 1)
    expect_contains "the pod's eth0 has the MAC of runtimeConfig.mac" "$(in_ns "$T-pod1" ip link show eth0)" "link/ether 02:42:c6:12:00:07 "
    expect_contains "the result lists that MAC" "$result" '"mac":"02:42:c6:12:00:07","name":"eth0"'
    expect "CHECK passes" pod_check "$list" 1
    expect_eq "IPv6 only: ext sees the node at once" "$(ask 1 2001:db8:ee::10)" "2001:db8:ee::1"
    expect_contains "the pod's eth0 has mtu 1400" "$(in_ns "$T-pod1" ip link show eth0)" "mtu 1400"
    local veth; veth=$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["interfaces"][1]["name"])')
    expect_contains "the host veth has mtu 1400" "$(in_ns "$NODE" ip link show "$veth")" "mtu 1400"
    expect_contains "the host veth is a port of the bridge" "$(in_ns "$NODE" ip link show "$veth")" "master rsnsa0"
    expect_eq "hairpin mode is on" "$(in_ns "$NODE" cat "/sys/class/net/$veth/brport/hairpin_mode")" "1"
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

test_standalone_refuses_the_node_namespace_as_cni_netns() {
    # The runtime (cni.py, run in the node namespace) names the node namespace itself as the pod's:
    # without the check, ADD would make the pod's veth among the node's links, and DEL would remove a
    # node link named CNI_IFNAME.
    local list; list=$(standalone "$T-s")
    local before; before=$(nat_state)
    local links; links=$(in_ns "$NODE" ip -o link show | cut -d: -f2)
    local own="/var/run/netns/$NODE" out
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" add "$list" "c1-$RUN" "$own" eth0)
    expect_contains "ADD is refused with code 8" "$out" '"code":8'
    expect_contains "the message names CNI_NETNS and says why" "$out" "$own\\\" is randsnat's own network namespace"
    expect_eq "no link was made (no veth, no bridge)" "$(in_ns "$NODE" ip -o link show | cut -d: -f2)" "$links"
    expect_eq "no IPAM lease was taken" "$(ls "$WORK/ipam/$T-s" 2>/dev/null | grep -c '^198\|^2001')" "0"
    expect_eq "nat tables and sets as before" "$(nat_state)" "$before"
    # CHECK with a cached result, as after an ADD.
    printf '{"kind":"cniCacheV1","result":{"cniVersion":"1.0.0","interfaces":[],"ips":[]}}' > "$CNI_CACHE_DIR/$T-s-c1-$RUN-eth0"
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" check "$list" "c1-$RUN" "$own" eth0)
    expect_contains "CHECK is refused with code 8" "$out" '"code":8'
    # DEL naming one of the node's links as CNI_IFNAME.
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" del "$list" "c1-$RUN" "$own" "${T}e0")
    expect_contains "DEL is refused with code 8" "$out" '"code":8'
    expect "the node's link ${T}e0 is still there" in_ns "$NODE" ip link show "${T}e0"
    expect_eq "still no link made or removed" "$(in_ns "$NODE" ip -o link show | cut -d: -f2)" "$links"
    expect_eq "nat tables and sets still as before" "$(nat_state)" "$before"
    # The same config with a pod's namespace works (the refusal is about the namespace, nothing else).
    expect "ADD with a pod's namespace" pod_add "$list" 1
    expect "DEL with a pod's namespace" pod_del "$list" 1
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
    # 4. An IPAM plugin that prints more than randsnat reads of a plugin (1 MiB), and one that prints
    # without end: each ADD fails with code 6 naming the limit, within a bounded time and memory (the
    # endless one is stopped). On 5df3a31 the 3 MB answer was read whole ("not JSON"), and the endless
    # one grew randsnat's memory until the address-space limit below ended it.
    fake_ipam chatty 'cat >/dev/null; head -c 3000000 /dev/zero | tr "\0" x'
    fake_ipam endless 'cat >/dev/null; exec yes'
    for kind in chatty endless; do
        list=$(standalone "$T-f$kind")
        sed -i "s/\"type\":\"host-local\"/\"type\":\"$kind\"/" "$list"
        out=$(ulimit -v 1000000; timeout 30 bash -c "$(declare -f pod_add_may_fail in_ns setup_failed); T=$T HERE=$HERE NODE=$NODE RUN=$RUN pod_add_may_fail $list 4" 2>&1)
        expect_contains "an IPAM plugin's $kind output is refused at the limit" "$out" "printed more than 1048576 bytes"
        expect_contains "with code 6" "$out" '"code":6'
    done
    expect_eq "the endless plugin was stopped" "$(pgrep -c -f "$WORK/fakebin/endless")" "0"
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

# recording_ipam NAME STATUS_ANSWER: an IPAM plugin that records each call's CNI_COMMAND, stdin and
# CNI_NETNS/CNI_IFNAME under $WORK/rec-NAME-VERB, answers VERSION with 1.1.0, GC with nothing,
# STATUS with STATUS_ANSWER (empty: success), and hands ADD/DEL/CHECK to host-local.
recording_ipam() {
    fake_ipam "$1" 'input=$(cat); rec='"$WORK"'/rec-'"$1"'-$CNI_COMMAND
printf "%s" "$input" > $rec.stdin; env | grep ^CNI_ > $rec.env
case $CNI_COMMAND in
VERSION) echo "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}" ;;
GC) ;;
STATUS) '"${2:+printf '%s' '$2'; exit 1}"' ;;
*) printf "%s" "$input" | exec /usr/lib/cni/host-local ;;
esac'
}

test_standalone_gc_and_status_reach_the_ipam_plugin() {
    local saved_path=$CNI_PATH
    export CNI_PATH="$WORK/fakebin:$CNI_PATH"
    # 1. Debian's host-local (1.1.1) predates GC and STATUS: nothing to do, said on stderr.
    local list; list=$(standalone "$T-g")
    pod_add "$list" 1 >/dev/null; pod_add "$list" 2 >/dev/null
    local list11="$WORK/$T-g11.conflist"
    sed 's/"cniVersion":"1.0.0"/"cniVersion":"1.1.0"/' "$list" > "$list11"
    local out
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" gc "$list11" "c1-$RUN:eth0" 2>"$WORK/gc.err")
    expect_eq "GC with Debian's host-local succeeds" "$?:$out" "0:"
    expect_contains "stderr says host-local predates GC" "$(cat "$WORK/gc.err")" 'IPAM plugin "host-local" predates GC (CNI 1.1.0), so it has nothing to do'
    expect_contains "GC kept pod 1's SNAT" "$(snat_members)" "c1-$RUN"
    expect_absent "GC removed pod 2's SNAT" "$(snat_members)" "c2-$RUN"
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" status "$list11" 2>"$WORK/status.err")
    expect_eq "STATUS with Debian's host-local succeeds" "$?:$out" "0:"
    expect_contains "stderr says host-local predates STATUS" "$(cat "$WORK/status.err")" 'IPAM plugin "host-local" predates STATUS'
    pod_del "$list" 1 >/dev/null; pod_del "$list" 2 >/dev/null
    # 2. An IPAM plugin that knows GC and STATUS gets them, with randsnat's config as it came.
    recording_ipam rec
    sed 's/"type":"host-local"/"type":"rec"/' "$list11" > "$WORK/rec.conflist"
    expect "GC with a GC-aware IPAM plugin" in_ns "$NODE" python3 "$HERE/cni.py" gc "$WORK/rec.conflist" "c7-$RUN:eth0"
    expect_contains "the IPAM plugin ran GC" "$(cat "$WORK/rec-rec-GC.env" 2>&1)" "CNI_COMMAND=GC"
    expect_contains "its stdin has cni.dev/valid-attachments" "$(cat "$WORK/rec-rec-GC.stdin" 2>&1)" \
        '"cni.dev/valid-attachments": [{"containerID": "c7-'"$RUN"'", "ifname": "eth0"}]'
    expect_contains "its stdin is the network config" "$(cat "$WORK/rec-rec-GC.stdin" 2>&1)" '"ipam": {"type": "rec"'
    expect "STATUS with a STATUS-aware IPAM plugin" in_ns "$NODE" python3 "$HERE/cni.py" status "$WORK/rec.conflist"
    expect_contains "the IPAM plugin ran STATUS" "$(cat "$WORK/rec-rec-STATUS.env" 2>&1)" "CNI_COMMAND=STATUS"
    # 3. Its STATUS error is randsnat's.
    recording_ipam rec '{"cniVersion":"1.1.0","code":51,"msg":"pool almost exhausted"}'
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" status "$WORK/rec.conflist")
    expect_contains "the IPAM plugin's STATUS error comes back" "$out" '"code":51,"msg":"pool almost exhausted"'
    export CNI_PATH=$saved_path
}

test_standalone_layer2_only() {
    # "ipam": {} as with the reference bridge: links only, no IPAM call, no address, no SNAT.
    local list; list=$(standalone "$T-l2" '"promiscMode":true,"args":{"cni":{"mac":"02:42:c6:12:00:08"}},"dns":{"nameservers":["192.0.2.53"]}')
    sed -i 's/"ipam":{.*}}]}$/"ipam":{}}]}/' "$list"
    local before; before=$(nat_state)
    local result; result=$(pod_add "$list" 1)
    expect_contains "the result lists the pod's interface with args.cni.mac" "$result" '"mac":"02:42:c6:12:00:08","name":"eth0","sandbox"'
    expect_absent "the result has no ips" "$result" '"ips"'
    expect_contains "the result has the config's dns" "$result" '"dns":{"nameservers":["192.0.2.53"]}'
    expect_contains "the pod's eth0 is up" "$(in_ns "$T-pod1" ip link show eth0)" "state UP"
    expect_eq "the pod's eth0 has no global address" "$(in_ns "$T-pod1" ip -o addr show dev eth0 scope global | wc -l)" "0"
    expect_contains "the bridge is promiscuous" "$(in_ns "$NODE" ip link show rsnsa0)" "PROMISC"
    expect_eq "the bridge has no address" "$(in_ns "$NODE" ip -o addr show dev rsnsa0 scope global | wc -l)" "0"
    expect_eq "no IPAM ran" "$(ls "$WORK/ipam" | wc -l)" "0"
    expect_eq "no SNAT was written" "$(nat_state)" "$before"
    expect "CHECK passes" pod_check "$list" 1
    expect "DEL" pod_del "$list" 1
    # CNI_ARGS MAC= (the runtime's way): lowest precedence, so without args.cni.mac here.
    sed 's/"args":{"cni":{"mac":"02:42:c6:12:00:08"}},//' "$list" | python3 -c 'import json,sys; c=json.load(sys.stdin); p=c["plugins"][0]; p.update(name=c["name"], cniVersion=c["cniVersion"]); print(json.dumps(p))' > "$WORK/l2.json"
    ip netns add "$T-pod2"
    result=$(in_ns "$NODE" env CNI_COMMAND=ADD CNI_CONTAINERID="c2-$RUN" CNI_NETNS="/var/run/netns/$T-pod2" CNI_IFNAME=eth0 \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p2;MAC=02:42:c6:12:00:09" CNI_PATH="$CNI_PATH" "$RANDSNAT_BIN" < "$WORK/l2.json")
    expect_contains "CNI_ARGS MAC= sets the pod's MAC" "$(in_ns "$T-pod2" ip link show eth0)" "link/ether 02:42:c6:12:00:09 "
    expect_contains "... and the result's" "$result" '"mac":"02:42:c6:12:00:09","name":"eth0"'
    expect "DEL" in_ns "$NODE" env CNI_COMMAND=DEL CNI_CONTAINERID="c2-$RUN" CNI_NETNS="/var/run/netns/$T-pod2" CNI_IFNAME=eth0 \
        CNI_PATH="$CNI_PATH" "$RANDSNAT_BIN" < "$WORK/l2.json"
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
}

test_standalone_del_of_an_edited_config() {
    # A config edited after ADD (now invalid bridge keys) must not make DEL fail: DEL needs ipam.type.
    local list; list=$(standalone "$T-e")
    local before; before=$(nat_state)
    pod_add "$list" 1 >/dev/null
    sed -i 's/"bridge":"rsnsa0"/"bridge":"rsnsa0","mtu":70000,"vlan":5,"hairpinMode":true,"promiscMode":true/' "$list"
    expect_contains "the edited config is refused by ADD" "$(pod_add_may_fail "$list" 2)" '"code":7'
    expect "DEL of the edited config succeeds" pod_del "$list" 1
    expect_eq "the lease is released" "$(ls "$WORK/ipam/$T-e" | grep -c '^198\|^2001')" "0"
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    expect_eq "nat tables and sets as before" "$(nat_state)" "$before"
}

test_standalone_dhcp_ipam_finds_the_pods_link_up() {
    # The dhcp IPAM plugin talks on the pod's link, so randsnat makes it (up) before running it. This
    # `dhcp` records what it sees in CNI_NETNS, then hands the allocation to host-local.
    local saved_path=$CNI_PATH
    export CNI_PATH="$WORK/fakebin:$CNI_PATH"
    fake_ipam dhcp 'input=$(cat)
[ "$CNI_COMMAND" = ADD ] && nsenter --net="$CNI_NETNS" ip -o link show "$CNI_IFNAME" > '"$WORK"'/dhcp-saw 2>&1
printf "%s" "$input" | exec /usr/lib/cni/host-local'
    local list; list=$(standalone "$T-d")
    sed -i 's/"type":"host-local"/"type":"dhcp"/' "$list"
    local result; result=$(pod_add "$list" 1)
    expect_contains "ADD succeeds" "$result" '"address":"198.18.0.2/24"'
    expect_contains "the IPAM plugin found eth0 in the pod" "$(cat "$WORK/dhcp-saw" 2>&1)" ": eth0@"
    expect_contains "... and up" "$(cat "$WORK/dhcp-saw" 2>&1)" ",UP"
    expect_eq "ext sees the node" "$(ask 1 203.0.113.10)" "203.0.113.1"
    # host-local is not among them: it runs while the link is made.
    sed -i 's/"type":"dhcp"/"type":"host-local"/' "$list"
    fake_ipam host-local 'input=$(cat)
[ "$CNI_COMMAND" = ADD ] && nsenter --net="$CNI_NETNS" ip -o link show "$CNI_IFNAME" > '"$WORK"'/hl-saw 2>&1
printf "%s" "$input" | exec /usr/lib/cni/host-local'
    pod_add "$list" 2 >/dev/null
    # (It finds eth0 missing or down, depending on which is first; never up, as dhcp needs.)
    expect_absent "host-local ran while the link was being made (the overlap)" "$(cat "$WORK/hl-saw" 2>&1)" ",UP"
    pod_del "$list" 1 >/dev/null
    pod_del "$list" 2 >/dev/null
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    export CNI_PATH=$saved_path
}

backend_specific standalone_ip_masq_backend_selects_the_backend iptables "its config names the backend itself (ipMasqBackend), so the nftables pass's backend key would conflict"
test_standalone_ip_masq_backend_selects_the_backend() {
    # Backend-specific on purpose: the config names the backend itself (ipMasqBackend, the reference
    # bridge's key), so no "backend" key is written.
    local BACKEND=iptables
    # A node whose nat rules are in nf_tables: "auto" would pick nftables for a new network.
    in_ns "$NODE" nft add table ip nat
    in_ns "$NODE" nft add chain ip nat rspost '{ type nat hook postrouting priority srcnat + 10; }'
    in_ns "$NODE" nft add rule ip nat rspost ip daddr 192.0.2.98 return
    local list; list=$(standalone "$T-i" '"ipMasqBackend":"iptables"')
    pod_add "$list" 1 >/dev/null
    expect_contains "ipMasqBackend iptables: the chain is in iptables-legacy" "$(in_ns "$NODE" iptables-legacy-save -t nat)" ":RANDSNAT-"
    expect "ipMasqBackend iptables: no nf_tables table" bash -c "! ip netns exec $NODE nft list table inet randsnat"
    expect_eq "ext sees the node" "$(ask 1 203.0.113.10)" "203.0.113.1"
    pod_del "$list" 1 >/dev/null
    in_ns "$NODE" nft delete table ip nat
    list=$(standalone "$T-n" '"ipMasqBackend":"nftables"')
    pod_add "$list" 2 >/dev/null
    expect_contains "ipMasqBackend nftables: the pod is in the nf_tables set" "$(in_ns "$NODE" nft list table inet randsnat 2>&1)" "c2-$RUN"
    expect_absent "ipMasqBackend nftables: no iptables chain" "$(in_ns "$NODE" iptables-legacy-save -t nat)" ":RANDSNAT-"
    expect_eq "ext sees the node" "$(ask 2 203.0.113.10)" "203.0.113.1"
    pod_del "$list" 2 >/dev/null
    list=$(standalone "$T-c" '"ipMasqBackend":"nftables","backend":"iptables"')
    expect_contains "ipMasqBackend and backend that disagree are refused" "$(pod_add_may_fail "$list" 3)" \
        '"code":7,"msg":"ipMasqBackend: \"nftables\" conflicts with \"backend\": \"iptables\"'
    expect_eq "nothing was made" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
}
