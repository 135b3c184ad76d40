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
echo "  conntrack before: $(stat)"
load=()
for n in 1 2 3; do in_ns "$T-pod$n" python3 Tests/integration/peer.py load 203.0.113.10 8080 300 20 > "$WORK/load$n" & load+=($!); done
started=$SECONDS
while kill -0 "${load[@]}" 2>/dev/null; do printf '\r  load running: %2d s of at most 20 s' $((SECONDS - started)); sleep 0.5; done
wait "${load[@]}"; printf '\r%50s\r' ''
for n in 1 2 3; do read -r attempts failures slowest < "$WORK/load$n"; echo "  pod $n: $attempts connects, $failures failed, slowest ${slowest} ms"; done
echo "  conntrack after:  $(stat)"

step "What randsnat doctor says about the node"
"$RANDSNAT_BIN" doctor --netns "/var/run/netns/$NODE" --interval 1 --cni-cache "$CNI_CACHE_DIR" | sed 's/^/    /' || true

step "DEL for the pods (randsnat first, then the bridge), and what is left"
for n in 1 2 3; do pod_del "$list" "$n"; done
left=$( { in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ipset list -n; } | grep -c RANDSNAT || true)
echo "  randsnat rules and sets left on the node: $left"
