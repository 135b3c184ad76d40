# `randsnat install` against temporary host roots holding real-world primary configs.

# host_root NAME: an empty host root; prints its path.
host_root() { mkdir -p "$WORK/$1/etc/cni/net.d"; echo "$WORK/$1"; }
install_rs() { "$RANDSNAT_BIN" install "$@" 2>>"$WORK/install.log"; }
# fingerprint ROOT: every file under ROOT with its checksum and mode (what "changes no byte" compares).
fingerprint() { (cd "$1" && find . -type f -printf '%p %m\n' | sort && find . -type f -exec sha256sum {} + | sort -k2); }

BRIDGE_CONF='{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","bridge":"rsnbr0","isGateway":true,"isDefaultGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"198.18.0.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}'
FLANNEL_CONF='{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true,"ipMasq":false}},{"type":"portmap","capabilities":{"portMappings":true}}]}'
CALICO_CONF='{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico","datastore_type":"kubernetes","mtu":0,"ipam":{"type":"calico-ipam"},"policy":{"type":"k8s"},"kubernetes":{"kubeconfig":"/etc/cni/net.d/calico-kubeconfig"}},{"type":"bandwidth","capabilities":{"bandwidth":true}},{"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}'

backend_specific installer_chains_restores_and_is_idempotent iptables "the installer writes files; nothing in it depends on the backend (its one ADD uses auto, iptables on this empty node)"
test_installer_chains_restores_and_is_idempotent() {
    echo '{"nonMasqueradeCIDRs":["198.19.0.0/16"]}' > "$WORK/settings.json"
    local name conf
    for name in bridge flannel calico; do
        case $name in bridge) conf=$BRIDGE_CONF ;; flannel) conf=$FLANNEL_CONF ;; calico) conf=$CALICO_CONF ;; esac
        local root; root=$(host_root "$name")
        printf '%s\n' "$conf" > "$root/etc/cni/net.d/10-$name.conflist"
        printf 'unrelated\n' > "$root/etc/cni/net.d/calico-kubeconfig"
        local original; original=$(fingerprint "$root")
        expect "$name: install" install_rs --host-root "$root" --config "$WORK/settings.json"
        local merged="$root/etc/cni/net.d/10-$name.conflist"
        expect "$name: the merged config is valid JSON" python3 -m json.tool "$merged"
        expect_eq "$name: randsnat is chained last with the settings" \
            "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["plugins"][-1]; print(p["type"], p["nonMasqueradeCIDRs"])' "$merged")" \
            "randsnat ['198.19.0.0/16']"
        expect_eq "$name: the config is mode 0644" "$(stat -c %a "$merged")" "644"
        # randsnat accepts its merged entry, with the prevResult its primary would pass.
        python3 - "$merged" "$WORK/entry-$name.json" "$(sandbox)" "$T-$name" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
entry = conf["plugins"][-1]
entry.update({"cniVersion": conf["cniVersion"], "name": sys.argv[4], "prevResult": {"cniVersion": conf["cniVersion"],
    "interfaces": [{"name": "eth0", "sandbox": sys.argv[3]}], "ips": [{"address": "198.18.5.5/24", "interface": 0}]}})
json.dump(entry, open(sys.argv[2], "w"))
PY
        expect "$name: randsnat accepts the merged entry (ADD)" randsnat_exec ADD "$WORK/entry-$name.json" "c-$name" "$(sandbox)" eth0
        expect "$name: and DEL" randsnat_exec DEL "$WORK/entry-$name.json" "c-$name" "" eth0
        expect "$name: the binary is installed and runs" sh -c "CNI_COMMAND=VERSION $root/opt/cni/bin/randsnat | grep -q supportedVersions"
        expect "$name: --check says ready" install_rs --host-root "$root" --check
        local once; once=$(fingerprint "$root")
        expect "$name: a second run" install_rs --host-root "$root" --config "$WORK/settings.json"
        expect_eq "$name: the second run changed no byte" "$(fingerprint "$root")" "$once"
        expect "$name: uninstall" install_rs --host-root "$root" --uninstall
        expect_eq "$name: uninstall restores the original bytes and removes the binary" "$(fingerprint "$root")" "$original"
        expect "$name: --check fails after uninstall" sh -c "! $RANDSNAT_BIN install --host-root $root --check 2>/dev/null"
    done
}

