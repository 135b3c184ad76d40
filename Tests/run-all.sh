#!/usr/bin/env bash
# Sets up and runs every test: installs the Debian packages, builds the release binary as it ships,
# runs the unit tests (no root needed), a short fuzzing run and the integration tests (root, private namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
install/deps.sh
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release --static-swift-stdlib
swift test
Tests/fuzz/run.sh 25    # each fuzz target for 25 s; a crash or a failed oracle fails the run
Tests/integration/run.sh
