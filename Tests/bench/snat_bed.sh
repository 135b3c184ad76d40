# Shared by race.sh and paws.sh (sourced after Tests/integration/lib.sh and bed_up): a test bed whose
# pods have the bridge alone, so that each variant of a benchmark can add its own SNAT.

# bridge_only_pods LIST PODS: cut the conflist LIST down to its bridge, then add pods 1..PODS.
bridge_only_pods() {
    python3 - "$1" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
conf["plugins"] = conf["plugins"][:1]   # the bridge alone: each variant adds its own SNAT
json.dump(conf, open(sys.argv[1], "w"))
PY
    local n
    for n in $(seq 1 "$2"); do pod_add "$1" "$n" >/dev/null; done
}

# randsnat_after_bridge VERB NETWORK EXTRA_JSON PODS: randsnat VERB for pods 1..PODS, chained after
# the bridge (prevResult from libcni's cache entry, as cni.py writes it), with the config's extra keys.
randsnat_after_bridge() {
    local n
    for n in $(seq 1 "$4"); do
        python3 - "$CNI_CACHE_DIR/$T-pods-c$n-$RUN-eth0" "$WORK/rs-$n.json" "$2" "$3" <<'PY'
import json, sys
prev = json.load(open(sys.argv[1]))["result"]
conf = {"cniVersion": "1.0.0", "name": sys.argv[3], "type": "randsnat", "prevResult": prev}
conf.update(json.loads(sys.argv[4]))
json.dump(conf, open(sys.argv[2], "w"))
PY
        randsnat_exec "$1" "$WORK/rs-$n.json" "c$n" "/var/run/netns/$T-pod$n" eth0 >/dev/null
    done
}
