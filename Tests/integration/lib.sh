# The integration test bed: namespaces made per test, the built binary run as a runtime runs it.
#
#  [pod ns] eth0 198.18.0.x ─┐                    ┌─ [vpc] 198.19.0.10 / 2001:db8:19::10 (routes back to pods)
#  [pod ns] eth0 2001:db8:18::x ┤ rsnbr0 (node ns) │
#                            ─┘  198.18.0.1       └─ [ext] 203.0.113.10 / 2001:db8:ee::10 (NO route back)
#
# Every name starts with $RUN (unique per run), so two runs cannot collide; every test removes what it
# made in an EXIT trap, also when it fails. Nothing touches the root namespace's links, routes or sets.
#
# Writing a test: a function test_NAME in a *_tests.sh file, run on a fresh bed by run_test. It passes
# only when it made at least one expectation (expect, expect_eq, expect_contains, expect_absent, pass),
# none of them failed, and it ran to its end. It FAILS when an expectation failed (also one made in a
# command substitution or a background job: results go to a file, not to a shell variable), when it
# made no expectation at all, when it stopped early (an unbound variable under `set -u`, an `exit`),
# when the bed could not be made (bed_up), and when a pod's ADD or DEL through pod_add or pod_del
# failed (setup_failed records it). For an ADD the test expects to fail, use pod_add_may_fail and
# assert on what it printed.
#
# Backends: EVERY test runs twice, first with BACKEND=iptables, then with BACKEND=nftables (the helpers
# below, conflist, standalone, randsnat_conf, snat_rules, member_count, ..., follow $BACKEND), unless
# it declares itself backend-specific with one line next to it, in its *_tests.sh file:
#
#     backend_specific NAME BACKEND REASON...
#     backend_specific doctor_reports_each_condition iptables "its foreign rules are iptables-legacy rules"
#
# Such a test runs only in BACKEND's pass. There is no list of names to keep anywhere else: a new test
# runs on both backends by doing nothing. A declaration with an unknown backend, without a reason or
# naming no test stops run.sh before any test runs.
#
# run.sh [NAME...]: no names runs every test; names run those tests; either way each runs on the
# backend(s) it declares, both by default. RANDSNAT_TEST_BACKEND=iptables|nftables runs that backend's
# pass only; a test named on the command line that is declared for the other backend fails, as does a
# name that is not a test. The last line is "integration: N passed, N failed" (CI reads it).

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
# with_backend EXTRA_JSON: EXTRA_JSON and the pass's backend key, unless EXTRA_JSON names a backend itself.
with_backend() { case $1 in *'"backend":'*) printf '%s' "$1" ;; *) join_json "$1" "$(backend_key)" ;; esac; }

# Each expectation is one line in the running test's results file ($RS_RESULTS, set by run_test):
# "pass ..." or "fail ...". A file, not a counter: a command substitution or a background job is a
# subshell whose variables die with it, and a test's own local of the counter's name would hide it.
# What they print goes to fd 7, run.sh's stdout, also from inside a command substitution.
exec 7>&1
RS_RESULTS=/dev/null
fail() { echo "    FAIL: $*" >&7; echo "fail $*" >> "$RS_RESULTS"; }
pass() { echo "    ok: $*" >&7; echo "pass $*" >> "$RS_RESULTS"; }
# setup_failed WHAT: a step the test relies on failed (the bed, a pod's ADD): the test fails.
setup_failed() { echo "    FAIL (setup): $*" >&7; echo "fail setup: $*" >> "$RS_RESULTS"; }
# expect DESCRIPTION COMMAND...: the command must succeed.
expect() { local what=$1; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }
expect_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected [$3], got [$2]"; fi; }
expect_contains() { if printf '%s' "$2" | grep -qF -- "$3"; then pass "$1"; else fail "$1: [$3] not in: $(printf '%s' "$2" | head -c 600)"; fi; }
expect_absent() { if printf '%s' "$2" | grep -qF -- "$3"; then fail "$1: [$3] found: $(printf '%s' "$2" | grep -F -- "$3" | head -3 | cut -c1-300)"; else pass "$1"; fi; }

