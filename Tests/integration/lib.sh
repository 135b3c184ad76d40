# The integration test bed: namespaces made per test, the built binary run as a runtime runs it.
#
#  [pod ns] eth0 198.18.0.x ─┐                    ┌─ [vpc] 198.19.0.10 / 2001:db8:19::10 (routes back to pods)
#  [pod ns] eth0 2001:db8:18::x ┤ rsnbr0 (node ns) │
#                            ─┘  198.18.0.1       └─ [ext] 203.0.113.10 / 2001:db8:ee::10 (NO route back)
#
# Every name starts with $RUN (unique per run), so two runs cannot collide; every test removes what it
# made in an EXIT trap, also when it fails. Nothing touches the root namespace's links, routes or sets.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RANDSNAT_BIN=${RANDSNAT_BIN:-$ROOT/.build/release/randsnat}
RUN=${RUN:-rs$(printf '%04x' $((RANDOM % 65536)))}
TMP_BASE=$(mktemp -d /tmp/randsnat-it.XXXXXX)
export CNI_PATH="$(dirname "$RANDSNAT_BIN"):/usr/lib/cni"

# The backend under test: run.sh runs the backend-neutral tests once per backend. For iptables no key
# is written (`auto` picks it on an empty node); for nftables the configs say "backend":"nftables".
BACKEND=${RANDSNAT_TEST_BACKEND:-iptables}
backend_key() { if [ "$BACKEND" = nftables ]; then printf '"backend":"nftables"'; fi; }
# join_json A B: two JSON member lists joined with a comma (either may be empty).
join_json() { if [ -n "$1" ] && [ -n "$2" ]; then printf '%s,%s' "$1" "$2"; else printf '%s%s' "$1" "$2"; fi; }

