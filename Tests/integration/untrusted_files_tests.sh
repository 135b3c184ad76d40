# Files randsnat reads but others write (net.d, the settings file, pod records) and what it leaves in
# its run directory: a FIFO, a link to /dev/zero or a huge file in net.d is skipped with a line naming
# it; a record that is a link, names another attachment or is writable by others is ignored (DEL then
# finds the pod by its owner comments); temp records of dead writers and the record directory and lock
# file of a network that is gone are removed. Uses agent_tests.sh's helpers (node_conflist, agent_once).

# agent_bg [RESYNC]: the agent in the background (as agent_start), with its pid in AGENT_PID.
agent_bg() {
    ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --host-root "$WORK/root" --resync "${1:-1}" \
        2>>"$WORK/agent.log" &
    AGENT_PID=$!
}
# agent_kill: stops the agent, with SIGKILL when SIGTERM does not stop it within 2 s (an agent blocked
# in open(2) on a FIFO never reads its signalfd).
agent_kill() {
    [ -n "${AGENT_PID:-}" ] || return 0
    kill "$AGENT_PID" 2>/dev/null
    local i; for i in $(seq 20); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$AGENT_PID" 2>/dev/null
    wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
}
# rss_watch PID SECONDS LIMIT_MB: the largest RSS (MB) PID reached in SECONDS; SIGKILLs it past
# LIMIT_MB (so that an agent reading /dev/zero cannot take the machine's memory), printing "killed".
rss_watch() {
    local pid=$1 until=$(( $(date +%s%N) / 1000000 + $2 * 1000 )) max=0 rss
    while [ $(( $(date +%s%N) / 1000000 )) -lt "$until" ]; do
        rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null) || break
        [ -n "$rss" ] || break
        [ "$rss" -gt "$max" ] && max=$rss
        if [ "$rss" -gt "$3" ]; then kill -9 "$pid" 2>/dev/null; echo "killed at $rss"; return; fi
        sleep 0.05
    done
    echo "$max"
}
# rchar PID: the bytes PID has read so far (/proc/PID/io).
rchar() { awk '/^rchar:/ {print $2}' "/proc/$1/io" 2>/dev/null; }
# network_hash NETWORK: the network's hash (NetworkID.hash): its record directory and lock file name.
network_hash() { printf 'randsnat/%s' "$1" | sha256sum | cut -c1-11; }
# record_of N [NETWORK]: the path of pod N's record (network $T-n by default, ifname eth0).
record_of() {
    local network=${2:-$T-n} hash
    hash=$(printf '%s\0%s\0%s' "$network" "c$1-$RUN" eth0 | sha256sum | cut -c1-32)
    echo "$RANDSNAT_RUN_DIR/records/$(network_hash "$network")/$hash.json"
}

# A FIFO named 05-x.conflist in net.d does not block the agent: it keeps repairing flushes, --alive
# stays fine, and the FIFO is named once in its log. On 5df3a31 this fails: the agent blocks in
# open(2) on the FIFO at its first pass, repairs nothing, and --alive fails.
test_agent_is_not_blocked_by_a_fifo_in_net_d() {
    local list; list=$(node_conflist "$T-n" "")
    for pod in 1 2; do pod_add "$list" $pod >/dev/null; done
    mkfifo "$WORK/root/etc/cni/net.d/05-x.conflist"
    agent_bg 1
    sleep 0.5
    in_ns "$NODE" sh -c "$(flush_steps | head -1)"
    expect "the agent repairs a flush with a FIFO in net.d" test "$(wait_repaired 2)" != never
    sleep 3.5
    local alive=(in_ns "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --resync 1 --alive)
    expect "the liveness probe passes 3 periods later" "${alive[@]}"
    in_ns "$NODE" sh -c "$(flush_steps | head -1)"
    expect "and it repairs a second flush" test "$(wait_repaired 2)" != never
    expect_eq "the FIFO is named once in the log, with the reason" "$(grep -c '05-x.conflist is a FIFO, not a regular file' "$WORK/agent.log")" "1"
    agent_kill
    expect_contains "agent --once does not block either" "$(timeout 10 ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" \
        "$RANDSNAT_BIN" agent --host-root "$WORK/root" --once 2>&1)" "05-x.conflist is a FIFO"
    rm -f "$WORK/root/etc/cni/net.d/05-x.conflist"
    for pod in 1 2; do pod_del "$list" $pod >/dev/null; done
}

