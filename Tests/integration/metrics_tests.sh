# randsnat-agent's metrics endpoint, scraped by a real Prometheus (Debian's package): each test runs
# the agent and a Prometheus server of its own in the node namespace (config and storage under the
# test's work dir, loopback addresses), and asks Prometheus's HTTP API what it scraped.

AGENT_BIN=${RANDSNAT_AGENT_BIN:-$(dirname "$RANDSNAT_BIN")/randsnat-agent}
METRICS=127.0.0.1:9469

# agent_up: randsnat-agent in the node namespace, scanning every second; waits for /healthz.
agent_up() {
    # Not through in_ns: a shell function in the background is a subshell, and $! must be the agent.
    ip netns exec "$NODE" "$AGENT_BIN" --metrics "$METRICS" --no-reconcile --scan-interval 1 --cni-cache "$CNI_CACHE_DIR" "$@" \
        > "$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    local i
    for i in $(seq 50); do
        in_ns "$NODE" curl -sf "http://$METRICS/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "the agent did not answer /healthz: $(cat "$WORK/agent.log")"
}

# prometheus_up: a Prometheus server scraping the agent every second, on 127.0.0.1:9090 of the node.
prometheus_up() {
    mkdir -p "$WORK/prometheus/data"
    cat > "$WORK/prometheus/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: randsnat
    static_configs: [{targets: ["$METRICS"]}]
YAML
    in_ns "$NODE" timeout 300 /usr/bin/prometheus --config.file="$WORK/prometheus/prometheus.yml" \
        --storage.tsdb.path="$WORK/prometheus/data" --web.listen-address=127.0.0.1:9090 > "$WORK/prometheus.log" 2>&1 &
    local i
    for i in $(seq 100); do
        [ "$(promql 'up{job="randsnat"}')" = "1" ] && return 0
        sleep 0.2
    done
    fail "Prometheus did not scrape the agent (up != 1): $(tail -5 "$WORK/prometheus.log")"
}

# promql EXPR: the value of an instant query (the first series'), empty when there is none.
promql() {
    in_ns "$NODE" curl -sf http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1" 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null
}

# promql_wait EXPR: waits (up to 15 s of wall time, however slow each query is on a loaded machine:
# the UDP flows under test expire after 30 s) until EXPR has a result; prints it.
promql_wait() {
    local value deadline=$((SECONDS + 15))
    while [ $SECONDS -le $deadline ]; do
        value=$(promql "$1")
        [ -n "$value" ] && { printf '%s' "$value"; return 0; }
        sleep 0.2
    done
}

udp_flows() {  # udp_flows POD COUNT: COUNT UDP flows (distinct source ports) from pod N to ext:9999
    in_ns "$T-pod$1" python3 -c "
import socket
for port in range(41000, 41000 + $2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port)); s.sendto(b'x', ('203.0.113.10', 9999)); s.close()"
}

test_metrics_endpoint_is_scraped_by_prometheus() {
    agent_up
    prometheus_up
    expect_eq "Prometheus scrapes the agent: up == 1" "$(promql 'up{job="randsnat"}')" "1"
    local version; version=$("$RANDSNAT_BIN" --version | awk '{print $2}')
    expect_eq "build_info carries randsnat --version's version" "$(promql "randsnat_build_info{version=\"$version\"}")" "1"
    expect_eq "the conntrack statistics come from ctnetlink" "$(promql 'randsnat_conntrack_statistics_source{source="netlink"}')" "1"
    expect_eq "the table's limit is nf_conntrack_max" "$(promql randsnat_conntrack_entries_limit)" "$(in_ns "$NODE" cat /proc/sys/net/netfilter/nf_conntrack_max)"
    expect "scans complete" test "$(promql_wait 'randsnat_conntrack_scans_total > 0')" -gt 0
    local text; text=$(in_ns "$NODE" curl -sf "http://$METRICS/metrics")
    expect "promtool check metrics accepts the scraped text" sh -c "printf '%s\\n' \"\$1\" | promtool check metrics" _ "$text"
    expect_contains "/healthz answers ok" "$(in_ns "$NODE" curl -sf "http://$METRICS/healthz")" "ok"
    expect_eq "an unknown path is 404" "$(in_ns "$NODE" curl -s -o /dev/null -w '%{http_code}' "http://$METRICS/nope")" "404"
    expect_eq "POST /metrics is 405" "$(in_ns "$NODE" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$METRICS/metrics")" "405"
    # Every query of the Grafana dashboard parses and runs on this Prometheus.
    local bad; bad=$(python3 -c '
import json, sys
for panel in json.load(open(sys.argv[1]))["panels"]:
    for target in panel["targets"]: print(target["expr"].replace("$instance", ".*"))' "$ROOT/install/grafana/randsnat-dashboard.json" | while read -r expr; do
        in_ns "$NODE" curl -s http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$expr" | grep -q '"status":"success"' || echo "$expr"
    done)
    expect_eq "the dashboard's queries all run (failing: ${bad:-none})" "$bad" ""
    # A SNAT rule without --random-fully ahead of randsnat's jump shows as a gauge.
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft add table ip other
        in_ns "$NODE" nft add chain ip other post '{ type nat hook postrouting priority 50; }'
        in_ns "$NODE" nft add rule ip other post ip saddr 198.18.0.0/16 masquerade
    else
        in_ns "$NODE" iptables-legacy -t nat -I POSTROUTING 1 -s 198.18.0.0/16 -j MASQUERADE
    fi
    # Legacy: counted as ahead of the jump. nf_tables: counted; whether it is ahead is doctor's nf_tables
    # shadowing check (NodeFacts.SNATRule.shadowsRandsnat, being added to doctor separately), so this
    # test does not pin it there.
    local source ahead
    if [ "$BACKEND" = nftables ]; then source=nftables ahead=""; else source=iptables-legacy ahead=',ahead="true"'; fi
    expect_eq "a MASQUERADE without --random-fully before randsnat's is counted ($source)" \
        "$(promql_wait "sum(randsnat_snat_rules_without_random_fully{source=\"$source\"$ahead}) > 0")" "1"
    expect_eq "pods per network" "$(promql_wait "randsnat_pods{network=\"$T-n\",family=\"ipv4\",backend=\"$BACKEND\"}")" "1"
    pod_del "$list" 1 >/dev/null
}

