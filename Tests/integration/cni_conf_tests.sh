# Every config in cni-conf/ is valid JSON and works with the real binary (on each backend): the whole chain where its
# plugins are installed here (bridge, ptp, portmap, host-local), randsnat's entry alone (with the
# prevResult a primary would pass) where they are not (flannel, Calico).

# conf_for_bed FILE: the config moved onto the test bed's addresses; prints the new path.
conf_for_bed() {
    local out="$WORK/$(basename "$1")"
    python3 - "$1" "$out" "$WORK/ipam" "${T}e0" "$T-$(basename "$1" .conflist)" "$BACKEND" <<'PY'
import json, sys
source, out, data_dir, egress, name, backend = sys.argv[1:7]
text = open(source).read().replace("10.244.1.", "198.18.0.").replace("fd00:10:244:1::", "2001:db8:18::")
conf = json.loads(text)
conf["name"] = name
for plugin in conf["plugins"]:
    if plugin.get("ipam", {}).get("type") == "host-local":
        plugin["ipam"]["dataDir"] = data_dir
    if plugin.get("egressInterface") == "eth0":
        plugin["egressInterface"] = egress
    if plugin["type"] == "randsnat" and backend == "nftables":
        plugin["backend"] = "nftables"  # the nftables pass runs every file on that backend
json.dump(conf, open(out, "w"))
PY
    echo "$out"
}

test_cni_conf_files_work() {
    local before; before=$(nat_state)
    in_ns "$NODE" ip addr add 203.0.113.2/24 dev "${T}e0"
    in_ns "$NODE" ip addr add 203.0.113.3/24 dev "${T}e0"
    local n=0 file
    for file in "$ROOT"/cni-conf/*.conflist; do
        n=$((n + 1))
        local name; name=$(basename "$file")
        expect "$name is valid JSON" python3 -m json.tool "$file"
        local conf; conf=$(conf_for_bed "$file")
        local types; types=$(python3 -c 'import json,sys; print(" ".join(p["type"] for p in json.load(open(sys.argv[1]))["plugins"]))' "$conf")
        local missing=0 type
        for type in $types; do [ -x "/usr/lib/cni/$type" ] || [ "$type" = randsnat ] || missing=1; done
        if [ $missing = 0 ]; then
            local result; result=$(pod_add "$conf" "$n")
            expect_contains "$name: the whole chain ADDs" "$result" '"ips"'
            local seen; seen=$(ask "$n" 203.0.113.10)
            case $name in
                to-source*) expect_contains "$name: ext sees a toSource address" "203.0.113.2 203.0.113.3" "$seen" ;;
                *) expect_eq "$name: ext sees the node" "$seen" "203.0.113.1" ;;
            esac
            expect "$name: CHECK" pod_check "$conf" "$n"
            expect "$name: DEL" pod_del "$conf" "$n"
        else
            # The primary is not installed here: randsnat's entry with the prevResult it would pass.
            local entry="$WORK/entry-$n.json" pod; pod=$(sandbox)
            python3 - "$conf" "$entry" "$pod" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
entry = [p for p in conf["plugins"] if p["type"] == "randsnat"][0]
entry.update({"cniVersion": conf["cniVersion"], "name": conf["name"], "prevResult": {"cniVersion": conf["cniVersion"],
    "interfaces": [{"name": "eth0", "sandbox": sys.argv[3]}], "ips": [{"address": "198.18.7.7/24", "interface": 0}]}})
json.dump(entry, open(sys.argv[2], "w"))
PY
            expect "$name: randsnat's entry ADDs" randsnat_exec ADD "$entry" "c$n" "$pod" eth0
            expect "$name: CHECK" randsnat_exec CHECK "$entry" "c$n" "$pod" eth0
            expect "$name: DEL" randsnat_exec DEL "$entry" "c$n" "" eth0
        fi
    done
    expect "all 9 configs were tried ($n)" test "$n" -ge 9
    expect_eq "nothing is left in the nat tables and sets" "$(nat_state)" "$before"
}
