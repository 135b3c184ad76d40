# Pods randsnat never saw: set up by the bridge plugin alone, before randsnat was chained into the
# network's conflist (a sandbox started just before the installer ran). libcni's result cache still
# holds them; the agent adopts them from it. The cache entries are written by cni.py, the suite's
# libcni, in libcni's own format (cniCacheV1, `NETWORK-CONTAINER-IFNAME`), after running the real
# reference bridge and host-local plugins.

# bridge_only LIST: the network's conflist without randsnat (as it was before the installer chained
# randsnat in); prints its path.
bridge_only() {
    python3 -c 'import json, sys
c = json.load(open(sys.argv[1])); c["plugins"] = [p for p in c["plugins"] if p["type"] != "randsnat"]
json.dump(c, open(sys.argv[2], "w"))' "$1" "$WORK/bridge-only.conflist"
    echo "$WORK/bridge-only.conflist"
}

# cache_entry_like N CONTAINER ADDRESS: a cache entry for CONTAINER made from pod N's, with ADDRESS
# as its IPv4 address (a pod the agent must refuse); prints the file's name.
cache_entry_like() {
    local from; from=$(ls "$CNI_CACHE_DIR" | grep -- "-c$1-$RUN-eth0\$")
    local name=${from%-c$1-$RUN-eth0}-$2-eth0
    python3 -c 'import json, sys
e = json.load(open(sys.argv[1])); e["containerId"] = sys.argv[2]
e["result"]["ips"] = [ip for ip in e["result"]["ips"] if ":" not in ip["address"]]
e["result"]["ips"][0]["address"] = sys.argv[3]
json.dump(e, open(sys.argv[4], "w"))' "$CNI_CACHE_DIR/$from" "$2" "$3" "$CNI_CACHE_DIR/$name"
    echo "$name"
}

