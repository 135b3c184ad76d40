#!/usr/bin/env bash
# Builds the randsnat image offline with podman from the release binary.
# Usage: install/image/build.sh [TAG]   (default localhost/randsnat:0.1.0; podman's own config applies)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-localhost/randsnat:0.1.0}
binary=${RANDSNAT_BIN:-.build/release/randsnat}
if [ ! -x "$binary" ]; then
    export PATH=/opt/swift/usr/bin:$PATH
    swift build -c release --static-swift-stdlib
fi
context=$(mktemp -d /tmp/randsnat-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
agent=${RANDSNAT_AGENT_BIN:-$(dirname "$binary")/randsnat-agent}
install -D -m 0755 "$binary" "$context/rootfs/usr/local/bin/randsnat"
# The node agent (the DaemonSet's command); its --install copies the randsnat beside it to the node.
install -D -m 0755 "$agent" "$context/rootfs/usr/local/bin/randsnat-agent"
# The shared libraries the binaries link, at the paths the dynamic loader looks for them.
for library in $(ldd "$binary" "$agent" | grep -v ':$' | grep -o '/[^ ]*' | sort -u); do
    install -D -m 0755 "$(readlink -f "$library")" "$context/rootfs$library"
done
cp install/image/Containerfile "$context/Containerfile"
podman build --network none --pull=never -f "$context/Containerfile" -t "$tag" "$context"
