#!/usr/bin/env bash
# The randsnat demo: builds randsnat, makes throwaway namespaces (a node, three pods on a bridge, an
# "ext" server with no route back to the pods, a "vpc" server that has one), runs the chain
# [bridge, randsnat] for the pods exactly as a runtime does, and shows what randsnat changes.
# Everything it makes is removed at the end, also on Ctrl-C or failure. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing the Debian packages the demo needs and building randsnat (release, static Swift runtime)"
install/deps.sh
swift build -c release --static-swift-stdlib 2>&1 | grep -E "error|Compiling randsnat|Build complete" || true
source Tests/integration/lib.sh
trap 'step "Removing every namespace the demo made"; bed_down; rm -rf "$TMP_BASE"' EXIT
bed_up demo

step "Namespaces: $NODE (node), $EXT (ext, 203.0.113.10, no route back), $VPC (vpc, 198.19.0.10, routes back)"
list=$(conflist "$T-demo" '"nonMasqueradeCIDRs":["198.19.0.0/16","2001:db8:19::/48"]')
echo "network config ($list):"
sed 's/^/    /' "$list"

step "ADD for three pods: the reference bridge (ipMasq off) then randsnat, with prevResult, as a runtime runs them"
for n in 1 2 3; do
    printf '  pod %s: ' "$n"
    pod_add "$list" "$n" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(", ".join(i["address"] for i in r["ips"]))'
done

step "What the far ends see"
echo "  pod 1 -> ext 203.0.113.10   ext sees: $(ask 1 203.0.113.10)     (the node: SNAT with --random-fully)"
echo "  pod 1 -> ext 2001:db8:ee::10 ext sees: $(ask 1 2001:db8:ee::10)  (IPv6 too)"
echo "  pod 1 -> vpc 198.19.0.10    vpc sees: $(ask 1 198.19.0.10)     (the pod itself: nonMasqueradeCIDRs)"

step "The rules randsnat wrote (iptables-legacy-save -t nat) and its sets (ipset list)"
in_ns "$NODE" iptables-legacy-save -t nat | grep -E 'RANDSNAT|^\*|COMMIT' | sed 's/^/    /'
in_ns "$NODE" ipset list | grep -vE '^(Size|Header)' | sed 's/^/    /'