# Fails on 5df3a31 (the landed binary): `randsnat agent` does not know --cni-cache (usage, exit 2)
# and, without it, ignores the bridge-only pods: no member, no record, ext never answers them, no
# "adopted" line; STATUS passes and doctor says ok while the pods have no SNAT.
test_agent_adopts_pods_it_never_saw() {
    local list; list=$(node_conflist "$T-ad" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    local chained=$WORK/chained.conflist
    cp "$list" "$chained"
    local plain; plain=$(bridge_only "$chained")
    cp "$plain" "$list"
    pod_add "$plain" 1 >/dev/null || return
    pod_add "$plain" 2 >/dev/null || return
    expect "before: ext does not answer a bridge-only pod (no SNAT, no route back)" test "$(ask 1 203.0.113.10)" != "203.0.113.1"
    # A pod the agent must refuse: its cached address is outside the network's IPAM subnets.
    local refused; refused=$(cache_entry_like 2 "c9-$RUN" 198.18.7.9/24)
    # And a FIFO named as the network's entry (a read of it would block for good).
    local fifo="$T-ad-fifo-eth0"
    mkfifo "$CNI_CACHE_DIR/$fifo"
    # The installer chains randsnat in (a temp file renamed over the conflist).
    cp "$chained" "$WORK/root/etc/cni/net.d/.10-net.conflist.tmp"
    mv "$WORK/root/etc/cni/net.d/.10-net.conflist.tmp" "$list"
    export RANDSNAT_CNI_CACHE=$CNI_CACHE_DIR
    local conf; conf=$(randsnat_conf "$T-ad")
    local out; out=$(randsnat_exec STATUS "$conf")
    expect_contains "STATUS says the pods have no SNAT (code 51)" "$out" '"code":51'
    expect_contains "and names them" "$out" "3 pod(s) in libcni's cache have no SNAT: randsnat never saw their ADD ($T-ad-c1-$RUN-eth0, $T-ad-c2-$RUN-eth0, $refused)"

    local once=(in_ns "$NODE" timeout 30 env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --host-root "$WORK/root" --cni-cache "$CNI_CACHE_DIR" --once)
    "${once[@]}" 2> "$WORK/once.log"; local status=$?
    local log; log=$(cat "$WORK/once.log")
    expect_eq "agent --once exits 1: a pod it cannot adopt is left without SNAT" "$status" "1"
    expect_contains "the agent logs the adoption of pod 1" "$log" "adopted $T-ad/c1-$RUN/eth0 (198.18.0."
    expect_contains "and of pod 2" "$log" "adopted $T-ad/c2-$RUN/eth0"
    expect_contains "and says which pod it cannot adopt, and why" "$log" "$refused has no SNAT and cannot be adopted: its address 198.18.7.9/24 is outside the subnets of the network's IPAM (198.18.0.0/24, 2001:db8:18::/64)"
    expect_contains "and the FIFO, without blocking on it" "$log" "$fifo has no SNAT and cannot be adopted: it is a FIFO, not a regular file"
    expect_eq "the adopted pods have their members" "$(member_count)" "2"
    expect_eq "and their records" "$(find "$RANDSNAT_RUN_DIR/records" -name '*.json' | wc -l)" "2"
    expect_eq "ext sees pod 1 SNATed to the node" "$(ask 1 203.0.113.10)" "203.0.113.1"
    expect_eq "and pod 2" "$(ask 2 203.0.113.10)" "203.0.113.1"
    expect_eq "and pod 1 over IPv6" "$(ask 1 2001:db8:ee::10)" "2001:db8:ee::1"
    expect_contains "vpc sees pod 1's own address (the config's bypass)" "$(ask 1 198.19.0.10)" "198.18.0."
    expect "CHECK of the chained config passes for an adopted pod" pod_check "$list" 1

    out=$(randsnat_exec STATUS "$conf")
    expect_contains "STATUS still fails (51) for the pod that cannot be adopted" "$out" '"code":51'
    expect_contains "naming only it" "$out" "1 pod(s) in libcni's cache have no SNAT: randsnat never saw their ADD ($refused)"
    expect_contains "and the FIFO" "$out" "libcni's cache entry $fifo: it is a FIFO, not a regular file"
    out=$("$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 0 --cni-cache "$CNI_CACHE_DIR"); status=$?
    expect_eq "doctor calls it a problem (exit 2)" "$status" "2"
    expect_contains "and names it" "$out" "randsnat never saw their ADD ($refused)"
    agent_reconciling_up
    expect_eq "the metrics count it and the FIFO" "$(scraped "randsnat_network_pods_unadopted{network=\"$T-ad\"}")" "2"
    kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    expect_absent "the running agent adopted nothing twice" "$(cat "$WORK/agent.log")" "randsnat agent: adopted"
    expect_contains "and logged the refusal" "$(cat "$WORK/agent.log")" "$refused has no SNAT and cannot be adopted"

    rm "$CNI_CACHE_DIR/$refused" "$CNI_CACHE_DIR/$fifo"
    expect "without it agent --once converges (exit 0)" "${once[@]}"
    expect "and STATUS passes" randsnat_exec STATUS "$conf"
    for pod in 1 2; do pod_del "$list" $pod >/dev/null; done
    expect_eq "DEL of the chained config removes the adopted pods' members" "$(member_count)" "0"
    expect_eq "and their records" "$(find "$RANDSNAT_RUN_DIR/records" -name '*.json' | wc -l)" "0"
    unset RANDSNAT_CNI_CACHE
}

# The same with a real runtime: podman's CNI backend (libcni itself) sets up a container with the
# bridge-only conflist and writes libcni's cache; randsnat is chained in; `randsnat agent --once`
# adopts the container; its removal (DEL through the chained conflist) takes the member away. podman
# keeps its cache at libcni's default, /var/lib/cni/results: the scenario runs in a mount namespace of
# its own whose /var/lib is a tmpfs (the host's entries bound back in), so the host's stays untouched.
# Fails on 5df3a31: `agent --cni-cache` is a usage error (exit 2) and the container is never SNATed.
backend_specific agent_adopts_a_podman_container iptables "podman's own netfilter use is the same on both; one pass shows libcni's real cache is read (agent_adopts_pods_it_never_saw covers both backends)"
test_agent_adopts_a_podman_container() {
    local list; list=$(conflist "$T-pd" '')
    local chained=$WORK/pd-chained.conflist
    cp "$list" "$chained"
    local plain; plain=$(bridge_only "$chained")
    local had_cache_dir=0; [ ! -e /var/lib/cni ] || had_cache_dir=1
    local envs; envs=$(podman_env)
    cp "$plain" "$WORK/podman/net.d/$T-pd.conflist"
    mkdir -p "$WORK/pdroot/etc/cni"
    ln -s "$WORK/podman/net.d" "$WORK/pdroot/etc/cni/net.d"
    export T WORK NODE RANDSNAT_BIN RANDSNAT_RUN_DIR envs chained BACKEND
    export -f in_ns member_count
    unshare -m --propagation private bash -c '
        mkdir -p "$WORK/varlib"
        mount --bind /var/lib "$WORK/varlib" && mount -t tmpfs tmpfs /var/lib || exit 9
        for entry in "$WORK"/varlib/* "$WORK"/varlib/.[!.]*; do
            [ -e "$entry" ] || continue
            name=$(basename "$entry")
            if [ -d "$entry" ]; then mkdir "/var/lib/$name"; else touch "/var/lib/$name"; fi
            mount --bind "$entry" "/var/lib/$name"
        done
        pm() { env $envs timeout 120 nsenter --net="/var/run/netns/$NODE" podman --cgroup-manager cgroupfs "$@"; }
        pm run -d --name "$T-box" --network "$T-pd" --rootfs "$WORK/podman/rootfs" /bin/busybox sleep 120 >/dev/null
        ls /var/lib/cni/results > "$WORK/pd-cache"
        pm exec "$T-box" /bin/busybox nc -w 3 203.0.113.10 8080 > "$WORK/pd-before" 2>&1
        cp "$chained" "$WORK/podman/net.d/.$T-pd.tmp" && mv "$WORK/podman/net.d/.$T-pd.tmp" "$WORK/podman/net.d/$T-pd.conflist"
        nsenter --net="/var/run/netns/$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" timeout 30 \
            "$RANDSNAT_BIN" agent --host-root "$WORK/pdroot" --cni-cache /var/lib/cni/results --once 2> "$WORK/pd-agent.log"
        echo $? > "$WORK/pd-status"
        member_count > "$WORK/pd-members"
        pm exec "$T-box" /bin/busybox nc -w 3 203.0.113.10 8080 > "$WORK/pd-after" 2>&1
        pm rm -f -t 0 "$T-box" >/dev/null 2>&1
        member_count > "$WORK/pd-members-removed"
        sleep 1.1  # the cache directory changed less than a second ago is read anyway; this is the usual case
        nsenter --net="/var/run/netns/$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" timeout 30 \
            "$RANDSNAT_BIN" agent --host-root "$WORK/pdroot" --cni-cache /var/lib/cni/results --once 2>> "$WORK/pd-agent.log"
        member_count > "$WORK/pd-members-after"
        ls /var/lib/cni/results > "$WORK/pd-cache-after"
    ' >&7 2>&1
    expect_contains "podman's libcni wrote the container's cache entry" "$(cat "$WORK/pd-cache")" "$T-pd-"
    expect "before: ext does not answer the bridge-only container" test "$(cat "$WORK/pd-before")" != "203.0.113.1"
    expect_eq "agent --once converges (exit 0)" "$(cat "$WORK/pd-status")" "0"
    expect_contains "and logs the adoption" "$(cat "$WORK/pd-agent.log")" "adopted $T-pd/"
    expect_eq "the container has its member" "$(cat "$WORK/pd-members")" "1"
    expect_eq "ext sees the container SNATed to the node" "$(cat "$WORK/pd-after")" "203.0.113.1"
    # podman tears the container down with the config it was set up with (libcni's cached config, the
    # bridge alone): randsnat's DEL never runs for it, and its member stays until the agent's next pass.
    expect_eq "podman's removal leaves the member (its DEL is the bridge-only config's)" "$(cat "$WORK/pd-members-removed")" "1"
    expect_eq "libcni removed its cache entry" "$(cat "$WORK/pd-cache-after")" ""
    expect_contains "the agent then releases the adopted container" "$(cat "$WORK/pd-agent.log")" "released adopted $T-pd/"
    expect_eq "its member is gone" "$(cat "$WORK/pd-members-after")" "0"
    expect_eq "and its record" "$(find "$RANDSNAT_RUN_DIR/records" -name '*.json' 2>/dev/null | wc -l)" "0"
    [ $had_cache_dir = 1 ] || expect "the host's /var/lib/cni was not made" test ! -e /var/lib/cni
    podman_done "$T-pd"
}