# backend_specific NAME BACKEND REASON...: test_NAME runs only in BACKEND's pass (see the header).
declare -A rs_only_on=() rs_only_reason=()
rs_declaration_errors=()
backend_specific() {
    local name=${1-} backend=${2-}
    shift 2 2>/dev/null || shift $#
    case $backend in
        iptables|nftables) ;;
        *) rs_declaration_errors+=("backend_specific $name: backend '$backend' is neither iptables nor nftables"); return ;;
    esac
    [ $# -gt 0 ] || { rs_declaration_errors+=("backend_specific $name $backend: say why it is backend-specific"); return; }
    [ -z "${rs_only_on[$name]-}" ] || rs_declaration_errors+=("backend_specific $name: declared twice")
    rs_only_on[$name]=$backend
    rs_only_reason[$name]="$*"
}
# runs_on NAME BACKEND: whether test_NAME runs in BACKEND's pass.
runs_on() { [ -z "${rs_only_on[$1]-}" ] || [ "${rs_only_on[$1]}" = "$2" ]; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# bed_up: node, ext and vpc namespaces with their links; T is the per-test prefix. Returns non-zero
# (after setup_failed) when any step failed or a peer server does not listen within 10 s.
bed_up() {
    T="$RUN$1"
    NODE=$T-node EXT=$T-ext VPC=$T-vpc
    WORK=$TMP_BASE/$1
    export CNI_CACHE_DIR=$WORK/cache
    # randsnat's network locks go under the test's work dir, not the host's /run/randsnat.
    export RANDSNAT_RUN_DIR=$WORK/run
    # The steps in a subshell with set -e, run as a plain statement (in an `if` or `||` set -e is off).
    ( set -e; bed_build ) >&7 2>&1
    local built=$?
    [ $built -eq 0 ] || { setup_failed "the test bed: a step of bed_up failed (exit $built; its output is above)"; return 1; }
    wait_listening "$EXT" && wait_listening "$VPC"
}
# serve NS SECONDS: peer.py's server on port 8080 in NS for SECONDS, in the background; returns once it
# listens (a fixed sleep is too short on a loaded machine: the client then sees "connection refused").
serve() {
    in_ns "$1" timeout "$2" python3 "$HERE/peer.py" serve 8080 "$2" >/dev/null 2>&1 &
    wait_listening "$1"
}
# wait_listening NS [PORT [tcp|udp]]: waits up to 10 s for a socket listening on (tcp) or bound to
# (udp) PORT, 8080 by default, in NS; setup_failed if none.
wait_listening() {
    local port=${2:-8080} flag=-Hltn tries
    [ "${3:-tcp}" = tcp ] || flag=-Hlun
    for tries in $(seq 1 500); do
        [ -z "$(in_ns "$1" ss $flag "sport = :$port" 2>/dev/null)" ] || return 0
        sleep 0.02
    done
    setup_failed "nothing listens on ${3:-tcp} port $port in $1 after 10 s"; return 1
}
bed_build() {
    mkdir -p "$WORK/cache" "$WORK/ipam"
    for ns in $NODE $EXT $VPC; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
        in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    # The servers first: they listen on [::]:8080 before any address exists, and their start (python,
    # slow on a loaded machine) overlaps the steps below; bed_up waits until both listen.
    in_ns "$EXT" timeout 300 python3 "$HERE/peer.py" serve 8080 300 >/dev/null 2>&1 &
    in_ns "$VPC" timeout 300 python3 "$HERE/peer.py" serve 8080 300 >/dev/null 2>&1 &
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
}

bed_down() {
    # Every namespace this test made starts with "$T-" (pods are made in command substitutions, so a
    # list kept in a variable would miss them).
    for ns in $(ip netns list | awk '{print $1}' | grep "^$T-"); do
        # A process may end between the listing and the kill: cleanup goes on (the demo runs this
        # under set -e, where a failed kill stopped it with namespaces left behind).
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

# conflist NAME RANDSNAT_EXTRA_JSON [CNI_VERSION]: [bridge (ipMasq off), randsnat] with host-local IPAM.
# The default version is 1.0.0 because Debian 12's reference plugins (1.1.1) do not accept 1.1.0;
# STATUS and GC (1.1.0 only) are run on randsnat's own config of the same network (randsnat_conf).
conflist() {
    local name=$1 extra version=${3:-1.0.0}
    extra=$(with_backend "${2:-}")
    cat > "$WORK/$name.conflist" <<JSON
{"cniVersion":"$version","name":"$name","plugins":[
 {"type":"bridge","bridge":"rsnbr0","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"198.18.0.0/24"}],[{"subnet":"2001:db8:18::/64"}]],
          "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}},
 {"type":"randsnat"${extra:+,$extra}}]}
JSON
    echo "$WORK/$name.conflist"
}

# pod_add CONFLIST N: a pod namespace and the chain's ADD for it; prints the result. A failed ADD
# fails the test (setup_failed); pod_add_may_fail is the same for an ADD the test expects to fail.
pod_add() {
    local out rc
    out=$(pod_add_may_fail "$@"); rc=$?
    printf '%s\n' "$out"
    [ $rc -eq 0 ] || setup_failed "ADD of pod $2 with $1 failed (exit $rc): $(printf '%s' "$out" | head -c 400)"
    return $rc
}
pod_add_may_fail() {
    local pod=$T-pod$2
    # A pod added again after its DEL keeps its namespace (as a runtime retrying a sandbox would).
    [ -e "/var/run/netns/$pod" ] || ip netns add "$pod" || { setup_failed "ip netns add $pod failed"; return 1; }
    in_ns "$pod" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    in_ns "$NODE" python3 "$HERE/cni.py" add "$1" "c$2-$RUN" "/var/run/netns/$pod" eth0
}
# pod_del CONFLIST N: the chain's DEL; a failed DEL fails the test (DEL must succeed, the spec says).
pod_del() {
    local out rc
    out=$(in_ns "$NODE" python3 "$HERE/cni.py" del "$1" "c$2-$RUN" "/var/run/netns/$T-pod$2" eth0); rc=$?
    [ -z "$out" ] || printf '%s\n' "$out"
    [ $rc -eq 0 ] || setup_failed "DEL of pod $2 with $1 failed (exit $rc): $(printf '%s' "$out" | head -c 400)"
    return $rc
}
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
    extra=$(with_backend "${2:-}")
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
    extra=$(with_backend "${2:-}")
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
# add_member SET ADDRESS COMMENT: puts a member in behind randsnat's back; has_member SET ADDRESS
# prints the member's comment (empty, and fails, when ADDRESS is no member).
add_member() {
    if [ "$BACKEND" = nftables ]; then in_ns "$NODE" nft add element inet randsnat "$1" "{ $2 comment \"$3\" }"
    else in_ns "$NODE" ipset add "$1" "$2" comment "$3"; fi
}
has_member() {
    if [ "$BACKEND" = nftables ]; then
        in_ns "$NODE" nft list set inet randsnat "$1" 2>/dev/null | tr ',{}' '\n\n\n' | grep -E "^[[:space:]]*$2( |\$)" | grep -o 'comment "[^"]*"' | cut -d'"' -f2 | grep .
    else in_ns "$NODE" ipset list "$1" 2>/dev/null | grep "^$2 " | grep -o 'comment "[^"]*"' | cut -d'"' -f2 | grep .; fi
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

# run_test NAME: runs test_NAME on a fresh bed in a subshell, always tearing it down; then reads its
# results file: it passed only with at least one expectation, none failed, and the test ran to its end.
passed=0 failed=0 failed_names=()
run_test() {
    local name=$1 label=$1
    [ "$BACKEND" = iptables ] || label="$1 [$BACKEND]"
    local results="$TMP_BASE/results-$BACKEND-$name"
    : > "$results"
    echo "--- $label"
    ( set +e; RS_RESULTS=$results; trap bed_down EXIT
      bed_up "$(printf '%s' "$name" | cksum | cut -c1-4)"
      [ $? -eq 0 ] || exit 1
      "test_$name"
      echo "end" >> "$RS_RESULTS" )
    local fails passes why=""
    fails=$(grep -c '^fail' "$results"); passes=$(grep -c '^pass' "$results")
    if [ "$fails" -gt 0 ]; then why="$fails failed"; grep -q '^fail setup:' "$results" && why="$why, setup among them"
    elif ! grep -qx end "$results"; then why="it stopped before its end"
    elif [ "$passes" -eq 0 ]; then why="it made no expectation"
    fi
    if [ -z "$why" ]; then
        passed=$((passed + 1)); echo "--- $label: ok ($passes expectations)"
    else
        failed=$((failed + 1)); failed_names+=("$label"); echo "--- $label: FAILED ($why)"
    fi
}
