# Many ADDs and DELs at once, with a foreign writer on the same nat table.

# pod_conf NETWORK ADDRESS: randsnat's config with a prevResult holding ADDRESS, as a chain passes it.
pod_conf() {
    local file="$WORK/$1-${2%%/*}.json"
    printf '{"cniVersion":"1.0.0","name":"%s","type":"randsnat","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"address":"%s","interface":0}]}}' \
        "$1" "$(sandbox)" "$2" > "$file"
    [ "$BACKEND" = nftables ] && sed -i 's/"type":"randsnat"/"type":"randsnat","backend":"nftables"/' "$file"
    echo "$file"
}

# foreign_writer FIRST LAST: kube-proxy-like writers appending rules numbered FIRST..LAST meanwhile, on the
# backend's netfilter: iptables-legacy -w (the same xtables lock); or `nft add rule` in a table of
# its own and iptables-nft -w. foreign_count: how many of those rules exist.
foreign_writer() {
    local i
    if [ "$BACKEND" = nftables ]; then
        for i in $(seq "$1" "$2"); do in_ns "$NODE" nft add rule inet rsforeign post ip daddr 192.0.2.$i return comment foreign; done &
        for i in $(seq "$1" "$2"); do in_ns "$NODE" iptables-nft -w 10 -t nat -A POSTROUTING -d 192.0.2.$i/32 -m comment --comment foreign -j RETURN; done &
    else
        for i in $(seq "$1" "$2"); do in_ns "$NODE" iptables-legacy -w 10 -t nat -A POSTROUTING -d 192.0.2.$i/32 -m comment --comment foreign -j RETURN; done &
    fi
    wait
}
foreign_count() {
    if [ "$BACKEND" = nftables ]; then
        echo $(( $(in_ns "$NODE" nft list table inet rsforeign | grep -c 'comment "foreign"') + $(in_ns "$NODE" iptables-nft-save -t nat | grep -c 'comment foreign') ))
    else in_ns "$NODE" iptables-legacy-save -t nat | grep -c 'comment foreign'; fi
}