# A link to /dev/zero and a 10 MB file in net.d are refused without being read: the agent's memory
# stays flat and it reads far less than 10 MB per pass, while it still repairs a flush. On 5df3a31
# this fails: the agent reads /dev/zero until rss_watch kills it at 400 MB (in about a second), and
# reads the 10 MB file whole on every pass.
backend_specific agent_refuses_dev_zero_and_huge_files_in_net_d nftables "reading net.d does not depend on the backend; test_agent_is_not_blocked_by_a_fifo_in_net_d repairs on both"
test_agent_refuses_dev_zero_and_huge_files_in_net_d() {
    local list; list=$(node_conflist "$T-n" "")
    pod_add "$list" 1 >/dev/null
    ln -s /dev/zero "$WORK/root/etc/cni/net.d/06-zero.conflist"
    head -c 10000000 /dev/zero | tr '\0' ' ' > "$WORK/root/etc/cni/net.d/07-big.conflist"
    agent_bg 1
    local rss; rss=$(rss_watch "$AGENT_PID" 3 400)
    echo "    largest agent RSS over 3 s: $rss MB"
    expect "the agent's RSS stays under 60 MB with /dev/zero in net.d" test "${rss/killed*/999}" -lt 60
    local before after; before=$(rchar "$AGENT_PID")
    sleep 2.2  # two passes
    after=$(rchar "$AGENT_PID")
    echo "    bytes read over two passes: $(( ${after:-0} - ${before:-0} ))"
    expect "two passes read less than 1 MB (the 10 MB file is not read whole)" test "$(( ${after:-99999999} - ${before:-0} ))" -lt 1000000
    in_ns "$NODE" sh -c "$(flush_steps | head -1)"
    expect "the agent still repairs a flush" test "$(wait_repaired 1)" != never
    local log; log=$(cat "$WORK/agent.log")
    expect_contains "the link to /dev/zero is named with the reason" "$log" "06-zero.conflist is a character device, not a regular file"
    expect_contains "the 10 MB file is named with the reason" "$log" "07-big.conflist is larger than 1048576 bytes"
    agent_kill
    rm -f "$WORK/root/etc/cni/net.d/06-zero.conflist" "$WORK/root/etc/cni/net.d/07-big.conflist"
    pod_del "$list" 1 >/dev/null
}