backend_specific installer_edge_cases iptables "the installer writes files; nothing in it depends on the backend"
test_installer_edge_cases() {
    local root out
    # A single-plugin .conf becomes a conflist; uninstall brings the .conf back.
    root=$(host_root conf)
    printf '{"cniVersion":"0.4.0","name":"pods","type":"bridge","bridge":"rsnbr0","ipMasq":false,"ipam":{"type":"host-local","subnet":"198.18.0.0/24"}}' > "$root/etc/cni/net.d/10-pods.conf"
    local original; original=$(fingerprint "$root")
    expect ".conf: install" install_rs --host-root "$root"
    expect_eq ".conf: a conflist replaces it" "$(ls "$root/etc/cni/net.d" | tr '\n' ' ')" "10-pods.conf.randsnat-backup 10-pods.conflist "
    local once; once=$(fingerprint "$root")
    expect ".conf: second run" install_rs --host-root "$root"
    expect_eq ".conf: second run changed no byte" "$(fingerprint "$root")" "$once"
    expect ".conf: uninstall" install_rs --host-root "$root" --uninstall
    expect_eq ".conf: original restored exactly" "$(fingerprint "$root")" "$original"
    # Two files: the lexically first is the runtime's; the other is not touched.
    root=$(host_root two)
    printf '%s\n' "$BRIDGE_CONF" > "$root/etc/cni/net.d/05-first.conflist"
    printf '%s\n' "$FLANNEL_CONF" > "$root/etc/cni/net.d/10-second.conflist"
    local second; second=$(sha256sum < "$root/etc/cni/net.d/10-second.conflist")
    expect "two files: install" install_rs --host-root "$root"
    expect_contains "two files: the first is chained" "$(cat "$root/etc/cni/net.d/05-first.conflist")" '"type": "randsnat"'
    expect_eq "two files: the second is untouched" "$(sha256sum < "$root/etc/cni/net.d/10-second.conflist")" "$second"
    # None: exit 4, nothing but the binary.
    root=$(host_root none)
    install_rs --host-root "$root"; expect_eq "no config: exit status 4" "$?" "4"
    expect_eq "no config: net.d stays empty" "$(ls -A "$root/etc/cni/net.d")" ""
    # Broken: exit 3, file untouched.
    root=$(host_root broken)
    printf '{"cniVersion": "1.0.0", "plugins": [' > "$root/etc/cni/net.d/10-broken.conflist"
    original=$(fingerprint "$root/etc")
    install_rs --host-root "$root"; expect_eq "broken config: exit status 3" "$?" "3"
    expect_eq "broken config: untouched" "$(fingerprint "$root/etc")" "$original"
    expect_contains "broken config: the log says why" "$(tail -1 "$WORK/install.log")" "10-broken.conflist is not JSON"
    # Already chained by hand: randsnat is updated, not duplicated.
    root=$(host_root chained)
    printf '{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"ptp","ipMasq":false},{"type":"randsnat","masqLinkLocal":true}]}' > "$root/etc/cni/net.d/10-pods.conflist"
    expect "already chained: install" install_rs --host-root "$root"
    expect_eq "already chained: one randsnat entry" "$(grep -c '"type": "randsnat"' "$root/etc/cni/net.d/10-pods.conflist")" "1"
    # The primary masquerades: refused (exit 3, untouched) unless asked to turn it off.
    root=$(host_root masq)
    printf '{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipMasq":true}]}' > "$root/etc/cni/net.d/10-pods.conflist"
    original=$(fingerprint "$root/etc")
    install_rs --host-root "$root"; expect_eq "masquerading primary: exit status 3" "$?" "3"
    expect_eq "masquerading primary: untouched" "$(fingerprint "$root/etc")" "$original"
    expect "masquerading primary: --turn-off-primary-masquerade" install_rs --host-root "$root" --turn-off-primary-masquerade
    expect_contains "masquerading primary: ipMasq is now false" "$(cat "$root/etc/cni/net.d/10-pods.conflist")" '"ipMasq": false'
    # A crash between write and rename leaves the old config intact; the next run cleans up.
    root=$(host_root crash)
    printf '%s\n' "$BRIDGE_CONF" > "$root/etc/cni/net.d/10-pods.conflist"
    install_rs --host-root "$root"
    printf '%s\n' "${BRIDGE_CONF/rsnbr0/rsnbr1}" > "$root/etc/cni/net.d/10-pods.conflist"   # the primary rewrote it
    local before; before=$(sha256sum < "$root/etc/cni/net.d/10-pods.conflist")
    # The kernel fails the first rename and the clean-up's unlink (strace's fault injection): the
    # state a crash between write and rename leaves, reached with the binary that ships, unchanged.
    strace -f -qq -o /dev/null -e trace=rename,renameat,renameat2,unlink,unlinkat \
        -e inject=rename,renameat,renameat2:error=EIO -e inject=unlink,unlinkat:error=EIO \
        "$RANDSNAT_BIN" install --host-root "$root" 2>/dev/null
    expect_eq "crash: exit status 1" "$?" "1"
    expect_eq "crash: the runtime's config is the old one" "$(sha256sum < "$root/etc/cni/net.d/10-pods.conflist")" "$before"
    expect "crash: a temp file (a name the runtime does not load) is left" sh -c "ls -A $root/etc/cni/net.d | grep -q '^\..*\.randsnat-tmp$'"
    expect "crash: the next run succeeds" install_rs --host-root "$root"
    expect_eq "crash: and removes the temp file" "$(ls -A "$root/etc/cni/net.d" | grep -c randsnat-tmp)" "0"
}

