# The nftables backend's own behaviour: auto detection, moving a network between backends, GC of
# randsnat's table, doctor, nft's own reading of the listing, what an earlier build left (member sets
# with flags dynamic,timeout, a departures chain).
# (The backend-neutral tests, the concurrent ADDs and DELs with foreign nft writers among them, run on
# it too: every test does unless it declares itself backend-specific; see lib.sh. The first test here
# is such a neutral one: what issue 14's nftables DEL must keep, held to on both backends.)

# rs_alone_conf CONFLIST RESULT_FILE: randsnat's entry of CONFLIST as a config of its own, with the
# chain's ADD result as prevResult (for running randsnat alone on a pod the chain added).
rs_alone_conf() {
    python3 - "$1" "$2" <<'PY'
import json, sys
conf, result = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
plugin = conf["plugins"][-1]
plugin.update(cniVersion=conf["cniVersion"], name=conf["name"], prevResult=result)
print(json.dumps(plugin))
PY
}

# A pod's DEL is complete when it returns: nothing of the pod is listed, the datapath no longer SNATs
# its address, and an ADD of the same address right after works and SNATs, 50 times in a row. (On
# nftables DEL deletes the element in one batch: the kernel's ACK means it is gone.)
test_del_is_complete_and_the_address_comes_back_at_once() {
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null   # resident: the network's rules stay, only the pod's own state goes
    local before; before=$(nat_state)
    pod_add "$list" 2 > "$WORK/pod2.json"
    local address; address=$(python3 -c 'import json,sys; print([i["address"].split("/")[0] for i in json.load(open(sys.argv[1]))["ips"] if "." in i["address"]][0])' "$WORK/pod2.json")
    rs_alone_conf "$list" "$WORK/pod2.json" > "$WORK/rs2.json"
    expect_eq "pod 2 ($address) is SNATed" "$(ask 2 203.0.113.10)" "203.0.113.1"
    # ext counts what reaches it from pod 2's own address, i.e. not SNATed.
    in_ns "$EXT" nft add table inet probe
    in_ns "$EXT" nft add chain inet probe input '{ type filter hook input priority 0; }'
    in_ns "$EXT" nft add rule inet probe input ip saddr "$address" counter
    # randsnat's DEL alone, not the chain's: pod 2 keeps its veth and address, so its packets show what
    # the datapath does with them. The listing is taken the moment DEL returns.
    local state
    state=$(randsnat_exec DEL "$WORK/rs2.json" "c2-$RUN" "/var/run/netns/$T-pod2" eth0 && nat_state) \
        || setup_failed "randsnat's DEL of pod 2 failed"
    expect_eq "when DEL returns, the node's netfilter state is as before pod 2" "$state" "$before"
    expect_absent "pod 2's address is in no set" "$(snat_members)" "$address "
    expect_contains "pod 2 is not SNATed any more: ext cannot answer" "$(ask 2 203.0.113.10)" "FAILED"
    expect_absent "ext saw packets with pod 2's own address as their source" "$(in_ns "$EXT" nft list chain inet probe input)" "packets 0 "
    # DEL then ADD of the same address, back to back, 50 times (bounded: 2 execs a round).
    local round failed=0
    for round in $(seq 50); do
        { randsnat_exec DEL "$WORK/rs2.json" "c2-$RUN" "/var/run/netns/$T-pod2" eth0 \
            && randsnat_exec ADD "$WORK/rs2.json" "c2-$RUN" "/var/run/netns/$T-pod2" eth0; } >/dev/null 2>"$WORK/round.err" \
            || { failed=$((failed + 1)); cat "$WORK/round.err" >&7; }
    done
    expect_eq "each ADD right after a DEL of the same address worked" "$failed" "0"
    expect_eq "the address is a member once, with pod 2's comment" "$(snat_members | grep -o "$address[^0-9].*c2-$RUN/eth0" | wc -l)" "1"
    expect_eq "pod 2 is SNATed again" "$(ask 2 203.0.113.10)" "203.0.113.1"
    pod_del "$list" 2 >/dev/null
    expect_eq "after the chain's DEL of pod 2, the state is as before it" "$(nat_state)" "$before"
    pod_del "$list" 1 >/dev/null
}