# The count of failed expectations of the running test (a name no test uses for a local of its own:
# a local of the same name would hide it from fail(), and the test would pass).
rs_failed_expectations=0
fail() { echo "    FAIL: $*"; rs_failed_expectations=$((rs_failed_expectations + 1)); }
pass() { echo "    ok: $*"; }
# expect DESCRIPTION COMMAND...: the command must succeed.
expect() { local what=$1; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }
expect_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected [$3], got [$2]"; fi; }
expect_contains() { if printf '%s' "$2" | grep -qF -- "$3"; then pass "$1"; else fail "$1: [$3] not in: $(printf '%s' "$2" | head -c 600)"; fi; }
expect_absent() { if printf '%s' "$2" | grep -qF -- "$3"; then fail "$1: [$3] found"; else pass "$1"; fi; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# bed_up: node, ext and vpc namespaces with their links; T is the per-test prefix.
bed_up() {
    T="$RUN$1"
    NODE=$T-node EXT=$T-ext VPC=$T-vpc
    WORK=$TMP_BASE/$1
    mkdir -p "$WORK/cache" "$WORK/ipam"
    export CNI_CACHE_DIR=$WORK/cache
    # randsnat's network locks go under the test's work dir, not the host's /run/randsnat.
    export RANDSNAT_RUN_DIR=$WORK/run
    for ns in $NODE $EXT $VPC; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
        in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    in_ns "$NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip link add "${T}e0" netns "$NODE" type veth peer name "${T}e1" netns "$EXT"
    ip link add "${T}v0" netns "$NODE" type veth peer name "${T}v1" netns "$VPC"
    in_ns "$NODE" ip addr add 203.0.113.1/24 dev "${T}e0"
    in_ns "$NODE" ip addr add 2001:db8:ee::1/64 dev "${T}e0" nodad
    in_ns "$NODE" ip link set "${T}e0" up
    in_ns "$NODE" ip addr add 198.19.0.1/16 dev "${T}v0"
    in_ns "$NODE" ip addr add 2001:db8:19::1/64 dev "${T}v0" nodad
    in_ns "$NODE" ip link set "${T}v0" up
    in_ns "$EXT" ip addr add 203.0.113.10/24 dev "${T}e1"
    in_ns "$EXT" ip addr add 2001:db8:ee::10/64 dev "${T}e1" nodad
    in_ns "$EXT" ip link set "${T}e1" up
    in_ns "$VPC" ip addr add 198.19.0.10/16 dev "${T}v1"
    in_ns "$VPC" ip addr add 2001:db8:19::10/64 dev "${T}v1" nodad
    in_ns "$VPC" ip link set "${T}v1" up
    in_ns "$VPC" ip route add 198.18.0.0/16 via 198.19.0.1
    in_ns "$VPC" ip -6 route add 2001:db8:18::/48 via 2001:db8:19::1
    # ext has no route to 198.18.0.0/16 or 2001:db8:18::/48: only SNATed traffic gets answers.
    in_ns "$EXT" timeout 300 python3 "$HERE/peer.py" serve 8080 300 >/dev/null 2>&1 &
    in_ns "$VPC" timeout 300 python3 "$HERE/peer.py" serve 8080 300 >/dev/null 2>&1 &
    sleep 0.3
}

bed_down() {
    # Every namespace this test made starts with "$T-" (pods are made in command substitutions, so a
    # list kept in a variable would miss them).
    for ns in $(ip netns list | awk '{print $1}' | grep "^$T-"); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}

# conflist NAME RANDSNAT_EXTRA_JSON [CNI_VERSION]: [bridge (ipMasq off), randsnat] with host-local IPAM.
# The default version is 1.0.0 because Debian 12's reference plugins (1.1.1) do not accept 1.1.0;
# STATUS and GC (1.1.0 only) are run on randsnat's own config of the same network (randsnat_conf).
conflist() {
    local name=$1 extra version=${3:-1.0.0}
    extra=$(join_json "${2:-}" "$(backend_key)")
    cat > "$WORK/$name.conflist" <<JSON
{"cniVersion":"$version","name":"$name","plugins":[
 {"type":"bridge","bridge":"rsnbr0","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"198.18.0.0/24"}],[{"subnet":"2001:db8:18::/64"}]],
          "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}},
 {"type":"randsnat"${extra:+,$extra}}]}
JSON
    echo "$WORK/$name.conflist"
}

# pod_add CONFLIST N: a pod namespace and the chain's ADD for it; prints the result.
pod_add() {
    local pod=$T-pod$2
    ip netns add "$pod"
    in_ns "$pod" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    in_ns "$NODE" python3 "$HERE/cni.py" add "$1" "c$2-$RUN" "/var/run/netns/$pod" eth0
}
pod_del() { in_ns "$NODE" python3 "$HERE/cni.py" del "$1" "c$2-$RUN" "/var/run/netns/$T-pod$2" eth0; }
pod_check() { in_ns "$NODE" python3 "$HERE/cni.py" check "$1" "c$2-$RUN" "/var/run/netns/$T-pod$2" eth0; }
# sandbox: a pod namespace for tests that run randsnat's entry alone (randsnat refuses the node's own
# namespace as CNI_NETNS); made once per test, prints its path.
sandbox() {
    [ -e "/var/run/netns/$T-sandbox" ] || ip netns add "$T-sandbox"
    echo "/var/run/netns/$T-sandbox"
}
# ask N HOST: what the server at HOST:8080 sees when pod N connects.
ask() { in_ns "$T-pod$1" python3 "$HERE/peer.py" ask "$2" 8080 2>&1; }

# standalone NAME EXTRA_JSON [RANGES_JSON] [CNI_VERSION]: a conflist with randsnat as the only plugin
# (bridge rsnsa0, host-local IPAM in the work dir); prints its path.
standalone() {
    local name=$1 extra ranges=${3:-'[[{"subnet":"198.18.0.0/24"}],[{"subnet":"2001:db8:18::/64"}]]'} version=${4:-1.0.0}
    extra=$(join_json "${2:-}" "$(backend_key)")
    cat > "$WORK/$name.conflist" <<JSON
{"cniVersion":"$version","name":"$name","plugins":[
 {"type":"randsnat","bridge":"rsnsa0","isGateway":true,"isDefaultGateway":true${extra:+,$extra},
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":$ranges}}]}
JSON
    echo "$WORK/$name.conflist"
}

# randsnat_conf NAME [EXTRA_JSON]: randsnat's own config (cniVersion 1.1.0) in a file; prints its path.
randsnat_conf() {
    local file="$WORK/$1-$RANDOM.json" extra
    extra=$(join_json "${2:-}" "$(backend_key)")
    printf '{"cniVersion":"1.1.0","name":"%s","type":"randsnat"%s}' "$1" "${extra:+,$extra}" > "$file"
    echo "$file"
}

# randsnat_exec VERB CONFIG_FILE [CONTAINER] [NETNS] [IFNAME]: the binary alone, as a runtime runs it.
randsnat_exec() {
    in_ns "$NODE" env CNI_COMMAND="$1" CNI_CONTAINERID="${3-}" CNI_NETNS="${4-}" CNI_IFNAME="${5-}" CNI_PATH="$CNI_PATH" \
        "$RANDSNAT_BIN" < "$2"
}

# The node's netfilter state as text: both legacy nat tables without counters, all sets, and the
# whole nf_tables ruleset (so an exact-restore check covers both backends).
nat_state() {
    { in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ip6tables-legacy-save -t nat; in_ns "$NODE" ipset save
      in_ns "$NODE" nft list ruleset; } 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
}

# Backend-neutral views of randsnat's state, for the tests that run on both backends.
# snat_rules: randsnat's rules as the backend's own tool prints them.
snat_rules() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list table inet randsnat 2>/dev/null
    else { in_ns "$NODE" iptables-legacy-save -t nat; in_ns "$NODE" ip6tables-legacy-save -t nat; } 2>/dev/null; fi
}
# snat_rules6: the IPv6 half.
snat_rules6() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list table inet randsnat 2>/dev/null | awk '/chain RANDSNAT-.*-6 [{]/,/[}]/'
    else in_ns "$NODE" ip6tables-legacy-save -t nat 2>/dev/null; fi
}
# snat_members: every set with its members and their comments.
snat_members() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list table inet randsnat 2>/dev/null; else in_ns "$NODE" ipset save 2>/dev/null; fi
}
# member_count: pod members (IPv4) with an owner comment.
member_count() {
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft -j list sets inet 2>/dev/null | python3 -c '
import json, sys
data = json.load(sys.stdin).get("nftables", [])
print(sum(len(i["set"].get("elem", [])) for i in data if "set" in i and i["set"]["table"] == "randsnat" and i["set"]["name"].endswith("-P4")))'
    else in_ns "$NODE" ipset save | grep -c '^add RANDSNAT-.*-P4 .*comment'; fi
}
# jump_count: IPv4 jumps to randsnat chains; chain_count: randsnat's IPv4 chains.
jump_count() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list chain inet randsnat postrouting 2>/dev/null | grep -c 'ip saddr @RANDSNAT-.* jump RANDSNAT-'
    else in_ns "$NODE" iptables-legacy-save -t nat | grep -c '^-A POSTROUTING .*-j RANDSNAT-'; fi
}
chain_count() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list table inet randsnat 2>/dev/null | grep -c 'chain RANDSNAT-[^ ]*-4 [{]'
    else in_ns "$NODE" iptables-legacy-save -t nat | grep -c '^:RANDSNAT-'; fi
}
# member_set: the IPv4 member set's name; del_member SET ADDRESS: takes a member out behind randsnat's back.
member_set() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list sets inet 2>/dev/null | grep -o 'RANDSNAT-[^ ]*-P4' | head -1
    else in_ns "$NODE" ipset list -n | grep -- '-P4$' | head -1; fi
}
del_member() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft delete element inet randsnat "$1" "{ $2 }"
    else in_ns "$NODE" ipset del "$1" "$2"; fi
}
# drop_second_rule: deletes rule 2 of randsnat's IPv4 chain behind its back; prints the chain's name.
drop_second_rule() {
    local chain
    if [ "$BACKEND" = nftables ]; then
        chain=$(in_ns "$NODE" nft list table inet randsnat | grep -o 'chain RANDSNAT-[^ ]*-4' | head -1 | cut -d' ' -f2)
        local handle; handle=$(in_ns "$NODE" nft -a list chain inet randsnat "$chain" | grep -o 'handle [0-9]*' | sed -n 2p | cut -d' ' -f2)
        in_ns "$NODE" nft delete rule inet randsnat "$chain" handle "$handle"
    else
        chain=$(in_ns "$NODE" iptables-legacy-save -t nat | grep -o '^:RANDSNAT-[^ ]*' | tr -d : | head -1)
        in_ns "$NODE" iptables-legacy -t nat -D "$chain" 2
    fi
    echo "$chain"
}
# Text the backend's tool prints for randsnat's masquerade, and for toSource 203.0.113.2-3 with ports.
masquerade_text() { if [ "$BACKEND" = nftables ]; then echo "masquerade fully-random"; else echo "-j MASQUERADE --random-fully"; fi; }
snat_text() {
    if [ "$BACKEND" = nftables ]; then echo "snat ip to 203.0.113.2/31:40000-40999 fully-random"
    else echo "-j SNAT --to-source 203.0.113.2-203.0.113.3:40000-40999 --random-fully"; fi
}
tcp_text() { if [ "$BACKEND" = nftables ]; then echo "meta l4proto tcp"; else echo "-p tcp -m comment"; fi; }
# A foreign rule in the backend's netfilter (a canary that must survive randsnat's writes).
canary_add() {
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft add table inet rscanary
        in_ns "$NODE" nft add chain inet rscanary post '{ type nat hook postrouting priority srcnat - 10; }'
        in_ns "$NODE" nft add rule inet rscanary post ip daddr 192.0.2.99 return comment canary
    else in_ns "$NODE" iptables-legacy -t nat -A POSTROUTING -d 192.0.2.99/32 -m comment --comment canary -j RETURN; fi
}
canary_text() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft list ruleset; else in_ns "$NODE" iptables-legacy-save -t nat; fi
}
canary_del() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft delete table inet rscanary
    else in_ns "$NODE" iptables-legacy -t nat -D POSTROUTING -d 192.0.2.99/32 -m comment --comment canary -j RETURN; fi
}

# run_test NAME: runs test_NAME on a fresh bed in a subshell, always tearing it down.
passed=0 failed=0 failed_names=()
run_test() {
    local name=$1 label=$1
    [ "$BACKEND" = iptables ] || label="$1 [$BACKEND]"
    echo "--- $label"
    if ( set +e; rs_failed_expectations=0; trap bed_down EXIT; bed_up "$(printf '%s' "$name" | cksum | cut -c1-4)"; "test_$name"; exit $((rs_failed_expectations > 0)) ); then
        passed=$((passed + 1)); echo "--- $label: ok"
    else
        failed=$((failed + 1)); failed_names+=("$label"); echo "--- $label: FAILED"
    fi
}
