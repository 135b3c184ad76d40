#!/usr/bin/env bash
# The Debian 12 packages randsnat's build, tests, demo and benchmark need (run as root).
# On a node, randsnat itself needs only: libc6, libip4tc2, libip6tc2, libstdc++6, libgcc-s1.
set -euo pipefail
packages=(
    libiptc-dev libxtables-dev          # build: libiptc/libip6tc and the xtables headers
    nftables                            # tests: nft list ruleset, a foreign nft writer
    iptables ipset conntrack iproute2   # tests: iptables-legacy-save, ipset save, conntrack -L, ip netns
    containernetworking-plugins         # tests and benchmark: the reference bridge, host-local, portmap
    podman runc busybox-static          # the real-runtime test
    util-linux python3 hyperfine        # nsenter, flock; test helpers; the benchmark
    strace                              # tests: a failed rename injected into the installer (strace -e inject)
    prometheus curl binutils            # metrics tests (binutils: nm): a real Prometheus server and promtool (its service cannot start here; tests run their own)
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The manifest test validates against the Kubernetes API schemas shipped in kubernetes-validate.
python3 -c 'import kubernetes_validate, yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate pyyaml
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
    echo "no Swift toolchain: install Swift 6.x (this machine has it at /opt/swift)" >&2
    exit 1
fi
