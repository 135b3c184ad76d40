# A real runtime drives the chain: Debian's podman with its CNI backend, inside the node namespace.

# podman_env: containers.conf and storage.conf in the test's work dir; prints the env assignments.
podman_env() {
    local dir=$WORK/podman
    mkdir -p "$dir/net.d" "$dir/root" "$dir/runroot" "$dir/tmp" "$dir/rootfs/bin"
    cat > "$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024","nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$(dirname "$RANDSNAT_BIN")", "/usr/lib/cni"]
network_config_dir = "$dir/net.d"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
lock_type = "file"
tmp_dir = "$dir/tmp"
static_dir = "$dir/root/libpod"
volume_path = "$dir/root/volumes"
CONF
    cat > "$dir/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$dir/root"
runroot = "$dir/runroot"
CONF
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    [ ! -e /run/randsnat/nftables.lock ] || [ -e "$dir/ran" ] || touch "$dir/had-nftables-lock"
    touch "$dir/ran"
    echo "CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf"
}

# podman_done NETWORK: removes podman's state, and the lock file randsnat made in the host's
# /run/randsnat (podman runs plugins with an environment of its own, without RANDSNAT_RUN_DIR).
podman_done() {
    env $(podman_env) podman --cgroup-manager cgroupfs system reset --force >/dev/null 2>&1 || true
    rm -f "/run/randsnat/$(printf 'randsnat/%s' "$1" | sha256sum | cut -c1-11).lock"
    # The nftables backend's table lock, unless it was there before the test (podman_env notes that).
    [ -e "$WORK/podman/had-nftables-lock" ] || rm -f /run/randsnat/nftables.lock
    rmdir /run/randsnat 2>/dev/null || true
}

# podman_run NETWORK COMMAND...: one container on NETWORK, run from the node namespace.
podman_run() {
    local network=$1; shift
    env $(podman_env) timeout 120 nsenter --net="/var/run/netns/$NODE" \
        podman --cgroup-manager cgroupfs run --rm --network "$network" --rootfs "$WORK/podman/rootfs" "$@"
}

test_podman_drives_the_chain() {
    local list; list=$(conflist "$T-pm" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    podman_env >/dev/null
    cp "$list" "$WORK/podman/net.d/$T-pm.conflist"
    local before; before=$(nat_state)
    local out
    out=$(podman_run "$T-pm" /bin/busybox sh -c 'busybox nc -w 3 203.0.113.10 8080; busybox nc -w 3 198.19.0.10 8080' 2>&1)
    expect_eq "the container reaches ext through SNAT (ext sees the node)" "$(printf '%s\n' "$out" | sed -n 1p)" "203.0.113.1"
    expect_contains "the container reaches vpc with its own address" "$(printf '%s\n' "$out" | sed -n 2p)" "198.18.0."
    out=$(podman_run "$T-pm" /bin/busybox sh -c 'cat /proc/net/if_inet6 >/dev/null; busybox nc -w 3 203.0.113.10 8080' 2>&1)
    expect_eq "a second container too" "$out" "203.0.113.1"
    expect_eq "nothing of the containers is left in the nat tables and sets" "$(nat_state)" "$before"
    podman_done "$T-pm"
}

test_podman_with_randsnat_alone() {
    local list; list=$(standalone "$T-pa" '"nonMasqueradeCIDRs":["198.19.0.0/16"]')
    podman_env >/dev/null
    cp "$list" "$WORK/podman/net.d/$T-pa.conflist"
    local before; before=$(nat_state)
    local out
    out=$(podman_run "$T-pa" /bin/busybox sh -c 'busybox nc -w 3 203.0.113.10 8080; busybox nc -w 3 198.19.0.10 8080; busybox nc -w 3 2001:db8:ee::10 8080' 2>&1)
    expect_eq "the container reaches ext through SNAT" "$(printf '%s\n' "$out" | sed -n 1p)" "203.0.113.1"
    expect_contains "the container reaches vpc with its own address" "$(printf '%s\n' "$out" | sed -n 2p)" "198.18.0."
    expect_eq "IPv6 works at once in the container" "$(printf '%s\n' "$out" | sed -n 3p)" "2001:db8:ee::1"
    expect_eq "nothing of the container is left in the nat tables and sets" "$(nat_state)" "$before"
    expect_eq "no veth is left" "$(in_ns "$NODE" ip -o link show type veth | grep -c veth)" "0"
    expect_eq "the lease is released" "$(ls "$WORK/ipam/$T-pa" | grep -c '^198\|^2001')" "0"
    podman_done "$T-pa"
}
