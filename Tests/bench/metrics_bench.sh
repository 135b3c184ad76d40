#!/usr/bin/env bash
# One conntrack scan and one scrape of randsnat-agent with N SNATed conntrack entries in a throwaway
# namespace: scan time (the agent's own randsnat_conntrack_scan_duration_seconds), scrape time, the
# agent's RSS (VmRSS after the scan, VmHWM: the peak).
# Usage (root): Tests/bench/metrics_bench.sh [N...]   (default 100000 250000)
# The conntrack limit is the kernel's nf_conntrack_max, which a child namespace cannot raise (6.18
# refuses the write); entries beyond it need RANDSNAT_BENCH_RAISE_MAX=1, which raises the initial
# namespace's nf_conntrack_max for the run and puts the old value back at the end.
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
printf '| entries | SNAT tuples | scan (agent, wall) | agent CPU user + sys | scrape (slowest during the scan) | RSS after scan | peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n'
for n in "${sizes[@]}"; do
    if [ "$n" -gt "$old_max" ]; then
        [ "${RANDSNAT_BENCH_RAISE_MAX:-0}" = 1 ] || { echo "| $n | skipped: above nf_conntrack_max ($old_max); RANDSNAT_BENCH_RAISE_MAX=1 raises it for the run |"; continue; }
        echo $((n + n / 10)) > /proc/sys/net/netfilter/nf_conntrack_max
    fi
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    tuples=${RANDSNAT_BENCH_TUPLES:-20000}
    timeout 600 ip netns exec "$NS" python3 "$HERE/conntrack_fill.py" "$n" "$tuples" >/dev/null
    count=$(ip netns exec "$NS" conntrack -C)
    ip netns exec "$NS" "$AGENT" --metrics 127.0.0.1:9469 --no-reconcile --scan-interval 3600 >/dev/null 2>&1 &
    pid=$!
    # Scrapes while the first scan runs: the slowest of them says whether a scan holds up a scrape.
    scans="" during=0
    for _ in $(seq 600); do
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
    echo "| $count ($seen SNATed) | $tuples (summary keeps $kept) | $scan | $cpu | $scrape_ms ms ($during ms) | $rss | $hwm |"
    kill "$pid"; wait "$pid" 2>/dev/null
    ip netns del "$NS"
    [ "$(cat /proc/sys/net/netfilter/nf_conntrack_max)" = "$old_max" ] || echo "$old_max" > /proc/sys/net/netfilter/nf_conntrack_max
done
