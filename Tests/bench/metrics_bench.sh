#!/usr/bin/env bash
# One conntrack scan and one scrape of randsnat-agent with N conntrack entries in a throwaway
# namespace, and the kernel's floor for the same table: scan time (the agent's own
# randsnat_conntrack_scan_duration_seconds), the agent's CPU (user + system: the system part is the
# kernel building the dump), scrape time, the agent's RSS (VmRSS after the scan, VmHWM: the peak);
# then, on the same entries, a bare dump (Tests/bench/conntrack_dump.py: the agent's request, replies
# read and dropped: its system time is what the kernel spends whatever the reader does), the same
# dump with a status filter that matches nothing (the kernel walks the table and builds no message:
# the cost of an entry the SNAT filter skips), and `conntrack -L` (conntrack-tools) for comparison.
# Usage (root): Tests/bench/metrics_bench.sh [N...]   (default 100000 250000)
#   RANDSNAT_BENCH_TUPLES      distinct (destination, port) tuples (default 20000: more than the
#                              summary's 4,096 slots, its worst case: nearly every entry an eviction)
#   RANDSNAT_BENCH_SNAT_PERCENT  share of the entries SNATed (default 100; the rest plain flows)
#   RANDSNAT_BENCH_RAISE_MAX=1 entries beyond nf_conntrack_max: raises the initial namespace's
#                              nf_conntrack_max for the run and puts the old value back at the end.
#                              That sysctl is the one setting of the initial namespace this touches
#                              (a child namespace cannot raise it: 6.18 refuses the write there).
# Wall times depend on what else runs on the machine; CPU times much less.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AGENT=${RANDSNAT_AGENT_BIN:-$ROOT/.build/release/randsnat-agent}
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000 250000)
NS=rsbench$$
old_max=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
cleanup() {
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    [ "$(cat /proc/sys/net/netfilter/nf_conntrack_max)" = "$old_max" ] || echo "$old_max" > /proc/sys/net/netfilter/nf_conntrack_max
}
trap cleanup EXIT
# cpu_of COMMAND...: "user + sys" seconds of the command (and its children).
cpu_of() { /usr/bin/time -f '%U s + %S s' "$@" 2>&1 >/dev/null | tail -1; }
percent=${RANDSNAT_BENCH_SNAT_PERCENT:-100}
tuples=${RANDSNAT_BENCH_TUPLES:-20000}
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| entries | SNAT tuples | scan (agent, wall) | agent CPU user + sys | scrape (slowest during the scan) | RSS after scan | peak RSS | bare dump: CPU user + sys (wall) | walk only (filter matching nothing): sys | conntrack -L: user + sys |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for n in "${sizes[@]}"; do
    if [ "$n" -gt "$old_max" ]; then
        [ "${RANDSNAT_BENCH_RAISE_MAX:-0}" = 1 ] || { echo "| $n | skipped: above nf_conntrack_max ($old_max); RANDSNAT_BENCH_RAISE_MAX=1 raises it for the run |"; continue; }
        echo $((n + n / 10)) > /proc/sys/net/netfilter/nf_conntrack_max
    fi
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    timeout 900 ip netns exec "$NS" python3 "$HERE/conntrack_fill.py" "$n" "$tuples" "$percent" >/dev/null
    count=$(ip netns exec "$NS" conntrack -C)
    ip netns exec "$NS" "$AGENT" --metrics 127.0.0.1:9469 --no-reconcile --scan-interval 3600 >/dev/null 2>&1 &
    pid=$!
    # Scrapes while the first scan runs: the slowest of them says whether a scan holds up a scrape.
    scans="" during=0
    for _ in $(seq 1200); do
        t0=$(date +%s%N)
        scans=$(ip netns exec "$NS" curl -sf 127.0.0.1:9469/metrics 2>/dev/null | awk '/^randsnat_conntrack_scans_total/ {print $2}')
        t=$(( ($(date +%s%N) - t0) / 1000000 )); [ -n "$scans" ] && [ "$t" -gt "$during" ] && during=$t
        [ "${scans:-0}" -ge 1 ] && break
        sleep 0.1
    done
    start=$(date +%s%N)
    text=$(ip netns exec "$NS" curl -sf 127.0.0.1:9469/metrics)
    scrape_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    scan=$(printf '%s\n' "$text" | awk '/^randsnat_conntrack_scan_duration_seconds/ {printf "%.2f s", $2}')
    seen=$(printf '%s\n' "$text" | awk '/^randsnat_conntrack_scan_snat_entries/ {print $2}')
    kept=$(printf '%s\n' "$text" | awk '/^randsnat_conntrack_scan_tuples/ {print $2}')
    rss=$(awk '/^VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$pid/status")
    cpu=$(awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f s + %.2f s", $14/tck, $15/tck}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null
    bare=$(ip netns exec "$NS" python3 "$HERE/conntrack_dump.py" | awk '{printf "%s s + %s s (%s s)", $10, $12, $8}')
    walk=$(ip netns exec "$NS" python3 "$HERE/conntrack_dump.py" 0 0xffffffff | awk '{printf "%s s", $12}')
    list=$(cpu_of ip netns exec "$NS" conntrack -L)
    echo "| $count ($seen SNATed) | $tuples (summary keeps $kept) | $scan | $cpu | $scrape_ms ms ($during ms) | $rss | $hwm | $bare | $walk | $list |"
    ip netns del "$NS"
    [ "$(cat /proc/sys/net/netfilter/nf_conntrack_max)" = "$old_max" ] || echo "$old_max" > /proc/sys/net/netfilter/nf_conntrack_max
done