step "A short bounded load: 3 pods x at most 300 fresh connections each to ext, at most 20 s"
stat() { in_ns "$NODE" python3 -c '
import sys
lines = open("/proc/net/stat/nf_conntrack").read().split("\n")
names = lines[0].split()
totals = [0] * len(names)
for line in lines[1:]:
    for i, value in enumerate(line.split()):
        totals[i] += int(value, 16)
want = ["insert_failed", "drop", "early_drop", "clash_resolve"]
print("  ".join("%s=%d" % (n, totals[names.index(n)]) for n in want if n in names))'; }
# changed BEFORE AFTER: what a step changed, counter by counter ("insert_failed +30  drop +30 ...").
changed() { python3 -c '
import sys
before = dict(item.split("=") for item in sys.argv[1].split())
after = dict(item.split("=") for item in sys.argv[2].split())
print("  ".join("%s %+d" % (name, int(after[name]) - int(before.get(name, 0))) for name in after))' "$1" "$2"; }
before=$(stat)
load=()
for n in 1 2 3; do in_ns "$T-pod$n" python3 Tests/integration/peer.py load 203.0.113.10 8080 300 20 > "$WORK/load$n" & load+=($!); done
started=$SECONDS
while kill -0 "${load[@]}" 2>/dev/null; do printf '\r  load running: %2d s of at most 20 s' $((SECONDS - started)); sleep 0.5; done
wait "${load[@]}"; printf '\r%50s\r' ''
for n in 1 2 3; do read -r attempts failures slowest < "$WORK/load$n"; echo "  pod $n: $attempts connects, $failures failed, slowest ${slowest} ms"; done
echo "  what the load changed in conntrack: $(changed "$before" "$(stat)")"

step "Port exhaustion toward one destination, and the fix: 130 UDP flows from pod 1 to ext:9999"
# Pod 1's SNAT is re-added with a 100-port range, so that 130 flows overrun it; then with toSource
# over 4 node addresses (400 ports). randsnat is run alone with the chain's cached prevResult.
for address in 2 3 4 5; do in_ns "$NODE" ip addr add 203.0.113.$address/24 dev "${T}e0"; done
# resnat SETTINGS: pod 1's SNAT again, with SETTINGS (randsnat keys) instead of the demo's.
resnat() {
    python3 - "$CNI_CACHE_DIR/$T-demo-c1-$RUN-eth0" "$WORK/pod1.json" "$T-demo" "$1" <<'PY'
import json, sys
conf = {"cniVersion": "1.0.0", "name": sys.argv[3], "type": "randsnat", "nonMasqueradeCIDRs": ["198.19.0.0/16", "2001:db8:19::/48"],
        "prevResult": json.load(open(sys.argv[1]))["result"]}   # libcni's cache entry holds the result under "result"
conf.update(json.loads(sys.argv[4]))
json.dump(conf, open(sys.argv[2], "w"))
PY
    randsnat_exec DEL "$WORK/pod1.json" "c1-$RUN" "" eth0 >/dev/null   # DEL finds the pod by owner, whatever the settings
    randsnat_exec ADD "$WORK/pod1.json" "c1-$RUN" "/var/run/netns/$T-pod1" eth0 >/dev/null
}
flows() {
    in_ns "$NODE" conntrack -F >/dev/null 2>&1
    local before; before=$(stat)
    in_ns "$T-pod1" python3 -c '
import socket
for port in range(41000, 41130):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port)); s.sendto(b"x", ("203.0.113.10", 9999)); s.close()'
    echo "    what the 130 flows changed in conntrack: $(changed "$before" "$(stat)")"
}
resnat '{"portRange":"40000-40099"}'
echo "  one SNAT address, 100 ports (portRange 40000-40099):"
flows
# Separate toSource items spread new flows over the addresses (-m statistic); a range "a-b" would not
# here: the kernel picks an address of a range by hashing source and destination address.
resnat '{"portRange":"40000-40099","toSource":["203.0.113.2","203.0.113.3","203.0.113.4","203.0.113.5"]}'
echo "  toSource over 4 addresses, 100 ports each:"
flows
echo "  (each insert_failed is a flow whose first packet was dropped: a 1 s/3 s stall for TCP, a lost"
echo "  datagram for UDP: +30 with one address, +0 with four. More SNAT addresses, or no SNAT toward"
echo "  internal ranges, are what move it here.)"
resnat '{}'

step "The native nftables backend: pod 1 ADDed again with \"backend\": \"nftables\" moves the whole network"
# A network never has state in both backends: the new backend gets the rules and every pod's member
# first, then the legacy rules and sets go (no moment without SNAT).
resnat '{"backend":"nftables"}'
in_ns "$NODE" nft list table inet randsnat | grep -v '^\s*$' | sed 's/^/    /'
echo "  ext sees pod 2 as $(ask 2 203.0.113.10); randsnat rules and sets left in iptables-legacy/ipset:" \
    "$( { in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ipset list -n; } | grep -c RANDSNAT || true)"

step "A flush, and the agent: 'nft flush ruleset' in the node removes randsnat's table; the agent puts it back from the pod records"
in_ns "$NODE" nft flush ruleset
echo "  after the flush, pod 2 -> ext: $(ask 2 203.0.113.10)   (no SNAT: ext has no route back to the pod)"
in_ns "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --once --host-root "$WORK" 2>&1 | sed 's/^/    agent: /' || true
echo "  after one agent pass, pod 2 -> ext: $(ask 2 203.0.113.10)   (the node again; the DaemonSet's agent does this within ~100 ms of the flush)"

step "What randsnat doctor says about the node"
"$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 1 --cni-cache "$CNI_CACHE_DIR" | sed 's/^/    /' || true

step "DEL for the pods (randsnat first, then the bridge), and what is left"
for n in 1 2 3; do pod_del "$list" "$n"; done
left=$( { in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ipset list -n; in_ns "$NODE" nft list ruleset; } | grep -c -i randsnat || true)
echo "  randsnat rules, sets and tables left on the node: $left"
