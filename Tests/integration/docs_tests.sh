# The docs held to the code: links and anchors resolve, README.md's first block names commands that
# exist and parse, every fenced block marked ```sh runnable runs, and cni-conf/README.md's key table,
# the parser's key lists and `randsnat --help` agree, each row's bad value giving the code and
# message the table says. (README.md's first block, install/demo.sh and Tests/run-all.sh, is checked
# with `bash -n`, not run: run-all.sh runs this suite, and both install packages and build.)

backend_specific docs_links_resolve iptables "it reads the docs: nothing in it depends on the backend"
test_docs_links_resolve() {
    local out; out=$(python3 "$HERE/docs_check.py" links "$ROOT"); local status=$?
    printf '%s\n' "$out" | sed 's/^/    /' >&7
    expect_eq "every relative link and anchor of the READMEs resolves" "$status" 0
}

backend_specific readme_first_block_commands_exist_and_parse iptables "it reads the docs: nothing in it depends on the backend"
test_readme_first_block_commands_exist_and_parse() {
    local out; out=$(python3 "$HERE/docs_check.py" first-block "$ROOT"); local status=$?
    printf '%s\n' "$out" | sed 's/^/    /' >&7
    expect_eq "README.md's first block: each command exists, is executable and parses" "$status" 0
    expect "and it names two commands" test "$(grep -c '^ok:' <<< "$out")" -ge 2
}

# README.md's first command, run as a newcomer runs it (the packages are there and the build is done
# by the time this suite runs, so it costs the demo itself, about a minute): it must exit 0, show each
# step's change, and leave nothing behind. Its own prefix keeps it apart from this test's bed. Seen
# failing with lib.sh's bed_down as it was: under the demo's set -e, cleanup stopped at a kill of a
# process already gone (exit 123) and left a namespace.
backend_specific readme_demo_runs iptables "the demo chooses its backends itself"
test_readme_demo_runs() {
    local prefix="${RUN}x" out status
    out=$(cd "$ROOT" && RUN=$prefix timeout 600 install/demo.sh 2>&1); status=$?
    expect_eq "install/demo.sh exits 0 (last lines: $(printf '%s' "$out" | tail -3 | tr '\n' ' '))" "$status" 0
    expect_contains "it shows what port exhaustion costs with one address" "$out" "flows changed in conntrack: insert_failed +30"
    expect_contains "and that four addresses cost nothing" "$out" "flows changed in conntrack: insert_failed +0"
    expect_contains "the agent repairs the flush" "$out" "after one agent pass, pod 2 -> ext: 203.0.113.1 "
    expect_contains "DEL leaves nothing of randsnat" "$out" "randsnat rules, sets and tables left on the node: 0"
    expect_eq "no namespace of the demo is left" "$(ip netns list | grep -c "^$prefix")" 0
}

# Each ```sh runnable block runs with bash -e in the test's node namespace, with the built binaries
# first on PATH and the test's own RANDSNAT_RUN_DIR: the blocks touch nothing but temp dirs and the
# namespace they run in.
backend_specific docs_runnable_blocks_run iptables "the blocks choose their own backend where they need one"
test_docs_runnable_blocks_run() {
    local blocks=0 where text
    while IFS=$'\t' read -r -d '' where text; do
        blocks=$((blocks + 1))
        local out status
        out=$(cd "$WORK" && in_ns "$NODE" env PATH="$(dirname "$RANDSNAT_BIN"):$PATH" RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" \
              timeout 60 bash -e -o pipefail -c "$text" 2>&1); status=$?
        if [ $status -eq 0 ]; then pass "$where: the block runs"
        else fail "$where: the block exits $status: $(printf '%s' "$out" | tail -5)"; fi
    done < <(python3 "$HERE/docs_check.py" runnable "$ROOT")
    expect "at least 3 runnable blocks ($blocks)" test "$blocks" -ge 3
}

# cni-conf/README.md's table of randsnat's keys = PluginConfig.keys = `randsnat --help`'s keys, and
# each row's bad value, given to ADD, answers with the row's code and message.
test_config_keys_doc_matches_the_parser() {
    "$RANDSNAT_BIN" --help > "$WORK/help"
    local out; out=$(python3 "$HERE/docs_check.py" keys "$ROOT" "$WORK/help"); local status=$?
    printf '%s\n' "$out" | sed 's/^/    /' >&7
    expect_eq "the key table, the parser's key lists and --help agree" "$status" 0
    local pod=$T-keyspod
    ip netns add "$pod"
    local prev='"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/'"$pod"'"}],"ips":[{"address":"198.18.0.77/24","interface":0}]}'
    local rows=0 key value code message
    while IFS=$'\t' read -r key value code message; do
        rows=$((rows + 1))
        local config='{"cniVersion":"1.0.0","name":"'"$T"'-keys","type":"randsnat"'
        [ "$key" = backend ] || [ -z "$(backend_key)" ] || config="$config,$(backend_key)"
        [ "$key" = toSource ] && [ "$value" = "17 items" ] && value=$(python3 -c 'import json; print(json.dumps(["203.0.113.%d" % i for i in range(1, 18)]))')
        printf '%s,"%s":%s,%s}' "$config" "$key" "$value" "$prev" > "$WORK/bad.json"
        local got; got=$(in_ns "$NODE" env -i PATH="$PATH" RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" CNI_COMMAND=ADD CNI_CONTAINERID="keys-$RUN" \
            CNI_NETNS="/var/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$RANDSNAT_BIN" < "$WORK/bad.json" 2>/dev/null)
        local answer; answer=$(printf '%s' "$got" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["code"], d["msg"])' 2>/dev/null)
        case $answer in
            "$code $message"*) pass "$key: $value answers as cni-conf/README.md says" ;;
            *) fail "$key: $value: cni-conf/README.md says [$code $message], the binary answers [$answer]" ;;
        esac
    done < <(python3 "$HERE/docs_check.py" bad-values "$ROOT")
    ip netns del "$pod"
    expect "a bad value for every key ($rows)" test "$rows" -ge 8
}

# Every ```json block of the docs parses, and randsnat accepts each of its entries (STATUS, which
# parses the whole config first, on the test's node).
backend_specific docs_json_blocks_are_configs_randsnat_accepts iptables "the configs choose their own backend (auto)"
test_docs_json_blocks_are_configs_randsnat_accepts() {
    local entries=0 where config
    while IFS=$'\t' read -r -d '' where config; do
        entries=$((entries + 1))
        printf '%s' "$config" > "$WORK/doc.json"
        local out; out=$(in_ns "$NODE" env -i PATH="$PATH" RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" CNI_COMMAND=STATUS CNI_PATH=/usr/lib/cni \
            "$RANDSNAT_BIN" < "$WORK/doc.json" 2>/dev/null); local status=$?
        if [ $status -eq 0 ]; then pass "$where: randsnat accepts the config"
        else fail "$where: randsnat refuses the config: $out"; fi
    done < <(python3 "$HERE/docs_check.py" json "$ROOT" 2>/dev/null)
    expect "every json block parses" python3 "$HERE/docs_check.py" json "$ROOT"
    expect "at least 3 randsnat entries ($entries)" test "$entries" -ge 3
}