# `install --check` (the DaemonSet's readiness probe) and `install` skip a FIFO, a link to /dev/zero
# and a 10 MB file in net.d, and refuse a settings file that is a FIFO, each in bounded time and
# memory. On 5df3a31 this fails: --check blocks on the FIFO until `timeout` kills it, and reads
# /dev/zero until its address-space limit stops it.
backend_specific install_check_skips_files_it_cannot_read iptables "the installer reads and writes files; nothing in it depends on the backend"
test_install_check_skips_files_it_cannot_read() {
    local root="$WORK/hostroot"; mkdir -p "$root/etc/cni/net.d"
    printf '%s\n' "$BRIDGE_CONF" > "$root/etc/cni/net.d/10-bridge.conflist"
    # Bounded: 10 s and 2 GB of address space per run.
    local run=(timeout 10 sh -c 'ulimit -v 2000000; exec "$@"' sh "$RANDSNAT_BIN")
    expect "install chains randsnat" "${run[@]}" install --host-root "$root"
    mkfifo "$root/etc/cni/net.d/05-x.conflist"
    ln -s /dev/zero "$root/etc/cni/net.d/06-zero.conflist"
    head -c 10000000 /dev/zero | tr '\0' ' ' > "$root/etc/cni/net.d/07-big.conflist"
    local out status start took
    start=$(now_ms)
    out=$("${run[@]}" install --host-root "$root" --check 2>&1); status=$?
    took=$(( $(now_ms) - start ))
    echo "    install --check took $took ms"
    expect_eq "install --check passes (the primary chains randsnat)" "$status" "0"
    expect "and returns within 2 s" test "$took" -lt 2000
    expect_contains "it names the FIFO" "$out" "05-x.conflist is a FIFO, not a regular file"
    expect_contains "it names the link to /dev/zero" "$out" "06-zero.conflist is a character device"
    expect_contains "it names the 10 MB file" "$out" "07-big.conflist is larger than 1048576 bytes"
    out=$("${run[@]}" install --host-root "$root" 2>&1); status=$?
    expect_eq "install passes as well" "$status" "0"
    mkfifo "$WORK/settings.fifo"
    out=$("${run[@]}" install --host-root "$root" --config "$WORK/settings.fifo" 2>&1); status=$?
    expect_eq "a settings file that is a FIFO is refused (exit 3), not waited on" "$status" "3"
    expect_contains "and named" "$out" "settings.fifo is a FIFO, not a regular file"
    # A ConfigMap volume: the settings file is a link into ..data/.
    mkdir -p "$WORK/cm/..2026" && ln -s ..2026 "$WORK/cm/..data"
    echo '{"nonMasqueradeCIDRs":["198.19.0.0/16"]}' > "$WORK/cm/..2026/config.json"
    ln -s ..data/config.json "$WORK/cm/config.json"
    expect "a settings file behind ConfigMap links is read" "${run[@]}" install --host-root "$root" --config "$WORK/cm/config.json"
    expect_contains "and applied" "$(cat "$root/etc/cni/net.d/10-bridge.conflist")" "198.19.0.0/16"
}

