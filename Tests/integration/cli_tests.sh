# The command lines of both binaries, as an operator meets them: --help on stdout with exit 0 for
# every command, a usage error that names the argument and the accepted form (then one line pointing
# at --help) with exit 2, sentences for system call failures, and the agent's log lines (an RFC 3339
# timestamp, what was repaired).
# Each test fails on 5df3a31 (the binaries before this): help went to stderr with exit 2 (doctor's
# with 3), usage errors printed the whole usage without naming the argument, a busy port read
# "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)", log lines had no timestamp and
# said "installed chain, jump and sets" when only the jump was gone.

agent_bin() { echo "$(dirname "$RANDSNAT_BIN")/randsnat-agent"; }

backend_specific help_goes_to_stdout_and_exits_0 iptables "it runs no verb: nothing in it depends on the backend"
test_help_goes_to_stdout_and_exits_0() {
    local agent; agent=$(agent_bin)
    local -a commands=("$RANDSNAT_BIN --help" "$RANDSNAT_BIN -h" "$RANDSNAT_BIN install --help" "$RANDSNAT_BIN agent --help"
                       "$RANDSNAT_BIN agent -h" "$RANDSNAT_BIN doctor --help" "$agent --help" "$agent -h")
    local command out err status
    for command in "${commands[@]}"; do
        out=$($command 2>"$WORK/err"); status=$?; err=$(cat "$WORK/err")
        local shown=${command//$(dirname "$RANDSNAT_BIN")\//}
        expect_eq "$shown: exit 0" "$status" 0
        expect_eq "$shown: nothing on stderr" "$err" ""
        expect_contains "$shown: the usage on stdout" "$out" "usage: "
        expect "$shown: blank lines between its sections" grep -qx '' <<< "$out"
    done
    out=$("$RANDSNAT_BIN" --help)
    local word
    for word in CNI_COMMAND CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS CNI_PATH RANDSNAT_RUN_DIR "randsnat install" "randsnat agent" "randsnat doctor"; do
        expect_contains "randsnat --help names $word" "$out" "$word"
    done
    out=$("$agent" --help)
    expect_absent "randsnat-agent --help runs no two lines together" "$out" "):usage:"
    expect "randsnat-agent's usage lines list --alive" grep -q '^ *\[--host-root DIR\] \[--resync SECONDS\] \[--once | --alive\]' <<< "$out"
    expect "randsnat agent's usage line lists --alive" grep -q '^usage: randsnat agent .*\[--once | --alive\]' <<< "$("$RANDSNAT_BIN" agent --help)"
    # Every option the agent's help describes is in its usage lines.
    local described; described=$(grep -o '^ *--[a-z-]*' <<< "$out" | tr -d ' ' | sort -u)
    local usage; usage=$(sed -n '/^usage:/,/^$/p' <<< "$out")
    for word in $described; do expect_contains "randsnat-agent's usage lines list $word" "$usage" "$word"; done
}

# NAME | EXIT | COMMAND (@AGENT: randsnat-agent) | WORDS the error names, comma-separated
USAGE_ERRORS='
an unknown command|2|randsnat bogus|unknown command bogus,install,run '\''randsnat --help'\'' for usage
an unknown option|2|randsnat --bogus|unknown argument --bogus,--version
agent: resync 0|2|@AGENT --resync 0|--resync 0,from 1 to 86400,run '\''randsnat-agent --help'\'' for usage
agent: a name for the metrics address|2|@AGENT --metrics localhost:9469|--metrics localhost:9469,an IP address
agent: a value left out|2|@AGENT --metrics|--metrics needs a value,--metrics ADDR:PORT
agent: an unknown option|2|@AGENT --bogus|unknown argument --bogus,--metrics ADDR:PORT,--resync SECONDS
agent: --no-reconcile with a loop option|2|@AGENT --no-reconcile --metrics 127.0.0.1:9469 --once|--once,--no-reconcile
randsnat agent: an unknown option|2|randsnat agent --bogus|unknown argument --bogus,--resync SECONDS,run '\''randsnat agent --help'\'' for usage
randsnat agent: resync x|2|randsnat agent --resync x|--resync x,SECONDS
install: an unknown option|2|randsnat install --bogus|unknown argument --bogus,--host-root DIR,run '\''randsnat install --help'\'' for usage
install: uninstall with watch|2|randsnat install --uninstall --watch|--uninstall cannot be used with --watch
doctor: a bad interval|2|randsnat doctor --interval soon|--interval soon,from 0 to 3600,run '\''randsnat doctor --help'\'' for usage
'

backend_specific usage_errors_name_the_argument iptables "it runs no verb: nothing in it depends on the backend"
test_usage_errors_name_the_argument() {
    local rows=0 name code command words
    while IFS='|' read -r name code command words; do
        [ -n "$name" ] || continue
        rows=$((rows + 1))
        command=${command//@AGENT/$(agent_bin)}
        command=${command/#randsnat /$RANDSNAT_BIN }
        local out status err
        out=$($command 2>"$WORK/err"); status=$?; err=$(cat "$WORK/err")
        expect_eq "$name: exit $code" "$status" "$code"
        expect_eq "$name: nothing on stdout" "$out" ""
        expect_eq "$name: two lines on stderr (the problem, then where the usage is)" "$(wc -l <<< "$err")" 2
        local word
        IFS=',' read -ra wanted <<< "$words"
        for word in "${wanted[@]}"; do expect_contains "$name: says \"$word\"" "$err" "$word"; done
    done <<< "$USAGE_ERRORS"
    expect "at least 10 rows ($rows)" test "$rows" -ge 10
}

backend_specific agent_says_why_it_cannot_listen iptables "the metrics endpoint does not depend on the backend"
test_agent_says_why_it_cannot_listen() {
    # Something else holds the port in the node's namespace.
    in_ns "$NODE" python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 9469)); s.listen(); time.sleep(30)' &
    local holder=$!
    sleep 0.5
    local err status
    err=$(in_ns "$NODE" timeout 10 "$(agent_bin)" --no-reconcile --metrics 127.0.0.1:9469 2>&1 >/dev/null); status=$?
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
    expect_eq "the agent exits 1" "$status" 1
    expect_contains "it says the address is in use, as a sentence" "$err" "cannot listen on 127.0.0.1:9469: the address is in use"
    expect_absent "not NIO's bind(descriptor:...) text" "$err" "bind(descriptor"
    expect "the line starts with an RFC 3339 timestamp" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z randsnat-agent: ' <<< "$err"
}

# Only the jump deleted: the agent's line says so (and not "chain, jump and sets"); every line of its
# log starts with an RFC 3339 timestamp.
test_agent_log_says_what_was_repaired() {
    local list; list=$(node_conflist "$T-n" "")
    pod_add "$list" 1 >/dev/null
    if [ "$BACKEND" = nftables ]; then
        local handle; handle=$(in_ns "$NODE" nft -a list chain inet randsnat postrouting | grep 'ip saddr @RANDSNAT-.* jump RANDSNAT-' | grep -o 'handle [0-9]*' | head -1 | cut -d' ' -f2)
        in_ns "$NODE" nft delete rule inet randsnat postrouting handle "$handle"
    else
        local number; number=$(in_ns "$NODE" iptables-legacy -t nat -L POSTROUTING --line-numbers | awk '/RANDSNAT-/ {print $1; exit}')
        in_ns "$NODE" iptables-legacy -t nat -D POSTROUTING "$number"
    fi
    expect_eq "the jump is gone" "$(jump_count)" 0
    local log; log=$(in_ns "$NODE" env RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "$RANDSNAT_BIN" agent --host-root "$WORK/root" --once 2>&1)
    expect_eq "the agent put the jump back" "$(jump_count)" 1
    expect_contains "its line names the missing jump" "$log" "has no jump to RANDSNAT-"
    expect_absent "and does not claim it installed the chain and sets" "$log" "chain, jump and sets"
    expect "every line starts with an RFC 3339 timestamp" test "$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z ' <<< "$log")" = 0
    expect "and there are lines" test -n "$log"
    pod_del "$list" 1 >/dev/null
}