backend_specific installer_watch_rechains_and_uninstalls_on_exit iptables "the installer writes files; nothing in it depends on the backend"
test_installer_watch_rechains_and_uninstalls_on_exit() {
    local root; root=$(host_root watch)
    printf '%s\n' "$CALICO_CONF" > "$root/etc/cni/net.d/10-calico.conflist"
    "$RANDSNAT_BIN" install --host-root "$root" --watch --uninstall-on-exit 2>>"$WORK/install.log" &
    local watcher=$!
    local i
    for i in $(seq 1 50); do grep -q randsnat "$root/etc/cni/net.d/10-calico.conflist" && break; sleep 0.1; done
    expect_contains "watch: chains at start" "$(cat "$root/etc/cni/net.d/10-calico.conflist")" '"type": "randsnat"'
    # Calico rewrites its config (without randsnat), as it does on upgrades.
    local rewritten=${CALICO_CONF/\"mtu\":0/\"mtu\":1440}
    printf '%s\n' "$rewritten" > "$root/etc/cni/net.d/.tmp" && mv "$root/etc/cni/net.d/.tmp" "$root/etc/cni/net.d/10-calico.conflist"
    for i in $(seq 1 50); do grep -q randsnat "$root/etc/cni/net.d/10-calico.conflist" && break; sleep 0.1; done
    expect_contains "watch: re-chains after the primary rewrote its config" "$(cat "$root/etc/cni/net.d/10-calico.conflist")" '"type": "randsnat"'
    expect_contains "watch: keeps the primary's change" "$(cat "$root/etc/cni/net.d/10-calico.conflist")" '"mtu": 1440'
    kill -TERM "$watcher"
    wait "$watcher"
    expect_eq "watch: exits 0 on SIGTERM" "$?" "0"
    expect_eq "watch: --uninstall-on-exit restores the primary's latest bytes" "$(cat "$root/etc/cni/net.d/10-calico.conflist")" "$rewritten"
    expect "watch: and removes the binary" test ! -e "$root/opt/cni/bin/randsnat"
}

backend_specific installer_output_drives_podman iptables "the installer's output as podman loads it (auto: iptables here); podman on both backends is podman_drives_the_chain"
test_installer_output_drives_podman() {
    # The installer's merged config, as a runtime loads it: podman (CNI backend) runs a container.
    local root; root=$(host_root pm)
    printf '%s\n' "${BRIDGE_CONF/\"name\":\"pods\"/\"name\":\"$T-im\"}" > "$root/etc/cni/net.d/10-pods.conflist"
    echo '{"nonMasqueradeCIDRs":["198.19.0.0/16"]}' > "$WORK/settings.json"
    expect "install" install_rs --host-root "$root" --config "$WORK/settings.json"
    podman_env >/dev/null
    python3 - "$root/etc/cni/net.d/10-pods.conflist" "$WORK/podman/net.d/$T-im.conflist" "$WORK/ipam" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
conf["plugins"][0]["ipam"]["dataDir"] = sys.argv[3]
json.dump(conf, open(sys.argv[2], "w"))
PY
    local before; before=$(nat_state)
    local out; out=$(podman_run "$T-im" /bin/busybox sh -c 'busybox nc -w 3 203.0.113.10 8080; busybox nc -w 3 198.19.0.10 8080' 2>&1)
    expect_eq "the container is SNATed toward ext" "$(printf '%s\n' "$out" | sed -n 1p)" "203.0.113.1"
    expect_contains "and keeps its address toward vpc" "$(printf '%s\n' "$out" | sed -n 2p)" "198.18.0."
    expect_eq "nothing is left after it exits" "$(nat_state)" "$before"
    podman_done "$T-im"
}

backend_specific manifests_and_chart_are_valid iptables "schema checks of files, no netfilter"
test_manifests_and_chart_are_valid() {
    # Strict schema validation (kubernetes-validate) and the Helm chart rendered by the test's renderer.
    local out; out=$(python3 "$HERE/manifests_check.py" 2>&1)
    local rc=$?
    printf '%s\n' "$out" | grep -E 'FAIL' | head -10
    expect_eq "manifests_check.py: $(printf '%s\n' "$out" | tail -1)" "$rc" "0"
}

backend_specific image_builds_offline_and_installs iptables "builds the image and runs its installer, no netfilter"
test_image_builds_offline_and_installs() {
    podman_env >/dev/null
    local tag="localhost/randsnat:test-$RUN"
    local out; out=$(env $(podman_env) RANDSNAT_BIN="$RANDSNAT_BIN" "$ROOT/install/image/build.sh" "$tag" 2>&1)
    expect_contains "the image builds from scratch, nothing pulled" "$out" "COMMIT $tag"
    local root; root=$(host_root image)
    printf '%s\n' "$BRIDGE_CONF" > "$root/etc/cni/net.d/10-pods.conflist"
    local original; original=$(fingerprint "$root")
    local run=(env $(podman_env) timeout 120 nsenter --net="/var/run/netns/$NODE" podman --cgroup-manager cgroupfs run --rm --network none -v "$root:/host" "$tag")
    expect "the image's installer chains randsnat" "${run[@]}" install --host-root /host
    expect_contains "the merged config chains randsnat" "$(cat "$root/etc/cni/net.d/10-pods.conflist")" '"type": "randsnat"'
    expect "the binary it copied runs on this host" sh -c "CNI_COMMAND=VERSION $root/opt/cni/bin/randsnat | grep -q supportedVersions"
    # The DaemonSet's command: randsnat-agent, installing (one pass here): it copies the per-pod randsnat
    # beside it, not itself.
    rm "$root/opt/cni/bin/randsnat"
    local agent=(env $(podman_env) timeout 120 nsenter --net="/var/run/netns/$NODE" podman --cgroup-manager cgroupfs run --rm --network none
                 --entrypoint /usr/local/bin/randsnat-agent -v "$root:/host" "$tag")
    expect "the image's randsnat-agent installs and passes once" "${agent[@]}" --install --host-root /host --resync 30 --once
    expect "what it copied is the per-pod randsnat, not the agent" cmp -s "$root/opt/cni/bin/randsnat" "$RANDSNAT_BIN"
    expect "its readiness check passes" "${run[@]}" install --host-root /host --check
    expect "its uninstall" "${run[@]}" install --host-root /host --uninstall
    expect_eq "uninstall restores the host root exactly" "$(fingerprint "$root")" "$original"
    podman_done "$T-none"
}

test_installer_refuses_under_an_earlier_snat() {
    local root; root=$(host_root aws)
    printf '%s\n' "$BRIDGE_CONF" > "$root/etc/cni/net.d/10-pods.conflist"
    printf '{%s}\n' "$(backend_key)" > "$WORK/settings.json"
    # The installer runs in the node's network namespace (hostNetwork), as the DaemonSet does.
    node_install() { in_ns "$NODE" "$RANDSNAT_BIN" install --host-root "$root" --config "$WORK/settings.json" "$@" 2>>"$WORK/install.log"; }
    plant_aws_snat
    local original; original=$(fingerprint "$root/etc")
    : > "$WORK/install.log"
    node_install; expect_eq "an AWS-like SNAT chain first: refused (exit 3)" "$?" "3"
    expect_eq "the network config is untouched" "$(fingerprint "$root/etc")" "$original"
    expect_contains "the refusal gives the setting to change" "$(cat "$WORK/install.log")" "set AWS_VPC_K8S_CNI_EXTERNALSNAT=true on the aws-node DaemonSet"
    expect_contains "and the flag that goes on anyway" "$(cat "$WORK/install.log")" "--allow-earlier-snat"
    : > "$WORK/install.log"
    expect "--allow-earlier-snat chains randsnat anyway" node_install --allow-earlier-snat
    expect_contains "randsnat is chained" "$(cat "$root/etc/cni/net.d/10-pods.conflist")" '"type": "randsnat"'
    expect_contains "with a warning" "$(cat "$WORK/install.log")" "warning: "
    remove_aws_snat
    expect "without the earlier SNAT, no flag is needed" node_install
}

# The backup keeps the original file's mode, and uninstall gives it back (fails on 5df3a31: the backup
# was written 0600 and the original restored 0644 whatever it had been).
backend_specific installer_backup_keeps_the_original_mode iptables "the installer writes files; nothing in it depends on the backend"
test_installer_backup_keeps_the_original_mode() {
    local mode
    for mode in 644 640; do
        local root; root=$(host_root "mode$mode")
        local file="$root/etc/cni/net.d/10-bridge.conflist"
        printf '%s\n' "$BRIDGE_CONF" > "$file"
        chmod "$mode" "$file"
        expect "mode $mode: install" install_rs --host-root "$root"
        expect_eq "mode $mode: the backup has the original's mode" "$(stat -c %a "$file.randsnat-backup")" "$mode"
        expect_eq "mode $mode: the chained config is 0644" "$(stat -c %a "$file")" "644"
        expect "mode $mode: uninstall" install_rs --host-root "$root" --uninstall
        expect_eq "mode $mode: the original's mode is back" "$(stat -c %a "$file")" "$mode"
        expect_eq "mode $mode: and its bytes" "$(cat "$file")" "$BRIDGE_CONF"
    done
}
