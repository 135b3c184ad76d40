#!/usr/bin/env bash
# Runs the integration tests as root on the real kernel, in namespaces they make.
# Usage: Tests/integration/run.sh [TEST_NAME...]
set -u
if [ "$(id -u)" != 0 ]; then echo "integration tests need root (network namespaces, netfilter)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
source "$(dirname "$0")/lib.sh"
for file in "$HERE"/*_tests.sh; do source "$file"; done
[ -x "$RANDSNAT_BIN" ] || { echo "no binary at $RANDSNAT_BIN: build it first (swift build -c release --static-swift-stdlib)"; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(declare -F | awk '{print $3}' | grep '^test_' | sed 's/^test_//')
for name in "${names[@]}"; do run_test "$name"; done
rm -rf "$TMP_BASE"
[ $failed -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
