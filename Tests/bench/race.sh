#!/usr/bin/env bash
# The conntrack SNAT race, measured (a benchmark: it prints figures and asserts nothing).
# Many pods open fresh connections to one address:port at once, through: plain MASQUERADE,
# MASQUERADE --random, MASQUERADE --random-fully, randsnat with toSource over 4 addresses, and
# randsnat with the destination in nonMasqueradeCIDRs (no SNAT: the vpc server, which routes back).
# SNAT gets a narrowed port range (PORTS, default 1000) to make the race frequent enough to compare;
# a control pins every client to one CPU (no concurrency, so no race). Everything runs in namespaces
# it makes and removes (also on Ctrl-C). Usage (root, after a release build):
#   Tests/bench/race.sh [PODS=8] [CONNECTS_PER_POD=100] [REPEATS=3] [PORTS=1000]
set -u
cd "$(dirname "$0")/../.."
PODS=${1:-8} CONNECTS=${2:-100} REPEATS=${3:-3} PORTS=${4:-1000}
source Tests/integration/lib.sh
source Tests/bench/snat_bed.sh
trap 'bed_down; rm -rf "$TMP_BASE"' EXIT
bed_up race >/dev/null
in_ns "$EXT" timeout 900 python3 Tests/bench/race_server.py 9000 900 &
in_ns "$VPC" timeout 900 python3 Tests/bench/race_server.py 9000 900 &
for address in 2 3 4 5; do in_ns "$NODE" ip addr add 203.0.113.$address/24 dev "${T}e0"; done
list=$(conflist "$T-pods")
bridge_only_pods "$list" "$PODS"
in_ns "$NODE" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=120
stat() { in_ns "$NODE" python3 -c '
lines = open("/proc/net/stat/nf_conntrack").read().split("\n")
names = lines[0].split(); totals = [0] * len(names)
for line in lines[1:]:
    for i, v in enumerate(line.split()): totals[i] += int(v, 16)
print(totals[names.index("insert_failed")], totals[names.index("drop")])'; }
first=$((20000)) last=$((20000 + PORTS - 1))

# snat_on VARIANT / snat_off VARIANT: the SNAT mechanism of one variant.
snat_on() {
    case $1 in
        masquerade) in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p tcp -j MASQUERADE --to-ports $first-$last
                    in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p udp -j MASQUERADE --to-ports $first-$last ;;
        random) in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p tcp -j MASQUERADE --to-ports $first-$last --random
                in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p udp -j MASQUERADE --to-ports $first-$last --random ;;
        random-fully|randsnat-*) randsnat_pods ADD "$1" ;;
    esac
}
snat_off() {
    case $1 in
        masquerade|random) in_ns "$NODE" iptables-legacy -t nat -F POSTROUTING ;;
        *) randsnat_pods DEL "$1" ;;
    esac
    in_ns "$NODE" conntrack -F >/dev/null 2>&1
}
# randsnat_pods VERB VARIANT: randsnat ADD/DEL for every pod, chained after the bridge (prevResult
# from the chain's cache); random-fully is randsnat with only a port range.
randsnat_pods() {
    local extra="\"portRange\":\"$first-$last\""
    case $2 in
        randsnat-tosource) extra+=",\"toSource\":[\"203.0.113.2-203.0.113.5\"]" ;;
        randsnat-bypass) extra+=",\"nonMasqueradeCIDRs\":[\"198.19.0.0/16\"]" ;;
    esac
    randsnat_after_bridge "$1" "$T-race" "{$extra}" "$PODS"
}

# load KIND DESTINATION PINNED: every pod's client at once; prints the merged JSON.
load() {
    local start; start=$(python3 -c 'import time; print(time.time() + 1.5)')
    local n pids=()
    for n in $(seq 1 "$PODS"); do
        if [ "$3" = pinned ]; then
            in_ns "$T-pod$n" taskset -c 0 python3 Tests/bench/race_client.py "$1" "$2" 9000 "$CONNECTS" "$start" 30 > "$WORK/out-$n" &
        else
            in_ns "$T-pod$n" python3 Tests/bench/race_client.py "$1" "$2" 9000 "$CONNECTS" "$start" 30 > "$WORK/out-$n" &
        fi
        pids+=($!)
    done
    while kill -0 "${pids[@]}" 2>/dev/null; do printf '\r  %s %s ...' "$variant" "$1" >&2; sleep 0.5; done
    wait "${pids[@]}"
    printf '\r%60s\r' '' >&2
    python3 - "$WORK"/out-* <<'PY'
import json, sys
merged = {"attempts": 0, "failures": 0, "latencies": []}
for path in sys.argv[1:]:
    part = json.load(open(path))
    for key in merged: merged[key] += part[key]
print(json.dumps(merged))
PY
}

echo "pods $PODS x $CONNECTS fresh connections each, $REPEATS repeats, SNAT port range $PORTS ports ($first-$last), kernel $(uname -r), $(nproc) CPUs"
printf '%-18s %-4s %9s %9s %14s %6s %10s %9s %10s\n' variant kind attempts failures insert_failed drop p99.9_ms max_ms ports_used
for variant in masquerade random random-fully randsnat-tosource randsnat-bypass control-one-cpu; do
    for kind in tcp udp; do
        total='{"attempts":0,"failures":0,"latencies":[],"insert_failed":0,"drop":0,"ports":0}'
        for repeat in $(seq 1 "$REPEATS"); do
            mechanism=$variant; [ "$variant" = control-one-cpu ] && mechanism=random-fully
            snat_on "$mechanism"
            destination=203.0.113.10; [ "$variant" = randsnat-bypass ] && destination=198.19.0.10
            read -r if0 drop0 < <(stat)
            result=$(load "$kind" "$destination" "$([ "$variant" = control-one-cpu ] && echo pinned || echo free)")
            read -r if1 drop1 < <(stat)
            ports=$(in_ns "$NODE" conntrack -L -p "$kind" 2>/dev/null | grep -c "dport=9000.*dst=203.0.113")
            total=$(python3 -c '
import json, sys
t, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("attempts", "failures", "latencies"): t[k] += r[k]
t["insert_failed"] += int(sys.argv[3]); t["drop"] += int(sys.argv[4]); t["ports"] = max(t["ports"], int(sys.argv[5]))
print(json.dumps(t))' "$total" "$result" $((if1 - if0)) $((drop1 - drop0)) "$ports")
            snat_off "$mechanism"
        done
        python3 -c '
import json, sys
t = json.loads(sys.argv[1]); lat = sorted(t["latencies"]) or [0]
p999 = lat[min(len(lat) - 1, int(0.999 * (len(lat) - 1)))]
capacity = int(sys.argv[5]) * (4 if sys.argv[2] == "randsnat-tosource" else 1)
used = "%d/%d" % (t["ports"], capacity) if sys.argv[2] != "randsnat-bypass" else "no SNAT"
print("%-18s %-4s %9d %9d %14d %6d %10.1f %9.1f %10s" % (sys.argv[2], sys.argv[3], t["attempts"], t["failures"], t["insert_failed"], t["drop"], p999, lat[-1], used))' \
            "$total" "$variant" "$kind" "" "$PORTS"
    done
done