# iptables_nft_rules: kube-proxy in iptables-nft mode: its rules in nf_tables' ip nat table.
iptables_nft_rules() {
    in_ns "$NODE" iptables-nft -t nat -N KUBE-SERVICES
    in_ns "$NODE" iptables-nft -t nat -A PREROUTING -j KUBE-SERVICES
    in_ns "$NODE" iptables-nft -t nat -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 443 -j DNAT --to-destination 198.19.0.10:8080
}

backend_specific auto_follows_the_nodes_netfilter iptables "tests backend auto: its configs carry no backend key, as in the iptables pass; it makes the node an nf_tables node and back itself"
test_auto_follows_the_nodes_netfilter() {
    local conf; conf=$(randsnat_conf "$T-n")
    local out; out=$(randsnat_exec STATUS "$conf" 2>&1)
    expect_contains "an empty node counts as iptables-legacy" "$out" "netfilter: iptables-legacy"
    expect_contains "auto picks iptables there" "$out" "backend: iptables (auto)"
    iptables_nft_rules
    out=$(randsnat_exec STATUS "$conf" 2>&1)
    expect_contains "with iptables-nft rules and no legacy ones, auto picks nftables" "$out" "backend: nftables (auto)"
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null
    expect_contains "ADD wrote the pod into table inet randsnat" "$(in_ns "$NODE" nft list table inet randsnat)" "198.18.0.2 comment \"$T-n/c1-$RUN/eth0\""
    expect_absent "and nothing into the legacy nat table" "$(in_ns "$NODE" iptables-legacy-save -t nat)" "RANDSNAT"
    expect_eq "ext sees the node" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect "CHECK passes" pod_check "$list" 1
    # The node changes: a legacy nat rule appears. A network with state stays put until GC.
    in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -d 192.0.2.1/32 -j RETURN
    out=$(randsnat_exec STATUS "$conf" 2>&1)
    expect_contains "with legacy rules too, auto picks iptables" "$out" "backend: iptables (auto)"
    pod_add "$list" 2 >/dev/null
    expect_contains "ADD keeps a network where its state is" "$(in_ns "$NODE" nft list table inet randsnat)" "c2-$RUN"
    local gc; gc=$(randsnat_conf "$T-n" '"cni.dev/valid-attachments":[{"containerID":"c1-'"$RUN"'","ifname":"eth0"},{"containerID":"c2-'"$RUN"'","ifname":"eth0"}]')
    out=$(randsnat_exec GC "$gc" 2>&1)
    expect_contains "GC moves the network to the node's netfilter" "$out" "moved 4 pod address(es) from nftables to iptables"
    expect_contains "the pods are now ipset members" "$(in_ns "$NODE" ipset save)" "c1-$RUN"
    expect_absent "and randsnat's nf_tables table is gone" "$(in_ns "$NODE" nft list ruleset)" "randsnat"
    expect_eq "pod 1 is still SNATed" "$(ask 1 203.0.113.10)" "203.0.113.1"
    pod_del "$list" 1 >/dev/null
    pod_del "$list" 2 >/dev/null
    expect_absent "DEL finds the pods after the move" "$(nat_state)" "RANDSNAT"
    in_ns "$NODE" iptables-legacy -t nat -D POSTROUTING -d 192.0.2.1/32 -j RETURN
}

backend_specific backend_switch_moves_the_state_without_a_gap nftables "its configs name both backends: one run moves a network from iptables to nftables"
test_backend_switch_moves_the_state_without_a_gap() {
    local before; before=$(nat_state)
    local old; old=$(conflist "$T-n" '"backend":"iptables"')
    pod_add "$old" 1 >/dev/null
    pod_add "$old" 2 >/dev/null
    expect_eq "pod 1 is SNATed by iptables" "$(ask 1 203.0.113.10)" "203.0.113.1"
    # New connections from pod 1 all through the switch. ext counts every packet that reaches it
    # with a pod's own source address: a moment without SNAT shows there (a count of connection
    # stalls would not do: a 1 s SYN retry also happens now and then with no switch at all).
    in_ns "$EXT" nft add table inet probe
    in_ns "$EXT" nft add chain inet probe input '{ type filter hook input priority 0; }'
    in_ns "$EXT" nft add rule inet probe input ip saddr 198.18.0.0/16 counter
    in_ns "$T-pod1" python3 "$HERE/peer.py" load 203.0.113.10 8080 50000 4 > "$WORK/load" &
    local load=$!
    sleep 1
    local new; new=$(conflist "$T-n" '"backend":"nftables"')
    local out; out=$(pod_add "$new" 3 2>&1)
    wait "$load"
    local attempts refused slowest; read -r attempts refused slowest < "$WORK/load"
    expect "connections went on during the switch ($attempts, slowest ${slowest} ms)" test "${attempts:-0}" -gt 50
    expect_eq "none of them failed" "$refused" "0"
    expect_eq "ext saw no packet without SNAT" "$(in_ns "$EXT" nft list chain inet probe input | grep -o 'packets [0-9]*')" "packets 0"
    local tables; tables=$(in_ns "$NODE" nft list table inet randsnat)
    for pod in 1 2 3; do expect_contains "pod $pod is in the nftables set" "$tables" "c$pod-$RUN/eth0"; done
    expect_absent "nothing is left in the legacy nat table" "$(in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ipset save)" "RANDSNAT"
    for pod in 1 2 3; do expect_eq "pod $pod is SNATed" "$(ask $pod 203.0.113.10)" "203.0.113.1"; done
    expect "CHECK of an old pod passes with the new config" pod_check "$new" 1
    pod_del "$old" 1 >/dev/null
    pod_del "$new" 2 >/dev/null
    pod_del "$new" 3 >/dev/null
    expect_eq "after the DELs everything is as before" "$(nat_state)" "$before"
}