test_concurrent_adds_and_dels_with_a_foreign_writer() {
    local before; before=$(nat_state)
    local per=1; [ "$BACKEND" = nftables ] && per=2  # rules per number: nft and iptables-nft
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft add table inet rsforeign
        in_ns "$NODE" nft add chain inet rsforeign post '{ type nat hook postrouting priority srcnat + 10; }'
    fi
    local n i pids=()
    foreign_writer 1 100 &
    local writer=$!
    # 50 ADDs over 5 networks: each network's first ADD writes its rules, the rest add set members.
    for n in 1 2 3 4 5; do
        for i in $(seq 1 10); do
            local conf; conf=$(pod_conf "$T-c$n" "198.18.$n.$((i + 1))/24")
            ( timeout 60 env CNI_COMMAND=ADD CNI_CONTAINERID="c$n-$i" CNI_NETNS="$(sandbox)" CNI_IFNAME=eth0 \
                CNI_PATH=/x ip netns exec "$NODE" "$RANDSNAT_BIN" < "$conf" > "$WORK/add-$n-$i.out" 2>&1; echo $? > "$WORK/add-$n-$i.rc" ) &
            pids+=($!)
        done
    done
    wait "${pids[@]}" "$writer"
    local bad=0
    for n in 1 2 3 4 5; do for i in $(seq 1 10); do [ "$(cat "$WORK/add-$n-$i.rc")" = 0 ] || { bad=$((bad + 1)); head -c 300 "$WORK/add-$n-$i.out"; }; done; done
    expect_eq "50 concurrent ADDs succeed" "$bad" "0"
    expect_eq "all $((100 * per)) foreign rules are there" "$(foreign_count)" "$((100 * per))"
    expect_eq "one jump per network" "$(jump_count)" "5"
    expect_eq "all 50 pods are members" "$(member_count)" "50"
    for n in 1 2 3 4 5; do
        expect "network $n: CHECK of its last pod passes" env CNI_COMMAND=CHECK CNI_CONTAINERID="c$n-10" CNI_NETNS="$(sandbox)" \
            CNI_IFNAME=eth0 CNI_PATH=/x ip netns exec "$NODE" "$RANDSNAT_BIN" < "$WORK/$T-c$n-198.18.$n.11.json"
    done
    foreign_writer 101 150 &
    writer=$!
    pids=()
    for n in 1 2 3 4 5; do
        for i in $(seq 1 10); do
            ( timeout 60 env CNI_COMMAND=DEL CNI_CONTAINERID="c$n-$i" CNI_NETNS="" CNI_IFNAME=eth0 CNI_PATH=/x \
                ip netns exec "$NODE" "$RANDSNAT_BIN" < "$WORK/$T-c$n-198.18.$n.$((i + 1)).json" > "$WORK/del-$n-$i.out" 2>&1; echo $? > "$WORK/del-$n-$i.rc" ) &
            pids+=($!)
        done
    done
    wait "${pids[@]}" "$writer"
    bad=0
    for n in 1 2 3 4 5; do for i in $(seq 1 10); do [ "$(cat "$WORK/del-$n-$i.rc")" = 0 ] || { bad=$((bad + 1)); head -c 300 "$WORK/del-$n-$i.out"; }; done; done
    expect_eq "50 concurrent DELs succeed" "$bad" "0"
    expect_eq "all $((150 * per)) foreign rules are there" "$(foreign_count)" "$((150 * per))"
    expect_absent "no randsnat rule or set is left" "$(nat_state)" "RANDSNAT"
    expect_absent "randsnat's nf_tables table went with its last network" "$(nat_state)" "table inet randsnat"
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft delete table inet rsforeign
        in_ns "$NODE" nft delete table ip nat
    else
        for i in $(seq 1 150); do in_ns "$NODE" iptables-legacy -w -t nat -D POSTROUTING -d 192.0.2.$i/32 -m comment --comment foreign -j RETURN; done
    fi
    expect_eq "the tables are as before" "$(nat_state)" "$before"
}

test_lock_timeout_is_code_11_and_changes_nothing() {
    local before; before=$(nat_state)
    # The lock a network's first ADD waits for: the xtables lock (iptables), randsnat's table lock (nftables).
    local lock="$WORK/xtables.lock"
    [ "$BACKEND" = nftables ] && { mkdir -p "$RANDSNAT_RUN_DIR"; lock="$RANDSNAT_RUN_DIR/nftables.lock"; }
    touch "$lock"
    flock "$lock" sleep 4 &
    local holder=$!
    sleep 0.2
    local conf; conf=$(pod_conf "$T-l" "198.18.0.2/24")
    sed -i "s/\"type\":\"randsnat\"/\"type\":\"randsnat\",\"lockTimeoutSeconds\":0.5${BACKEND:+,\"backend\":\"$BACKEND\"}/" "$conf"
    local out; out=$(env CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS="$(sandbox)" CNI_IFNAME=eth0 CNI_PATH=/x \
        XTABLES_LOCKFILE="$WORK/xtables.lock" ip netns exec "$NODE" "$RANDSNAT_BIN" < "$conf")
    expect_contains "ADD waiting on a held lock fails with code 11" "$out" '"code":11'
    expect_contains "the message names the lock" "$out" "$lock"
    expect_eq "nothing changed (the sets it made are gone)" "$(nat_state)" "$before"
    wait "$holder"
    expect "with the lock free, the same ADD works" env CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS="$(sandbox)" \
        CNI_IFNAME=eth0 CNI_PATH=/x XTABLES_LOCKFILE="$WORK/xtables.lock" ip netns exec "$NODE" "$RANDSNAT_BIN" < "$conf"
    env CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 CNI_PATH=/x ip netns exec "$NODE" "$RANDSNAT_BIN" < "$conf"
    expect_eq "and its DEL restores the tables" "$(nat_state)" "$before"
}
