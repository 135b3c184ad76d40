#!/usr/bin/env bash
# Runs the integration tests as root on the real kernel, in namespaces they make.
# Usage: Tests/integration/run.sh [TEST_NAME...]
set -u
if [ "$(id -u)" != 0 ]; then echo "integration tests need root (network namespaces, netfilter)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
source "$(dirname "$0")/lib.sh"
for file in "$HERE"/*_tests.sh; do source "$file"; done
[ -x "$RANDSNAT_BIN" ] || { echo "no binary at $RANDSNAT_BIN: build it first (swift build -c release --static-swift-stdlib)"; exit 1; }
# The tests whose assertions hold for both backends; with no names given they run a second time
# with RANDSNAT_TEST_BACKEND=nftables (the configs then say "backend":"nftables").
both_backends=(
    snat_and_bypass_ipv4 snat_ipv6 to_source_and_port_range del_is_idempotent_and_leaves_no_trace
    check_names_what_is_missing gc_and_status versions config_change_makes_a_new_generation del_forgets_the_pods_flows
    standalone_dual_stack standalone_ipv6_only_and_link_options standalone_del_is_idempotent
    standalone_failed_add_leaves_nothing standalone_result_has_the_reference_bridge_shape
    bad_inputs_are_refused_and_change_nothing podman_with_randsnat_alone lock_timeout_is_code_11_and_changes_nothing
    doctor_sees_port_pressure doctor_sees_insert_failed_rising concurrent_adds_and_dels_with_a_foreign_writer podman_drives_the_chain
    cni_conf_files_work del_forgets_the_pods_flows_by_dump_and_delete long_network_names_keep_their_pods
    metrics_endpoint_is_scraped_by_prometheus metrics_port_usage_toward_one_destination metrics_insert_failed_rising
)
names=("$@")
if [ ${#names[@]} -gt 0 ]; then
    for name in "${names[@]}"; do run_test "$name"; done
else
    mapfile -t names < <(declare -F | awk '{print $3}' | grep '^test_' | sed 's/^test_//')
    for name in "${names[@]}"; do run_test "$name"; done
    BACKEND=nftables
    for name in "${both_backends[@]}"; do run_test "$name"; done
fi
rm -rf "$TMP_BASE"
[ $failed -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
