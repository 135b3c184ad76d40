# Broken inputs: each gets the right CNI error code and a message that names the fault, and none
# changes the node's nat tables or sets.

# NAME | VERB | ENV (k=v,... ; k= empties it, k=- unsets it) | STDIN (P = a good prevResult) | CODE | WORDS
BAD_INPUTS='
not json|ADD||{|6|not valid JSON
empty stdin|ADD|||6|not valid JSON
json array|ADD||[1,2]|6|must be a JSON object
ten megabytes|ADD||@BIG|6|larger than
no cniVersion|ADD||{"name":"N","type":"randsnat",P}|7|cniVersion
unknown cniVersion|ADD||{"cniVersion":"9.9.9","name":"N","type":"randsnat",P}|1|9.9.9
cniVersion number|ADD||{"cniVersion":1.0,"name":"N","type":"randsnat",P}|6|cniVersion
cniVersion 0.2.0|ADD||{"cniVersion":"0.2.0","name":"N","type":"randsnat",P}|1|0.2.0
no name|ADD||{"cniVersion":"1.0.0","type":"randsnat",P}|7|name
name with a space|ADD||{"cniVersion":"1.0.0","name":"a b","type":"randsnat",P}|7|network name
type number|ADD||{"cniVersion":"1.0.0","name":"N","type":7,P}|6|type
nonMasqueradeCIDRs string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","nonMasqueradeCIDRs":"10.0.0.0/8",P}|6|nonMasqueradeCIDRs
nonMasqueradeCIDRs number item|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","nonMasqueradeCIDRs":[10],P}|6|nonMasqueradeCIDRs[0]
prefix 33|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","nonMasqueradeCIDRs":["10.0.0.0/33"],P}|7|10.0.0.0/33
octet 300|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","nonMasqueradeCIDRs":["10.0.0.0/8","300.0.0.0/8"],P}|7|nonMasqueradeCIDRs[1]
IPv6 prefix 129|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","nonMasqueradeCIDRs":["fd00::/129"],P}|7|fd00::/129
masqLinkLocal string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","masqLinkLocal":"yes",P}|6|masqLinkLocal
toSource number|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","toSource":5,P}|6|toSource
toSource not an address|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","toSource":["gateway"],P}|7|toSource[0]
toSource backwards range|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","toSource":["203.0.113.9-203.0.113.1"],P}|7|toSource[0]
portRange too high|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","portRange":"1-70000",P}|7|portRange
portRange number|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","portRange":80,P}|6|portRange
egressInterface with a space|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","egressInterface":"eth 0",P}|7|egressInterface
lockTimeoutSeconds negative|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","lockTimeoutSeconds":-1,P}|7|lockTimeoutSeconds
podTCPTimestamps 3|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","podTCPTimestamps":3,P}|7|podTCPTimestamps
podTCPTimestamps string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","podTCPTimestamps":"2",P}|7|podTCPTimestamps
ipMasq string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipMasq":"true",P}|6|ipMasq
no prevResult|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat"}|7|no prevResult
prevResult string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","prevResult":"garbage"}|6|prevResult
prevResult ips object|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","prevResult":{"ips":{}}}|6|prevResult.ips
prevResult address without prefix|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","prevResult":{"ips":[{"address":"198.18.0.2"}]}}|7|prevResult.ips[0].address
prevResult interface out of range|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","prevResult":{"interfaces":[],"ips":[{"address":"198.18.0.2/24","interface":4}]}}|7|interface
prevResult ip4 style|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","prevResult":{"ip4":{"ip":"198.18.0.2/24"}}}|1|0.2.0
runtimeConfig array|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","runtimeConfig":[],P}|6|runtimeConfig
no CNI_CONTAINERID|ADD|CNI_CONTAINERID=-|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_CONTAINERID
no CNI_NETNS|ADD|CNI_NETNS=|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_NETNS
no CNI_IFNAME|ADD|CNI_IFNAME=-|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_IFNAME
no CNI_PATH|ADD|CNI_PATH=-|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_PATH
no CNI_COMMAND|ADD|CNI_COMMAND=-|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_COMMAND
unknown CNI_COMMAND|ADD|CNI_COMMAND=ATTACH|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|ATTACH
netns that does not exist|ADD|CNI_NETNS=/var/run/netns/does-not-exist|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|does-not-exist
netns that is the node namespace|ADD|CNI_NETNS=/var/run/netns/@NODE|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|8|own network namespace
DEL with the node namespace as netns|DEL|CNI_NETNS=/var/run/netns/@NODE|{"cniVersion":"1.0.0","name":"N","type":"randsnat"}|8|own network namespace
interface name too long|ADD|CNI_IFNAME=abcdefghijklmnopq|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_IFNAME
container id with a slash|ADD|CNI_CONTAINERID=a/b|{"cniVersion":"1.0.0","name":"N","type":"randsnat",P}|4|CNI_CONTAINERID
DEL without CNI_CONTAINERID|DEL|CNI_CONTAINERID=-|{"cniVersion":"1.0.0","name":"N","type":"randsnat"}|4|CNI_CONTAINERID
CHECK at 0.3.1|CHECK||{"cniVersion":"0.3.1","name":"N","type":"randsnat",P}|1|0.4.0
CHECK without prevResult|CHECK||{"cniVersion":"1.0.0","name":"N","type":"randsnat"}|7|prevResult
GC at 1.0.0|GC||{"cniVersion":"1.0.0","name":"N","type":"randsnat"}|1|1.1.0
GC attachments not a list|GC||{"cniVersion":"1.1.0","name":"N","type":"randsnat","cni.dev/valid-attachments":{}}|6|valid-attachments
standalone ipam not an object|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipam":"host-local"}|6|ipam
standalone ipam without type|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipam":{"subnet":"198.18.0.0/24"}}|7|ipam.type
standalone ipam type is a path|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipam":{"type":"../bin/sh"}}|7|ipam.type
standalone ipam plugin missing|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipam":{"type":"no-such-ipam"}}|999|not found in CNI_PATH
standalone vlan|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","vlan":5,"ipam":{"type":"host-local"}}|2|vlan: 5 is not supported
standalone vlan string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","vlan":"5","ipam":{"type":"host-local"}}|6|vlan
standalone vlanTrunk|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","vlanTrunk":[{"id":5}],"ipam":{"type":"host-local"}}|2|vlanTrunk: [{"id":5}] is not supported
standalone enabledad|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","enabledad":true,"ipam":{"type":"host-local"}}|2|enabledad: true is not supported
standalone macspoofchk|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","macspoofchk":true,"ipam":{"type":"host-local"}}|2|macspoofchk: true is not supported
standalone ipMasqBackend against backend|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipMasqBackend":"nftables","backend":"iptables","ipam":{"type":"host-local"}}|7|conflicts with "backend": "iptables"
standalone ipMasqBackend auto|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipMasqBackend":"auto","ipam":{"type":"host-local"}}|7|ipMasqBackend
standalone hairpinMode with promiscMode|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","hairpinMode":true,"promiscMode":true,"ipam":{"type":"host-local"}}|7|promiscMode
standalone MAC malformed|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","runtimeConfig":{"mac":"02:42:c6:12:00"},"ipam":{"type":"host-local"}}|7|runtimeConfig.mac
standalone MAC multicast in CNI_ARGS|ADD|CNI_ARGS=MAC=01:00:5e:00:00:01|{"cniVersion":"1.0.0","name":"N","type":"randsnat","ipam":{"type":"host-local"}}|7|CNI_ARGS MAC
standalone dns not an object|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","dns":["10.96.0.10"],"ipam":{"type":"host-local"}}|6|dns
standalone mtu string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","mtu":"1500","ipam":{"type":"host-local"}}|6|mtu
standalone mtu too small|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","mtu":10,"ipam":{"type":"host-local"}}|7|mtu
standalone bridge name with a space|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","bridge":"br 0","ipam":{"type":"host-local"}}|7|bridge
standalone isGateway string|ADD||{"cniVersion":"1.0.0","name":"N","type":"randsnat","isGateway":"yes","ipam":{"type":"host-local"}}|6|isGateway
STATUS bad config key type|STATUS||{"cniVersion":"1.1.0","name":"N","type":"randsnat","toSource":{}}|6|toSource
'

test_bad_inputs_are_refused_and_change_nothing() {
    local list; list=$(conflist "$T-n")
    pod_add "$list" 1 >/dev/null   # a resident pod: the node has randsnat state that must stay as it is
    local before; before=$(nat_state)
    local links; links=$(in_ns "$NODE" ip -o link show | cut -d: -f2)
    # The pod namespace the rows name (the node namespace itself is refused: rows of their own).
    local pod=$T-badpod
    ip netns add "$pod"
    local prev='"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/'"$pod"'"}],"ips":[{"address":"198.18.0.77/24","interface":0}]}'
    python3 -c 'import sys; sys.stdout.write("{\"x\":\"" + "a" * (10 << 20) + "\"}")' > "$WORK/big.json"
    local rows=0 name verb envs stdin code words
    while IFS='|' read -r name verb envs stdin code words; do
        [ -n "$name" ] || continue
        rows=$((rows + 1))
        local input="$WORK/bad.json"
        if [ "$stdin" = "@BIG" ]; then input="$WORK/big.json"; else
            stdin=${stdin//\"name\":\"N\"/\"name\":\"$T-n\"}
            # The nftables pass: the same rows with the backend named (it changes no row's answer).
            [ "$BACKEND" = iptables ] || stdin=${stdin//\"type\":\"randsnat\"/\"type\":\"randsnat\",$(backend_key)}
            printf '%s' "${stdin//,P\}/,$prev\}}" > "$input"
        fi
        local -A env=([CNI_COMMAND]="$verb" [CNI_CONTAINERID]="bad-$RUN" [CNI_NETNS]="/var/run/netns/$pod" [CNI_IFNAME]=eth0 [CNI_PATH]=/usr/lib/cni)
        local item
        IFS=',' read -ra items <<< "${envs//@NODE/$NODE}"
        for item in "${items[@]}"; do
            if [ "${item#*=}" = "-" ]; then unset "env[${item%%=*}]"; else env[${item%%=*}]=${item#*=}; fi
        done
        local -a vars=()
        for item in "${!env[@]}"; do vars+=("$item=${env[$item]}"); done
        local out
        out=$(in_ns "$NODE" env -i PATH="$PATH" RANDSNAT_RUN_DIR="$RANDSNAT_RUN_DIR" "${vars[@]}" "$RANDSNAT_BIN" < "$input" 2>/dev/null)
        local rc=$?
        local got; got=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["code"]); print(d["msg"] + " " + d.get("details",""))' 2>/dev/null)
        if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$got" | head -1)" = "$code" ] && printf '%s' "$got" | tail -1 | grep -qF -- "$words"; then
            pass "$name: code $code, names \"$words\""
        else
            fail "$name: want code $code with \"$words\", exit $rc, got: $(printf '%s' "$out" | head -c 300)"
        fi
    done <<< "$BAD_INPUTS"
    expect "at least 30 rows ($rows)" test "$rows" -ge 30
    expect_eq "the nat tables and sets are unchanged" "$(nat_state)" "$before"
    expect_eq "no link was made or removed" "$(in_ns "$NODE" ip -o link show | cut -d: -f2)" "$links"
    pod_del "$list" 1 >/dev/null
}