# A record is not trusted as found: pod 8's record replaced by a link to pod 9's, and pod 7's by a copy
# of pod 9's (a regular file naming another container). DEL of pods 8 and 7 removes their own members
# (found by their owner comments) and leaves pod 9's member, record and SNAT. On 5df3a31 this fails:
# DEL of pod 8 follows the link, removes pod 9's member and leaves pod 8's.
test_del_ignores_a_record_that_is_a_link_or_names_another_pod() {
    local list; list=$(conflist "$T-n" "")
    for pod in 6 7 8 9; do pod_add "$list" $pod >/dev/null; done
    local r7 r8 r9; r7=$(record_of 7); r8=$(record_of 8); r9=$(record_of 9)
    expect "pod 9's record is where it is looked for" test -f "$r9"
    local saved; saved=$(cat "$r9")
    rm -f "$r8"; ln -s "$r9" "$r8"
    cp "$r9" "$r7"
    pod_del "$list" 8 >/dev/null
    local members; members=$(snat_members)
    expect_absent "DEL of pod 8 removed pod 8's member" "$members" "c8-$RUN"
    expect_contains "and left pod 9's" "$members" "c9-$RUN"
    expect "the link is gone" test ! -e "$r8" -a ! -L "$r8"
    expect_eq "pod 9's record is unchanged" "$(cat "$r9")" "$saved"
    pod_del "$list" 7 >/dev/null
    members=$(snat_members)
    expect_absent "DEL of pod 7 (a record naming pod 9) removed pod 7's member" "$members" "c7-$RUN"
    expect_contains "and left pod 9's" "$members" "c9-$RUN"
    expect_eq "pod 9 is still SNATed" "$(ask 9 203.0.113.10)" "203.0.113.1"
    # A record writable by others is ignored by the agent too, and reported (pod 6's record names the
    # network to the agent).
    chmod 0666 "$r9"
    local out; out=$(in_ns "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --host-root "$WORK/root" --once 2>&1)
    expect_contains "the agent reports a record writable by others" "$out" "writable by group or others (mode 666)"
    chmod 0600 "$r9"
    for pod in 6 9; do pod_del "$list" $pod >/dev/null; done
    expect_absent "nothing of randsnat is left" "$(nat_state)" "RANDSNAT"
}

# Temp records (`<record>.json.tmp<pid>`, what an ADD killed between create and rename leaves) go once
# their writer is gone: GC and the agent remove them; one whose writer lives stays. GC also removes a
# file it cannot trust (a link) at the record name of a gone attachment. On 5df3a31 this fails:
# nothing removes them.
backend_specific temp_records_of_dead_writers_are_removed iptables "record files do not depend on the backend"
test_temp_records_of_dead_writers_are_removed() {
    local list; list=$(node_conflist "$T-n" "")
    pod_add "$list" 1 >/dev/null
    local record; record=$(record_of 1)
    local dead; dead=$(sh -c 'echo $$')
    sleep 30 & local live=$!
    echo '{"version":1' > "$record.tmp$dead"; chmod 600 "$record.tmp$dead"
    echo '{"version":1' > "$record.tmp$live"; chmod 600 "$record.tmp$live"
    agent_once
    expect "the agent removed the temp record of a dead writer" test ! -e "$record.tmp$dead"
    expect "and kept the one of a live writer" test -e "$record.tmp$live"
    expect_contains "and said so" "$(cat "$WORK/agent.log")" "left by process $dead, which is gone"
    kill "$live"; wait "$live" 2>/dev/null
    cp "$record" "$record.tmp$live"
    ln -s "$record" "$(record_of 5)"  # at the record name of an attachment that is gone
    expect "GC keeping pod 1" randsnat_exec GC "$(randsnat_conf "$T-n" '"cni.dev/valid-attachments":[{"containerID":"c1-'"$RUN"'","ifname":"eth0"}]')"
    expect "GC removed the temp record once its writer was gone" test ! -e "$record.tmp$live"
    expect "and kept the record" test -e "$record"
    expect "GC removed the link at the record name of a gone attachment" test ! -L "$(record_of 5)"
    pod_del "$list" 1 >/dev/null
}

# A network that is gone (no record, no config in net.d) leaves no record directory and no lock file:
# the agent prunes them; a network still in net.d keeps its lock file. ADDs and DELs racing the
# pruning (agent --once passes back to back) never lose a record or a member. On 5df3a31 this fails:
# the empty directory and the lock file stay.
test_agent_prunes_networks_that_are_gone() {
    local kept; kept=$(node_conflist "$T-k" "")
    local list; list=$(conflist "$T-n" "")
    pod_add "$kept" 1 >/dev/null; pod_del "$kept" 1 >/dev/null
    pod_add "$list" 2 >/dev/null
    local hash; hash=$(network_hash "$T-n")
    # Racing: ADD and DEL of pod 2 while agent passes prune (the network is not in net.d).
    local stop="$WORK/stop"; : > "$WORK/passes"
    ( while [ ! -e "$stop" ] && [ "$(wc -l < "$WORK/passes")" -lt 200 ]; do
        ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" timeout 10 "$RANDSNAT_BIN" agent --host-root "$WORK/root" --once 2>>"$WORK/agent.log"
        echo >> "$WORK/passes"; done ) &
    local looper=$! lost=0 i
    for i in $(seq 10); do
        pod_del "$list" 2 >/dev/null
        pod_add "$list" 2 >/dev/null
        [ -f "$(record_of 2)" ] || lost=$((lost + 1))
        member_count | grep -qx 1 || lost=$((lost + 1))
    done
    touch "$stop"; wait "$looper"
    echo "    agent passes during 10 DEL+ADD: $(wc -l < "$WORK/passes")"
    expect_eq "no record or member lost to the pruning" "$lost" "0"
    pod_del "$list" 2 >/dev/null
    expect "after the last DEL the network's lock file is still there" test -e "$RANDSNAT_RUN_DIR/$hash.lock"
    agent_once
    expect "the agent removed the record directory of the network that is gone" test ! -e "$RANDSNAT_RUN_DIR/records/$hash"
    expect "and its lock file" test ! -e "$RANDSNAT_RUN_DIR/$hash.lock"
    expect "the network in net.d keeps its lock file" test -e "$RANDSNAT_RUN_DIR/$(network_hash "$T-k").lock"
    expect_contains "the agent said what it removed" "$(cat "$WORK/agent.log")" "the lock file of a network that is gone"
    pod_add "$list" 2 >/dev/null
    expect "an ADD after the pruning writes its record again" test -f "$(record_of 2)"
    pod_del "$list" 2 >/dev/null
}
