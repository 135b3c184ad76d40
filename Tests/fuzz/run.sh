#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer (swiftc -sanitize=fuzzer) and runs each for a time budget.
#
#   Tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]    default: 60 s, every target
#   Tests/fuzz/run.sh 0 [TARGET...]                       runs the committed seeds once, no fuzzing
#
# Targets (one file each here; the oracles are described at the top of each file):
#   json         JSON text → JSONValue → text, against a byte-level reference reader (ReferenceJSON.swift)
#   environment  environ entries, CNI_ARGS, CNI_PATH, CNI_COMMAND and Environment.parse, against byte splits
#   address      IPAddress, CIDR, PodAddress, AddressRange, PortRange, against inet_pton and byte splits
#   config       a network config through ADD, CHECK, DEL and GC on the unit tests' fake backends
#
# Why not SwiftPM: libFuzzer needs every module built with -sanitize=fuzzer and a target without a
# main (libFuzzer brings it), which `swift build` would also try to build for `swift test`. So this
# script compiles Sources/CNI and Sources/RandSNATCore itself with swiftc into static libraries under
# .build/fuzz (with -enable-testing, so the fakes of Tests/RandSNATCoreTests/Fakes.swift compile), then
# links each target; Package.swift does not know about it. No Foundation anywhere, as in the binary.
#
# Seeds are in Tests/fuzz/corpus/<target>/ (read only; json and config also use json.dict); what the fuzzer finds goes to
# .build/fuzz/work/<target>/, and a failing input to .build/fuzz/crash-<target>-*. Replay one with
# `.build/fuzz/<target> FILE`. Exits non-zero when a target fails an oracle or crashes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(json environment address config)
out=.build/fuzz
mkdir -p "$out/work"
flags=(-sanitize=fuzzer -parse-as-library -O -enable-testing -I "$out" -L "$out")

library() {  # NAME SOURCES...
    local name=$1
    shift
    swiftc "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
        -emit-library -static -o "$out/lib$name.a" "$@"
}

echo "fuzz: building CNI and RandSNATCore" >&2
library CNI Sources/CNI/*.swift
library RandSNATCore $(find Sources/RandSNATCore -name '*.swift' | sort) -lCNI

build() {  # TARGET
    local fuzz=Tests/fuzz
    case $1 in
        json) swiftc "${flags[@]}" -o "$out/json" $fuzz/Oracle.swift $fuzz/ReferenceJSON.swift $fuzz/json.swift -lCNI ;;
        environment) swiftc "${flags[@]}" -o "$out/environment" $fuzz/Oracle.swift $fuzz/environment.swift -lCNI ;;
        address) swiftc "${flags[@]}" -o "$out/address" $fuzz/Oracle.swift $fuzz/address.swift -lRandSNATCore -lCNI ;;
        config) swiftc "${flags[@]}" -o "$out/config" $fuzz/Oracle.swift $fuzz/ReferenceJSON.swift $fuzz/config.swift \
            Tests/RandSNATCoreTests/Fakes.swift -lRandSNATCore -lCNI ;;
        *) echo "fuzz: unknown target '$1' (json, environment, address, config)" >&2; return 2 ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    echo "fuzz: building $target" >&2
    build "$target"
    mkdir -p "$out/work/$target"
    if [[ $seconds == 0 ]]; then
        run=(-runs=0)
    else
        run=(-max_total_time="$seconds")
    fi
    echo "fuzz: running $target (${seconds}s)" >&2
    case $target in json | config) run+=(-dict=Tests/fuzz/json.dict) ;; esac
    if ! "$out/$target" "${run[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$out/crash-$target-" "$out/work/$target" "Tests/fuzz/corpus/$target" 2> "$out/$target.log"; then
        grep -E "oracle violated|Fatal error|ERROR: libFuzzer|Test unit written" "$out/$target.log" >&2 || tail -20 "$out/$target.log" >&2
        failed+=("$target")
    else
        grep -E "^stat::number_of_executed_units|^Done" "$out/$target.log" | sed "s/^/fuzz: $target: /" >&2 || true
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]} (logs: $out/<target>.log)" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no failure" >&2