backend_specific nft_listing_reads_back_as_written nftables "nft's own reading of the nftables backend's table"
test_nft_listing_reads_back_as_written() {
    in_ns "$NODE" ip addr add 203.0.113.2/24 dev "${T}e0"
    local list; list=$(conflist "$T-n" '"backend":"nftables","toSource":["203.0.113.2","203.0.113.3-203.0.113.4"],"portRange":"40000-40999","nonMasqueradeCIDRs":["198.19.0.0/16","198.19.1.0/24","2001:db8:19::/48"],"egressInterface":"'"${T}e0"'"')
    pod_add "$list" 1 >/dev/null
    local listing; listing=$(in_ns "$NODE" nft list table inet randsnat)
    printf '%s\n' "$listing" > "$WORK/randsnat.nft"
    expect_contains "the bypass set holds the merged VPC range" "$listing" "198.19.0.0/16 comment \"nonMasqueradeCIDRs\""
    expect_contains "toSource items are spread with numgen" "$listing" "numgen random mod 2 0"
    expect_contains "the egress interface is matched by name" "$listing" "oifname \"${T}e0\""
    # nft itself reads the listing back: it is valid nft syntax, and loading it gives the same listing.
    ip netns add "$T-rt"
    expect "nft -f accepts the listing" in_ns "$T-rt" nft -f "$WORK/randsnat.nft"
    expect_eq "and lists it back the same" "$(in_ns "$T-rt" nft list table inet randsnat)" "$listing"
    expect "CHECK passes" pod_check "$list" 1
    pod_del "$list" 1 >/dev/null
}

