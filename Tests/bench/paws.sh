#!/usr/bin/env bash
# The PAWS failure mode of SNAT, measured (a benchmark: it prints figures and asserts nothing).
# Server closes first, so the server holds TIME_WAIT; SNAT puts new flows on 4-tuples it still holds,
# and on kernels with per-port TCP timestamp offsets (6.18, 6.12 stable) the server's PAWS check
# rejects some of their SYNs. Pods (each THREADS threads) open fresh connections (connect, read to
# EOF, close) to one ext address:port through: plain MASQUERADE, --random, --random-fully (randsnat,
# portRange only), randsnat toSource with 1 and with 4 addresses, randsnat bypass (vpc, no SNAT), and
# --random-fully with podTCPTimestamps 2. Twice: past port saturation (SNAT narrowed to PORTS ports)
# and below it (the full range). Each variant gets a fresh server port (no TIME_WAIT from the one
# before) and a flushed conntrack table. Bounded: COUNT connections or SECONDS per variant.
# Usage (root, after a release build):  Tests/bench/paws.sh [PODS=4] [THREADS=4] [COUNT=6000] [SECONDS=20] [PORTS=1000]
set -u
cd "$(dirname "$0")/../.."
PODS=${1:-4} THREADS=${2:-4} COUNT=${3:-6000} SECONDS_CAP=${4:-20} PORTS=${5:-1000}
source Tests/integration/lib.sh
source Tests/bench/snat_bed.sh
trap 'bed_down; rm -rf "$TMP_BASE"' EXIT
bed_up paws >/dev/null
for address in 2 3 4 5; do in_ns "$NODE" ip addr add 203.0.113.$address/24 dev "${T}e0"; done
list=$(conflist "$T-pods")
bridge_only_pods "$list" "$PODS"
first=20000 last=$((20000 + PORTS - 1))
server_port=9200

snat_on() {   # snat_on VARIANT RANGE(narrow|full)
    local ports="" to=""
    [ "$2" = narrow ] && ports="--to-ports $first-$last"
    case $1 in
        masquerade) in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p tcp -j MASQUERADE $ports ;;
        random) in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -s 198.18.0.0/24 ! -d 198.18.0.0/24 -p tcp -j MASQUERADE $ports --random ;;
        *) randsnat_pods ADD "$1" "$2" ;;
    esac
}
snat_off() {
    case $1 in
        masquerade|random) in_ns "$NODE" iptables-legacy -t nat -F POSTROUTING ;;
        *) randsnat_pods DEL "$1" "$2" ;;
    esac
    in_ns "$NODE" conntrack -F >/dev/null 2>&1
}
randsnat_pods() {   # randsnat_pods VERB VARIANT RANGE
    local extra='"backend":"iptables"'
    [ "$3" = narrow ] && extra+=",\"portRange\":\"$first-$last\""
    case $2 in
        tosource1) extra+=',"toSource":["203.0.113.2"]' ;;
        tosource4) extra+=',"toSource":["203.0.113.2","203.0.113.3","203.0.113.4","203.0.113.5"]' ;;
        bypass) extra+=',"nonMasqueradeCIDRs":["198.19.0.0/16"]' ;;
        timestamps2) extra+=',"podTCPTimestamps":2' ;;
    esac
    randsnat_after_bridge "$1" "$T-paws" "{$extra}" "$PODS"
}
# counters NS NAME...: the namespace's TCP counters (JSON).
counters() { local ns=$1; shift; in_ns "$ns" python3 Tests/integration/paws.py counters "$@"; }
pods_counters() {   # summed over the pods
    local n
    for n in $(seq 1 "$PODS"); do counters "$T-pod$n" TcpExtTCPSynRetrans TcpOutRsts; done | python3 -c '
import json, sys
total = {}
for line in sys.stdin:
    for k, v in json.loads(line).items(): total[k] = total.get(k, 0) + v
print(json.dumps(total))'
}

echo "pods $PODS x $THREADS threads, at most $COUNT connections or ${SECONDS_CAP} s per variant, server closes first; kernel $(uname -r), $(nproc) CPUs"
printf '%-6s %-13s %3s %7s %6s %6s %6s %8s %8s %8s %8s %9s %7s\n' range variant ts tried ok failed slow syn_rtx pawsTW srv_rst cli_rst tw_reused qps
for range in narrow full; do
    for variant in masquerade random random-fully tosource1 tosource4 bypass timestamps2; do
        server_port=$((server_port + 1))
        host=203.0.113.10 server=$EXT
        [ "$variant" = bypass ] && host=198.19.0.10 server=$VPC
        ( in_ns "$server" timeout $((SECONDS_CAP + 30)) python3 Tests/integration/paws.py serve $server_port $((SECONDS_CAP + 30)) & )
        for n in $(seq 1 "$PODS"); do in_ns "$T-pod$n" sysctl -qw net.ipv4.tcp_timestamps=1; done
        snat_on "$variant" "$range"
        sleep 0.3
        ts=$(in_ns "$T-pod1" cat /proc/sys/net/ipv4/tcp_timestamps)
        s0=$(counters "$server" TcpExtPAWSTimewait TcpOutRsts); p0=$(pods_counters)
        per_pod=$((COUNT / PODS))
        pids=()
        for n in $(seq 1 "$PODS"); do
            in_ns "$T-pod$n" python3 Tests/integration/paws.py connect "$host" $server_port $per_pod "$THREADS" "$SECONDS_CAP" > "$WORK/out-$n" &
            pids+=($!)
        done
        wait "${pids[@]}"
        s1=$(counters "$server" TcpExtPAWSTimewait TcpOutRsts); p1=$(pods_counters)
        tw=$(in_ns "$server" ss -Htan state time-wait "( sport = :$server_port )" | wc -l)
        python3 - "$range" "$variant" "$ts" "$s0" "$s1" "$p0" "$p1" "$tw" "$WORK"/out-* <<'PY' | tee -a "$WORK/table"
import json, sys
range_, variant, ts, s0, s1, p0, p1, tw = sys.argv[1:9]
s0, s1, p0, p1 = (json.loads(x) for x in (s0, s1, p0, p1))
runs = [json.load(open(path)) for path in sys.argv[9:]]
tried = sum(r["attempts"] for r in runs); ok = sum(r["ok"] for r in runs); failed = sum(r["failed"] for r in runs)
slow = sum(r["slow"] for r in runs); seconds = max(r["seconds"] for r in runs)
print("%-6s %-13s %3s %7d %6d %6d %6d %8d %8d %8d %8d %9d %7.0f" % (range_, variant, ts, tried, ok, failed, slow,
      p1["TcpExtTCPSynRetrans"] - p0["TcpExtTCPSynRetrans"], s1["TcpExtPAWSTimewait"] - s0["TcpExtPAWSTimewait"],
      s1["TcpOutRsts"] - s0["TcpOutRsts"], p1["TcpOutRsts"] - p0["TcpOutRsts"], ok - int(tw), ok / seconds if seconds else 0))
PY
        snat_off "$variant" "$range"
    done
done
