#!/usr/bin/env bash
# Runs the integration tests as root on the real kernel, in namespaces they make.
# Usage: [RANDSNAT_TEST_BACKEND=iptables|nftables] Tests/integration/run.sh [TEST_NAME...]
# Every test runs on both backends unless it declares itself backend-specific (see lib.sh's header).
set -u
# Not root: nothing can run, and a run in which nothing ran does not pass.
if [ "$(id -u)" != 0 ]; then echo "integration tests need root (network namespaces, netfilter): run as root"; echo "integration: 0 passed, 1 failed"; exit 1; fi
source "$(dirname "$0")/lib.sh"
trap 'rm -rf "$TMP_BASE"' EXIT
for file in "$HERE"/*_tests.sh; do source "$file"; done
[ -x "$RANDSNAT_BIN" ] || { echo "no binary at $RANDSNAT_BIN: build it first (swift build -c release --static-swift-stdlib)"; exit 1; }

for name in "${!rs_only_on[@]}"; do
    declare -F "test_$name" >/dev/null || rs_declaration_errors+=("backend_specific $name: there is no function test_$name")
done
if [ ${#rs_declaration_errors[@]} -gt 0 ]; then
    printf '%s\n' "${rs_declaration_errors[@]}"
    echo "fix these declarations (lib.sh's header says how to write one); no test was run"
    echo "integration: 0 passed, ${#rs_declaration_errors[@]} failed"
    exit 1
fi

case ${RANDSNAT_TEST_BACKEND-} in
    "") backends=(iptables nftables) ;;
    iptables|nftables) backends=("$RANDSNAT_TEST_BACKEND") ;;
    *) echo "RANDSNAT_TEST_BACKEND=$RANDSNAT_TEST_BACKEND: use iptables or nftables (or leave it unset for both)"
       echo "integration: 0 passed, 1 failed"; exit 1 ;;
esac

names=("$@")
given=${#names[@]}
if [ "$given" -eq 0 ]; then mapfile -t names < <(declare -F | awk '{print $3}' | grep '^test_' | sed 's/^test_//'); fi
known=()
for name in "${names[@]}"; do
    if declare -F "test_$name" >/dev/null; then known+=("$name")
    else failed=$((failed + 1)); failed_names+=("$name"); echo "--- $name: FAILED (there is no test of that name)"; fi
done

not_run=()
for BACKEND in "${backends[@]}"; do
    for name in ${known[@]+"${known[@]}"}; do
        if runs_on "$name" "$BACKEND"; then run_test "$name"
        elif [ "$given" -gt 0 ] && [ -n "${RANDSNAT_TEST_BACKEND-}" ]; then
            # Asked for by name on a backend it does not run on: it cannot pass there.
            failed=$((failed + 1)); failed_names+=("$name [$BACKEND]")
            echo "--- $name [$BACKEND]: FAILED (declared ${rs_only_on[$name]}-only: ${rs_only_reason[$name]})"
        else not_run+=("$name [$BACKEND]"); fi
    done
done
[ ${#not_run[@]} -eq 0 ] || echo "not run (backend-specific, see their declarations): ${not_run[*]}"
[ $failed -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