test_metrics_port_usage_toward_one_destination() {
    # 100 SNAT ports toward ext; a pod opens 95 UDP flows to one ext address:port.
    local list; list=$(conflist "$T-n" '"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    agent_up
    prometheus_up
    udp_flows 1 95
    local series='{destination="203.0.113.10",port="9999",protocol="udp",snat_address="203.0.113.1"}'
    expect_eq "Prometheus reads 0.95 for that destination" "$(promql_wait "randsnat_snat_port_usage_ratio$series == 0.95")" "0.95"
    expect_eq "95 ports in use" "$(promql "randsnat_snat_ports_in_use$series")" "95"
    expect_eq "of the rule's 100" "$(promql "randsnat_snat_ports_available$series")" "100"
    expect_eq "the node's highest ratio is that one" "$(promql randsnat_snat_port_usage_max_ratio)" "0.95"
    expect_eq "the counts are exact" "$(promql randsnat_snat_ports_in_use_overcount)" "0"
    pod_del "$list" 1 >/dev/null
}

# --top 0: no series names a destination (for operators who must not publish them); the node's
# highest usage ratio stays. Fails on 5df3a31 (--top 0 was a usage error).
test_metrics_top_zero_names_no_destination() {
    local list; list=$(conflist "$T-n" '"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    agent_up --top 0
    udp_flows 1 50
    local ratio="" deadline=$((SECONDS + 10))
    while [ $SECONDS -le $deadline ]; do ratio=$(scraped randsnat_snat_port_usage_max_ratio); [ "${ratio:-0}" = 0.5 ] && break; sleep 0.2; done
    expect_eq "the highest ratio is served (50 flows over 100 ports)" "$ratio" "0.5"
    local text; text=$(in_ns "$NODE" curl -sf "http://$METRICS/metrics")
    expect_absent "no series names the destination" "$text" "203.0.113.10"
    expect_absent "no per-tuple series" "$text" "randsnat_snat_ports_in_use{"
    kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    pod_del "$list" 1 >/dev/null
}

test_metrics_port_usage_spreads_over_to_source() {
    # The same 95 flows with toSource over 4 addresses, each an item: flows are spread over them,
    # each address has its own 100 ports toward ext, and the highest ratio falls to about a quarter.
    in_ns "$NODE" ip addr add 203.0.113.2/24 dev "${T}e0"
    local list; list=$(conflist "$T-n" '"toSource":["203.0.113.2","203.0.113.3","203.0.113.4","203.0.113.5"],"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    agent_up
    prometheus_up
    udp_flows 1 95
    expect_eq "all 95 flows are counted, over 4 SNAT addresses" \
        "$(promql_wait 'sum(randsnat_snat_ports_in_use{destination="203.0.113.10",port="9999"}) == 95')" "95"
    expect_eq "4 series, one per address" "$(promql 'count(randsnat_snat_ports_in_use{destination="203.0.113.10",port="9999"})')" "4"
    local ratio; ratio=$(promql randsnat_snat_port_usage_max_ratio)
    expect "the highest ratio ($ratio) is about 0.24 (0.15-0.40), not 0.95" python3 -c "import sys; sys.exit(not 0.15 <= float('$ratio') <= 0.40)"
    pod_del "$list" 1 >/dev/null
}

test_metrics_insert_failed_rising() {
    # 130 UDP flows into 100 ports: those past the range cannot get a unique tuple; the counter rises.
    local list; list=$(conflist "$T-n" '"portRange":"40000-40099"')
    pod_add "$list" 1 >/dev/null
    agent_up
    prometheus_up
    local before; before=$(promql_wait randsnat_conntrack_insert_failed_total)
    udp_flows 1 130
    local after; after=$(promql_wait "randsnat_conntrack_insert_failed_total > $before")
    expect "insert_failed rose in Prometheus ($before -> ${after:-unchanged})" test -n "$after"
    expect_eq "the scraped counter equals the kernel's (conntrack -S summed)" "$(promql randsnat_conntrack_insert_failed_total)" \
        "$(in_ns "$NODE" conntrack -S 2>/dev/null | sed -n 's/.*insert_failed=\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s}')"
    pod_del "$list" 1 >/dev/null
}

# rss_kb PID / fd_count PID
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }

# agent_reconciling_up: randsnat-agent as the DaemonSet runs it, reconciling (resync 1 s, net.d under
# $WORK/root) and serving the metrics (scans every second); waits for its first pass.
agent_reconciling_up() {
    ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$AGENT_BIN" --metrics "$METRICS" --scan-interval 1 \
        --cni-cache "$CNI_CACHE_DIR" --host-root "$WORK/root" --resync 1 > "$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    local deadline=$((SECONDS + 15))
    while [ $SECONDS -le $deadline ]; do
        [ "$(scraped randsnat_reconcile_passes_total)" -ge 1 ] 2>/dev/null && return 0
        sleep 0.1
    done
    fail "the reconciling agent did not show a pass on /metrics within 15 s: $(cat "$WORK/agent.log")"
}

# scraped NAME[{LABELS}]: the value of one series in the agent's /metrics (empty when absent).
scraped() {
    in_ns "$NODE" curl -sf -m 2 "http://$METRICS/metrics" 2>/dev/null | awk -v name="$1" '$1 == name {print $2}'
}

# The bad input of issue 13 against the agent as the DaemonSet runs it (reconciling, pods present,
# resync 1 s): a malformed request, an unknown path, 1,000 connections held open (half of them slow
# clients that never finish their request). Meanwhile the rules are flushed: the agent must repair
# the flush and go on counting passes, answer /metrics, and stay within bounded memory and fds.
test_metrics_server_survives_bad_clients() {
    local list; list=$(node_conflist "$T-n" "")
    local pod; for pod in 1 2 3; do pod_add "$list" $pod >/dev/null; done
    agent_reconciling_up
    local pid=$AGENT_PID   # ip netns exec execs the agent: same process
    local rss0 fd0; rss0=$(rss_kb "$pid"); fd0=$(fd_count "$pid")
    # A malformed request, a request line with garbage, an unknown path.
    local answer; answer=$(in_ns "$NODE" python3 - <<'PY'
import socket
s = socket.create_connection(("127.0.0.1", 9469)); s.sendall(b"\x00\x01garbage\r\n\r\n"); s.settimeout(3)
try: print(s.recv(100).split(b"\r\n")[0].decode())
except Exception as e: print("no answer", e)
PY
)
    expect_contains "a malformed request gets 400" "$answer" "400"
    expect_eq "an unknown path gets 404" "$(in_ns "$NODE" curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$METRICS/../../etc/passwd")" "404"
    # 1,000 concurrent connections held open for 8 s (half with a request never finished: a slow
    # client); then each waits for the server to close it (its 10 s idle timeout).
    in_ns "$NODE" python3 - > "$WORK/flood.out" <<'PY' &
import socket, time
held = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", 9469))
    if i % 2: s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")   # never finished
    held.append(s)
print("held", len(held), flush=True)
time.sleep(8)
closed = 0
for s in held:
    s.settimeout(10)
    try:
        if s.recv(1) == b"": closed += 1
    except Exception: pass
print("closed-by-server", closed, flush=True)
PY
    local flood=$!
    local i; for i in $(seq 100); do grep -q held "$WORK/flood.out" && break; sleep 0.1; done
    expect_contains "1,000 connections are open" "$(cat "$WORK/flood.out")" "held 1000"
    local fds; for i in $(seq 25); do fds=$(fd_count "$pid"); [ "$fds" -ge 1000 ] && break; sleep 0.2; done
    expect "the agent holds them ($fds fds, bounded by its limit of 2048 connections)" test "$fds" -ge 1000 -a "$fds" -le 2200
    # Under that load: the flush is repaired, passes go on, /metrics answers.
    local passes repairs; passes=$(scraped randsnat_reconcile_passes_total); repairs=$(scraped 'randsnat_reconcile_repairs_total{kind="member"}')
    in_ns "$NODE" sh -c "$(flush_steps | tail -1)"
    local took; took=$(wait_repaired 3)
    expect "the agent repairs a flush made during the flood (${took} ms)" test "$took" != never
    local later="" deadline=$((SECONDS + 5)); while [ $SECONDS -le $deadline ]; do later=$(scraped randsnat_reconcile_passes_total); [ "${later:-0}" -ge $((passes + 2)) ] && break; sleep 0.1; done
    expect "reconcile passes go on during the flood ($passes -> ${later:-none})" test "${later:-0}" -ge $((passes + 2))
    expect "the repair is counted (member repairs ${repairs:-0} -> $(scraped 'randsnat_reconcile_repairs_total{kind="member"}'))" \
        test "$(scraped 'randsnat_reconcile_repairs_total{kind="member"}')" -ge $(( ${repairs:-0} + 3 ))
    local start; start=$(date +%s%N)
    expect_contains "/metrics answers meanwhile" "$(in_ns "$NODE" curl -sf -m 5 "http://$METRICS/metrics")" "randsnat_reconcile_passes_total"
    echo "    (/metrics with 1,000 connections open, reconciling: $(( ($(date +%s%N) - start) / 1000000 )) ms; flush repaired in ${took} ms)"
    local rss1 fds1; rss1=$(rss_kb "$pid"); fds1=$(fd_count "$pid")
    grep -q "closed-by-server" "$WORK/flood.out" && fail "the flood ended before the checks under load were done (machine too slow?)"
    wait "$flood"
    expect_contains "the server closed idle and unfinished connections after its 10 s timeout" "$(cat "$WORK/flood.out")" "closed-by-server 1000"
    sleep 0.5
    local fd2 rss2; fd2=$(fd_count "$pid"); rss2=$(rss_kb "$pid")
    echo "    (RSS: ${rss0} kB idle, ${rss1} kB with 1,000 connections and a repair, ${rss2} kB after; fds: $fd0 -> $fds1 -> $fd2)"
    expect "file descriptors back to idle ($fd0 -> $fd2)" test "$fd2" -le $((fd0 + 2))
    expect "RSS stays bounded (${rss1} kB < 64 MB)" test "$rss1" -lt 65536
    expect "RSS after the flood is within 16 MB of idle (${rss0} -> ${rss2} kB)" test "$rss2" -lt $((rss0 + 16384))
    passes=$(scraped randsnat_reconcile_passes_total)
    deadline=$((SECONDS + 5)); while [ $SECONDS -le $deadline ]; do later=$(scraped randsnat_reconcile_passes_total); [ "${later:-0}" -ge $((passes + 2)) ] && break; sleep 0.1; done
    expect "passes still go on after the flood ($passes -> ${later:-none})" test "${later:-0}" -ge $((passes + 2))
    expect_eq "no pass failed" "$(scraped randsnat_reconcile_failures_total)" "0"
    expect "the agent is still running" kill -0 "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null
    for pod in 1 2 3; do pod_del "$list" $pod >/dev/null; done
}

# peak_rss_kb PID SECONDS: the highest VmRSS of PID, sampled every 50 ms for SECONDS (prints kB).
peak_rss_kb() {
    python3 - "$1" "$2" <<'PY'
import sys, time
pid, end, peak = sys.argv[1], time.time() + float(sys.argv[2]), 0
while time.time() < end:
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"): peak = max(peak, int(line.split()[1]))
    except OSError: break
    time.sleep(0.05)
print(peak)
PY
}

# The metrics server's memory under hostile clients (issue 19, item 3), with the agent as the
# DaemonSet runs it (reconciling 3 pods, resync 1 s): one connection with 20,000 pipelined GETs that
# never reads, 1,000 idle connections, 200 slow clients (half send a header a byte at a time, half
# read their answer 16 bytes at a time), one load after the other. Under each the agent's RSS stays
# at most 40 MB, a fresh client's /metrics is answered and a flush is repaired.
# Fails on 5df3a31 (the server read on while an answer waited: the pipelined GETs queued thousands of
# answers, RSS 14.7 -> 231 MB).
test_metrics_server_memory_bounded_under_hostile_clients() {
    local list; list=$(node_conflist "$T-n" "")
    local pod; for pod in 1 2 3; do pod_add "$list" $pod >/dev/null; done
    agent_reconciling_up
    local pid=$AGENT_PID load mode count
    echo "    (RSS idle: $(rss_kb "$pid") kB)"
    for load in "pipeline 20000" "idle 1000" "slow 200"; do
        read -r mode count <<< "$load"
        rm -f "$WORK/load.out"
        in_ns "$NODE" timeout 30 python3 "$HERE/http_load.py" "$mode" 127.0.0.1 9469 "$count" 9 > "$WORK/load.out" 2>&1 &
        local client=$! i
        for i in $(seq 100); do grep -q ready "$WORK/load.out" && break; sleep 0.1; done
        expect_contains "$mode: the clients are connected" "$(cat "$WORK/load.out")" "ready"
        peak_rss_kb "$pid" 6 > "$WORK/peak" &
        local sampler=$!
        sleep 1
        local start; start=$(date +%s%N)
        expect_contains "$mode: a fresh client's /metrics is answered meanwhile" \
            "$(in_ns "$NODE" curl -sf -m 5 "http://$METRICS/metrics")" "randsnat_reconcile_passes_total"
        local answered=$(( ($(date +%s%N) - start) / 1000000 ))
        in_ns "$NODE" sh -c "$(flush_steps | tail -1)"
        local took; took=$(wait_repaired 3)
        expect "$mode: a flush made meanwhile is repaired (${took} ms)" test "$took" != never
        wait "$sampler"
        local peak; peak=$(cat "$WORK/peak")
        echo "    ($mode x$count: $(head -1 "$WORK/load.out"); peak RSS ${peak} kB; /metrics answered in ${answered} ms; flush repaired in ${took} ms)"
        expect "$mode x$count: the agent's RSS stays at most 40 MB (peak ${peak} kB)" test "${peak:-999999}" -le 40960
        wait "$client"
        expect "the agent is still running after $mode" kill -0 "$pid"
    done
    expect_eq "no pass failed" "$(scraped randsnat_reconcile_failures_total)" "0"
    kill "$pid"; wait "$pid" 2>/dev/null
    for pod in 1 2 3; do pod_del "$list" $pod >/dev/null; done
}

# A refused config is visible (issue 19, item 8): randsnat_config_last_reload_successful per source
# (net.d, settings) goes 0 while the agent, run as the DaemonSet runs it (--install --config), refuses
# a broken settings file or a broken file in net.d, and 1 again once fixed; Prometheus evaluates the
# RandsnatConfigRefused alert's expression as firing meanwhile. Fails on 5df3a31 (no such series:
# a refused settings file left everything green, only the log said so).
test_metrics_config_refusals_are_visible() {
    mkdir -p "$WORK/root/etc/cni/net.d"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["plugins"]=d["plugins"][:1]; print(json.dumps(d))' \
        "$(conflist "$T-n" "")" > "$WORK/root/etc/cni/net.d/10-net.conflist"
    settings_write ''
    ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$AGENT_BIN" --metrics "$METRICS" --scan-interval 1 \
        --cni-cache "$CNI_CACHE_DIR" --host-root "$WORK/root" --resync 1 --install --config "$WORK/settings/config.json" > "$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    local list=$WORK/root/etc/cni/net.d/10-net.conflist i
    for i in $(seq 1 50); do grep -q '"type": "randsnat"' "$list" && break; sleep 0.1; done
    pod_add "$list" 1 >/dev/null
    prometheus_up
    local settings='randsnat_config_last_reload_successful{source="settings"}' netd='randsnat_config_last_reload_successful{source="net.d"}'
    # scraped_wait SERIES VALUE: waits up to 8 s for SERIES to read VALUE on /metrics; prints what it read last.
    scraped_wait() { local v="" deadline=$((SECONDS + 8)); while [ $SECONDS -le $deadline ]; do v=$(scraped "$1"); [ "$v" = "$2" ] && break; sleep 0.2; done; printf '%s' "$v"; }
    expect_eq "the settings file is taken: 1" "$(scraped_wait "$settings" 1)" "1"
    expect_eq "net.d is taken: 1" "$(scraped_wait "$netd" 1)" "1"
    # A ConfigMap edit cut short: broken JSON.
    printf '{"nonMasqueradeCIDRs":["198.19.0.0/16"' > "$WORK/settings/.new" && mv "$WORK/settings/.new" "$WORK/settings/config.json"
    expect_eq "a broken settings file: 0" "$(scraped_wait "$settings" 0)" "0"
    expect_eq "net.d is still taken" "$(scraped "$netd")" "1"
    local expr; expr=$(python3 -c 'import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        if r.get("alert") == "RandsnatConfigRefused": print(r["expr"])' "$ROOT/install/prometheus/randsnat-rules.yaml")
    expect "the rules file has RandsnatConfigRefused" test -n "$expr"
    expect_eq "Prometheus evaluates RandsnatConfigRefused's expression as firing for the settings" \
        "$(promql_wait "$expr" >/dev/null; promql "count($expr)")" "1"
    settings_write ''
    expect_eq "the settings file fixed: 1 again" "$(scraped_wait "$settings" 1)" "1"
    # A file in net.d that is no network config; then one whose randsnat entry has an invalid key.
    printf '{' > "$WORK/root/etc/cni/net.d/.b" && mv "$WORK/root/etc/cni/net.d/.b" "$WORK/root/etc/cni/net.d/20-broken.conflist"
    expect_eq "a broken file in net.d: 0" "$(scraped_wait "$netd" 0)" "0"
    rm "$WORK/root/etc/cni/net.d/20-broken.conflist"
    expect_eq "removed: 1 again" "$(scraped_wait "$netd" 1)" "1"
    # A file the agent does not read (a FIFO: no regular file) is refused the same way.
    mkfifo "$WORK/root/etc/cni/net.d/05-x.conflist"
    expect_eq "a FIFO in net.d: 0" "$(scraped_wait "$netd" 0)" "0"
    rm "$WORK/root/etc/cni/net.d/05-x.conflist"
    expect_eq "removed: 1 again" "$(scraped_wait "$netd" 1)" "1"
    printf '{"cniVersion":"1.0.0","name":"%s-x","plugins":[{"type":"randsnat","portRange":"9-8"}]}' "$T" > "$WORK/root/etc/cni/net.d/.b" \
        && mv "$WORK/root/etc/cni/net.d/.b" "$WORK/root/etc/cni/net.d/30-other.conflist"
    expect_eq "a randsnat entry with an invalid portRange: 0" "$(scraped_wait "$netd" 0)" "0"
    rm "$WORK/root/etc/cni/net.d/30-other.conflist"
    expect_eq "removed: 1 again" "$(scraped_wait "$netd" 1)" "1"
    kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    pod_del "$list" 1 >/dev/null
}

# Series keep their labels through a flush (issue 21): while a flush has taken randsnat's jumps (and
# with them the comments that name the networks) the sets are still there; their series keep the
# network's name, from the agent's earlier scans or from the CNI cache, instead of a new series
# labelled "(unknown: RANDSNAT-...)". Fails on 5df3a31 (the label became "(unknown: RANDSNAT-...)").
test_metrics_series_keep_their_labels_through_a_flush() {
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null; pod_add "$list" 2 >/dev/null
    local cache text i
    # First without a readable CNI cache (the names come from the agent's earlier scans), then with it
    # (started after the flush: the names come from the cache).
    for cache in "$WORK/absent" "$CNI_CACHE_DIR"; do
        agent_up --cni-cache "$cache"
        for i in $(seq 50); do text=$(in_ns "$NODE" curl -sf -m 2 "http://$METRICS/metrics"); printf '%s' "$text" | grep -q "randsnat_pods{network=\"$T-n\"" && break; sleep 0.2; done
        expect_contains "cache $(basename "$cache"): the network's series are labelled with its name" "$text" "randsnat_pods{network=\"$T-n\""
        if [ "$cache" = "$WORK/absent" ]; then
            if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft flush chain inet randsnat postrouting
            else in_ns "$NODE" iptables-legacy -t nat -F POSTROUTING; in_ns "$NODE" ip6tables-legacy -t nat -F POSTROUTING; fi
            expect_eq "the flush took the jumps" "$(jump_count)" "0"
        fi
        sleep 2.5  # two scans (every second) after the flush
        text=$(in_ns "$NODE" curl -sf -m 2 "http://$METRICS/metrics")
        expect_contains "cache $(basename "$cache"): after the flush, still labelled with its name" "$text" "randsnat_pods{network=\"$T-n\""
        expect_absent "cache $(basename "$cache"): no series is labelled (unknown: ...)" "$text" "(unknown:"
        kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    done
    expect_absent "doctor names the network too" "$(doctor)" "(unknown:"
    pod_del "$list" 1 >/dev/null; pod_del "$list" 2 >/dev/null
}

# The agent with the DaemonSet's capabilities (NET_ADMIN and NET_RAW, no others) and the CNI cache
# mounted, as install/README.md says: the orphan count and each network's podTCPTimestamps come from
# the cache; the pods' own tcp_timestamps and the per-port probe need to enter network namespaces
# (CAP_SYS_ADMIN), so the pods count as unreadable and the probe's series is absent.
test_metrics_timestamps_with_the_daemonsets_capabilities() {
    local list; list=$(conflist "$T-n" '"podTCPTimestamps":2')
    pod_add "$list" 1 >/dev/null
    local caps=-all,+net_admin,+net_raw
    ip netns exec "$NODE" setpriv --inh-caps=$caps --ambient-caps=$caps --bounding-set=$caps "$AGENT_BIN" --metrics "$METRICS" \
        --no-reconcile --scan-interval 1 --cni-cache "$CNI_CACHE_DIR" > "$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    local configured="" i
    for i in $(seq 50); do configured=$(scraped "randsnat_pod_tcp_timestamps_configured{network=\"$T-n\"}"); [ -n "$configured" ] && break; sleep 0.2; done
    expect_eq "the agent has only NET_ADMIN and NET_RAW" "$(awk '/^CapEff/ {print $2}' "/proc/$AGENT_PID/status")" "0000000000003000"
    expect_eq "podTCPTimestamps from the cache" "$configured" "2"
    expect_eq "the pod counts as unreadable" "$(scraped "randsnat_pod_tcp_timestamps_unreadable{network=\"$T-n\"}")" "1"
    expect_eq "the orphan count is there (the cache is read)" "$(scraped "randsnat_orphan_members{network=\"$T-n\",family=\"ipv4\"}")" "0"
    expect_eq "the per-port probe's series is absent" "$(scraped randsnat_tcp_timestamp_per_port_offsets)" ""
    kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    pod_del "$list" 1 >/dev/null
}

test_metrics_alert_rules_pass_promtool() {
    mkdir -p "$WORK/rules/plain" "$WORK/rules/helm"
    cp "$ROOT/install/prometheus/randsnat-rules.yaml" "$WORK/rules/plain/randsnat-rules.yaml"
    python3 "$HERE/manifests_check.py" --prometheus-rule-spec "$WORK/rules/helm/randsnat-rules.yaml"
    local dir
    for dir in plain helm; do
        cp "$HERE/metrics_rules_test.yaml" "$WORK/rules/$dir/"
        expect "promtool check rules ($dir)" promtool check rules "$WORK/rules/$dir/randsnat-rules.yaml"
        local out; out=$(cd "$WORK/rules/$dir" && promtool test rules metrics_rules_test.yaml 2>&1)
        expect_contains "promtool test rules: every alert fires as expected ($dir)" "$out" "SUCCESS"
    done
}

test_metrics_agent_refuses_bad_usage() {
    local args out rc
    for args in "--metrics localhost:9469 --no-reconcile" "--metrics 127.0.0.1:0 --no-reconcile" "--metrics 127.0.0.1 --no-reconcile" \
                "--metrics 127.0.0.1:9469 --no-reconcile --scan-interval 0" "--metrics 127.0.0.1:9469 --no-reconcile --top 1001" "--bogus"; do
        # shellcheck disable=SC2086
        out=$(in_ns "$NODE" "$AGENT_BIN" $args 2>&1); rc=$?
        expect_eq "usage error for: $args" "$rc" "2"
        expect_contains "it points at the usage ($args)" "$out" "run 'randsnat-agent --help' for usage"
    done
    for args in "--metrics 127.0.0.1:9469 --no-reconcile --resync 5" "--metrics 127.0.0.1:9469 --resync 0" "--no-reconcile"; do
        # shellcheck disable=SC2086
        out=$(in_ns "$NODE" "$AGENT_BIN" $args 2>&1); rc=$?
        expect_eq "usage error for: $args (reconcile options without the loop, a bad period, nothing to do)" "$rc" "2"
        expect_contains "it points at the usage ($args)" "$out" "run 'randsnat-agent --help' for usage"
    done
    expect_eq "--version" "$("$AGENT_BIN" --version)" "randsnat-agent $("$RANDSNAT_BIN" --version | awk '{print $2}')"
    ip netns exec "$NODE" python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1", 9469)); s.listen(); time.sleep(5)' &
    local holder=$!
    sleep 0.5
    out=$(in_ns "$NODE" "$AGENT_BIN" --metrics 127.0.0.1:9469 --no-reconcile 2>&1); rc=$?
    expect_eq "a port in use: exit 1" "$rc" "1"
    expect_contains "the error names the address and the cause" "$out" "cannot listen on 127.0.0.1:9469: the address is in use"
    kill "$holder"; wait "$holder" 2>/dev/null
    # An IPv6 address in brackets.
    ip netns exec "$NODE" "$AGENT_BIN" --metrics '[::1]:9470' --no-reconcile > "$WORK/agent6.log" 2>&1 &
    local agent6=$!
    local i; for i in $(seq 30); do in_ns "$NODE" curl -sf -g 'http://[::1]:9470/healthz' >/dev/null 2>&1 && break; sleep 0.1; done
    expect_contains "--metrics [::1]:9470 serves over IPv6" "$(in_ns "$NODE" curl -sf -g 'http://[::1]:9470/metrics')" "randsnat_build_info"
    kill "$agent6"; wait "$agent6" 2>/dev/null
}

# dashboard_vs_exposition TEXT_FILE: compares the Grafana dashboard's queries with the families of the
# exposition text in TEXT_FILE. Prints "not served: NAMES" for metric names a query uses that the
# agent does not serve, and "no panel: NAMES" for families served that no query shows (but
# randsnat_reconcile_last_success_timestamp_seconds: the alert's input, shown as its age, the
# seconds-since gauge); nothing when they agree. Also fails on JSON that does not parse.
dashboard_vs_exposition() {
    python3 - "$ROOT/install/grafana/randsnat-dashboard.json" "$1" <<'PY'
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
used = set()
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        used |= set(re.findall(r"\brandsnat_[a-zA-Z0-9_]+", target["expr"]))
served = {line.split()[2] for line in open(sys.argv[2]) if line.startswith("# TYPE ")}
missing = sorted(used - served)
unshown = sorted(served - used - {"randsnat_reconcile_last_success_timestamp_seconds"})
if missing: print("not served:", " ".join(missing))
if unshown: print("no panel:", " ".join(unshown))
PY
}

# One agent on the node, as the DaemonSet runs it: randsnat-agent reconciles (resync 1 s) and serves
# the metrics; its reconcile series come from its own passes. (node_conflist, wait_repaired and
# flush_steps: agent_tests.sh.)
test_metrics_agent_reconciles_and_reports_its_passes() {
    local list; list=$(node_conflist "$T-n" '"podTCPTimestamps":2')
    for pod in 1 2 3; do pod_add "$list" $pod >/dev/null; done
    ip netns exec "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$AGENT_BIN" --metrics "$METRICS" --scan-interval 1 \
        --cni-cache "$CNI_CACHE_DIR" --host-root "$WORK/root" --resync 1 > "$WORK/agent.log" 2>&1 &
    AGENT_PID=$!
    local i; for i in $(seq 50); do in_ns "$NODE" curl -sf -m 1 "http://$METRICS/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    expect "it answers /healthz while reconciling" in_ns "$NODE" curl -sf -m 1 "http://$METRICS/healthz"
    prometheus_up
    expect "passes are counted" test "$(promql_wait 'randsnat_reconcile_passes_total > 0')" -gt 0
    expect_eq "the agent's pods per network/family/backend" "$(promql_wait "randsnat_pods{network=\"$T-n\",family=\"ipv4\",backend=\"$BACKEND\"}")" "3"
    expect_eq "the generation in force is shown" \
        "$(promql_wait "count(randsnat_network_generation_info{network=\"$T-n\",family=\"ipv4\"})")" "1"
    expect_eq "no pod lacks its rules before the flush" "$(promql_wait "randsnat_network_pods_without_rules{network=\"$T-n\"}")" "0"
    local passes; passes=$(promql 'randsnat_reconcile_passes_total')
    # The flush (the backend's last flush step: it takes the member set too), repaired by the agent.
    in_ns "$NODE" sh -c "$(flush_steps | tail -1)"
    expect "the agent repairs the flush" test "$(wait_repaired 3)" != never
    # What the agent's log says it put back (per family: a chain and its pods' members), and the counters.
    sleep 1
    local members rules
    members=$(grep -o 'added [0-9]* pod member' "$WORK/agent.log" | awk '{n += $2} END {print n + 0}')
    rules=$(grep -c 'repaired: network .*: repaired generation' "$WORK/agent.log")
    expect "the flush cost the pods their members (the agent added at least 3)" test "$members" -ge 3
    expect_eq "the member repairs are counted ($members, as logged)" \
        "$(promql_wait "randsnat_reconcile_repairs_total{kind=\"member\"} >= $members")" "$members"
    expect_eq "the rules' repairs are counted ($rules, as logged)" "$(promql_wait "randsnat_reconcile_repairs_total{kind=\"rules\"} >= $rules")" "$rules"
    expect "passes keep rising" test "$(promql_wait "randsnat_reconcile_passes_total > $passes")" -gt "$passes"
    expect_eq "no pod lacks its rules after the repair" "$(promql "randsnat_network_pods_without_rules{network=\"$T-n\"}")" "0"
    expect_eq "no pass failed" "$(promql 'randsnat_reconcile_failures_total')" "0"
    # The alerts on these series, evaluated by this Prometheus on the scraped values: neither fires.
    local rules="$ROOT/install/prometheus/randsnat-rules.yaml" alert expr
    for alert in RandsnatAgentNotReconciling RandsnatPodsWithoutRules; do
        expr=$(python3 -c 'import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        if r.get("alert") == sys.argv[2]: print(r["expr"])' "$rules" "$alert")
        expect "$alert's expression is in the rules file" test -n "$expr"
        expect_eq "$alert does not fire while the agent reconciles" "$(promql "$expr")" ""
    done
    expect "the seconds since the last good pass are under 3 periods" \
        test "$(promql 'randsnat_reconcile_seconds_since_last_success < 3 * randsnat_reconcile_interval_seconds')" != ""
    # A pass held up (the network's lock taken, as a long ADD would hold it): scrapes are still answered.
    local lock; lock=$(ls "$RANDSNAT_RUN_DIR"/*.lock | head -1)
    # Held for 8 s from when flock has it (a marker file says so): on a loaded machine the scrapes
    # below take seconds, and they must all fall inside the hold.
    rm -f "$WORK/lock-held"
    flock "$lock" sh -c "touch '$WORK/lock-held'; sleep 8" &
    local holder=$! slowest=0 took answered=0
    for i in $(seq 50); do [ -e "$WORK/lock-held" ] && break; sleep 0.1; done
    local held_at=$SECONDS
    sleep 1.2  # the next pass (resync 1 s) is now waiting for the lock
    local held_from held_to
    held_from=$(in_ns "$NODE" curl -s -m 1 "http://$METRICS/metrics" | awk '$1 == "randsnat_reconcile_passes_total" {print $2}')
    for i in 1 2 3 4 5; do
        took=$(in_ns "$NODE" curl -s -o /dev/null -m 1 -w '%{time_total}' "http://$METRICS/metrics") && answered=$((answered + 1))
        slowest=$(python3 -c "print(max($slowest, ${took:-9}))")
        sleep 0.1
    done
    held_to=$(in_ns "$NODE" curl -s -m 1 "http://$METRICS/metrics" | awk '$1 == "randsnat_reconcile_passes_total" {print $2}')
    [ $((SECONDS - held_at)) -lt 8 ] || fail "the scrapes took longer than the lock was held ($((SECONDS - held_at)) s): machine too loaded to tell"
    wait "$holder"
    echo "    (scrapes while a pass waits for the network lock: slowest ${slowest} s)"
    expect_eq "no pass completes while the lock is held (passes stay at $held_from)" "$held_to" "$held_from"
    expect_eq "every scrape is answered within 1 s while a pass is held up" "$answered" "5"
    expect "passes go on once the lock is free" test "$(promql_wait "randsnat_reconcile_passes_total > $held_to")" != ""
    # Some SNATed flows, so that the port usage series exist too; then every family the agent serves
    # (all of them are here: reconcile, rules, pods, port usage, timestamps) against the dashboard.
    udp_flows 1 5
    promql_wait 'randsnat_snat_ports_in_use > 0' >/dev/null
    local text; text=$(in_ns "$NODE" curl -sf "http://$METRICS/metrics")
    expect "promtool check metrics accepts the text with the reconcile series" sh -c "printf '%s\\n' \"\$1\" | promtool check metrics" _ "$text"
    printf '%s\n' "$text" > "$WORK/exposition.txt"
    expect_eq "the dashboard's queries use only served metrics, and every served family has a panel" "$(dashboard_vs_exposition "$WORK/exposition.txt")" ""
    expect_eq "the kernel's per-port timestamp offsets are exported (6.18 has them)" "$(scraped randsnat_tcp_timestamp_per_port_offsets)" "1"
    expect_eq "the network's podTCPTimestamps" "$(scraped "randsnat_pod_tcp_timestamps_configured{network=\"$T-n\"}")" "2"
    expect_eq "its 3 pods at tcp_timestamps=2" "$(scraped "randsnat_pod_tcp_timestamps_pods{network=\"$T-n\",value=\"2\"}")" "3"
    # A SYN nobody answers (no host at 203.0.113.99): pod 1's TCP sends it again after 1 s.
    in_ns "$T-pod1" python3 -c 'import socket
try: socket.create_connection(("203.0.113.99", 80), timeout=1.6)
except OSError: pass'
    local retrans="" deadline=$((SECONDS + 10))
    while [ $SECONDS -le $deadline ]; do
        retrans=$(scraped "randsnat_pod_syn_retransmits{network=\"$T-n\"}"); [ "${retrans:-0}" -ge 1 ] && break; sleep 0.2
    done
    expect "a pod's SYN retransmit shows (${retrans:-absent})" test "${retrans:-0}" -ge 1
    expect_eq "the pods' SYN retransmits are TcpExtTCPSynRetrans summed over the network's pods" "$retrans" \
        "$(for pod in 1 2 3; do in_ns "$T-pod$pod" nstat -az TcpExtTCPSynRetrans | awk '$1 == "TcpExtTCPSynRetrans" {print $2}'; done | awk '{s += $1} END {print s + 0}')"
    expect_contains "the agent logged the repair" "$(cat "$WORK/agent.log")" "repaired:"
    kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
}

test_metrics_per_pod_binary_carries_no_http_server() {
    # The HTTP server and its libraries live in randsnat-agent only (Package.swift): the binary a
    # runtime execs per pod must not grow by them. Symbols of NIO's modules carry "7NIOCore"/"8NIOPosix".
    expect "randsnat-agent links SwiftNIO" sh -c "nm '$AGENT_BIN' | grep -q '7NIOCore'"
    expect_eq "randsnat (per pod) has no NIO symbol" "$(nm "$RANDSNAT_BIN" | grep -c -e '7NIOCore' -e '8NIOPosix' -e '8NIOHTTP1')" "0"
}