backend_specific doctor_reads_the_nftables_backend nftables "doctor on the nftables backend; doctor_reports_each_condition is its iptables counterpart"
test_doctor_reads_the_nftables_backend() {
    doctor() { "$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 0 --cni-cache "$CNI_CACHE_DIR" "$@"; }
    local list; list=$(conflist "$T-n" '"backend":"nftables","portRange":"40000-40999"')
    pod_add "$list" 1 >/dev/null; pod_add "$list" 2 >/dev/null
    local out; out=$(doctor --json); expect_eq "with randsnat's pods in nf_tables it is healthy" "$?" "0"
    expect_eq "it lists the network, its pods and its backend" \
        "$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print([(n["name"], n["family"], n["pods"], n["backend"]) for n in d["networks"]])')" \
        "[('$T-n', 'ipv4', 2, 'nftables'), ('$T-n', 'ipv6', 2, 'nftables')]"
    expect_eq "randsnat's nf_tables rules are fully random" \
        "$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted(set((r["randsnat"], r["randomFully"]) for r in d["snatRules"])))')" "[(True, True)]"
    expect_contains "the capacity comes from their port range" "$(doctor)" "of 1000 ports each"
    expect_contains "randsnat's own table does not make the node an nf_tables node" "$(doctor)" "nf_tables nat rules: 0"
    rm "$CNI_CACHE_DIR/$T-n-c2-$RUN-eth0"
    out=$(doctor); expect_eq "an orphan member is a warning (exit 1)" "$?" "1"
    expect_contains "it names the orphan" "$out" "198.18.0.3 ($T-n/c2-$RUN/eth0)"
    pod_del "$list" 1 >/dev/null; pod_del "$list" 2 >/dev/null
}

# old_departures_chain SET: the departures chain as an earlier build kept it in randsnat's table (an
# output-hook chain whose rules deleted a departure packet's source from a member set).
old_departures_chain() {
    in_ns "$NODE" nft add chain inet randsnat departures '{ type filter hook output priority raw; policy accept; }'
    in_ns "$NODE" nft add rule inet randsnat departures meta l4proto != 253 accept \
        comment '"randsnat: every packet but a departing pod'"'"'s goes on"'
    in_ns "$NODE" nft add rule inet randsnat departures meta l4proto 253 ip daddr 127.0.0.1 @th,0,64 0x0102030405060708 \
        delete @"$1" '{ ip saddr }' drop comment '"randsnat: departing pods"'
}

# What an earlier build left: member sets with flags dynamic,timeout (their flags cannot change:
# ADD and DEL work in them as they are) and a departures chain, which the agent's pass, install and
# the removal of the last generation delete, while the pods keep their SNAT. Fails on 24387d6 (the
# agent leaves the chain).
backend_specific earlier_departures_chain_and_sets_are_handled nftables "the departures chain and set flags are the nftables backend's"
test_earlier_departures_chain_and_sets_are_handled() {
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null
    local set; set=$(member_set)
    expect_absent "randsnat makes its member sets without flags" "$(in_ns "$NODE" nft list set inet randsnat "$set")" "flags"
    pod_del "$list" 1 >/dev/null
    # The network's IPv4 member set as the earlier build made it, before its first pod comes back.
    in_ns "$NODE" nft add table inet randsnat
    in_ns "$NODE" nft add set inet randsnat "$set" '{ type ipv4_addr; flags dynamic,timeout; }'
    pod_add "$list" 1 >/dev/null
    pod_add "$list" 2 >/dev/null
    local listing; listing=$(in_ns "$NODE" nft list set inet randsnat "$set")
    expect_contains "ADD keeps the set as it is (its flags cannot change)" "$listing" "flags dynamic,timeout"
    expect_contains "and adds the pods to it" "$listing" "c2-$RUN/eth0"
    old_departures_chain "$set"
    expect_contains "(the earlier build's chain is there)" "$(in_ns "$NODE" nft list table inet randsnat)" "hook output priority raw"
    expect "the agent's pass converges" agent_once
    local table; table=$(in_ns "$NODE" nft list table inet randsnat)
    expect_absent "the agent removed the departures chain" "$table" "departures"
    expect_absent "and its hook" "$table" "hook output"
    expect_contains "it says so" "$(cat "$WORK/agent.log")" "removed chain departures of table inet randsnat"
    expect_eq "pod 1 is SNATed" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect_eq "pod 2 is SNATed" "$(ask 2 203.0.113.10)" "203.0.113.1"
    # install removes it too.
    old_departures_chain "$set"
    local root; root="$WORK/installroot"; mkdir -p "$root/etc/cni/net.d"
    printf '{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":"rsnbr9","ipam":{"type":"host-local","ranges":[[{"subnet":"198.18.9.0/24"}]]}}]}\n' \
        > "$root/etc/cni/net.d/10-pods.conflist"
    expect "install runs" in_ns "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" install --host-root "$root" --allow-earlier-snat
    expect_absent "install removed the departures chain" "$(in_ns "$NODE" nft list table inet randsnat)" "departures"
    expect_eq "pod 1 is still SNATed" "$(ask 1 203.0.113.10)" "203.0.113.1"
    pod_del "$list" 2 >/dev/null
    listing=$(in_ns "$NODE" nft list set inet randsnat "$set")
    expect_absent "DEL deletes pod 2's element from the set with flags dynamic,timeout" "$listing" "c2-$RUN/eth0"
    expect_contains "and leaves pod 1's" "$listing" "c1-$RUN/eth0"
    expect_eq "pod 1 is SNATed" "$(ask 1 203.0.113.10)" "203.0.113.1"
    # The last DEL removes the generation, whose set a departure rule names: the chain goes with it.
    old_departures_chain "$set"
    pod_del "$list" 1 >/dev/null
    expect_absent "the last DEL removes randsnat's table, departures chain and all" "$(in_ns "$NODE" nft list tables)" "randsnat"
}
