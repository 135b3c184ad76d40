# A member belongs to one attachment, the one its owner comment names (issue 19, item 5): randsnat's
# entry run alone, as a runtime runs it, with the addresses the tests choose in prevResult.

# entry_conf ADDRESS: randsnat's entry of network $T-n with a prevResult giving the sandbox's eth0
# ADDRESS; prints its path.
entry_conf() {
    local file="$WORK/entry-$RANDOM.json" extra sb; extra=$(with_backend "") sb=$(sandbox)
    printf '{"cniVersion":"1.0.0","name":"%s","type":"randsnat"%s,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"address":"%s","interface":0}]}}' \
        "$T-n" "${extra:+,$extra}" "$sb" "$1" > "$file"
    echo "$file"
}
# entry ADD|DEL CONTAINER ADDRESS: the entry's verb for container CONTAINER; a failure fails the test.
entry() {
    local out; out=$(randsnat_exec "$1" "$(entry_conf "$3")" "$2-$RUN" "$(sandbox)" eth0 2>&1) || setup_failed "$1 of $2 ($3) failed: $out"
}

# ADD of the same container again with another address (a runtime's retry) replaces its member.
# Fails on 5df3a31: the first address's member stays (DEL then removes only the second's).
test_an_add_again_with_another_address_leaks_nothing() {
    entry ADD c1 198.18.0.50/24
    local set; set=$(member_set)
    expect_eq "the first ADD's member is c1's" "$(has_member "$set" 198.18.0.50)" "$T-n/c1-$RUN/eth0"
    entry ADD c1 198.18.0.51/24
    expect_eq "the second ADD's member is c1's" "$(has_member "$set" 198.18.0.51)" "$T-n/c1-$RUN/eth0"
    expect "the first address's member is gone" must_fail has_member "$set" 198.18.0.50
    expect_eq "c1 holds one member" "$(member_count)" 1
    entry DEL c1 198.18.0.51/24
    expect_absent "DEL leaves nothing of randsnat" "$(nat_state)" "RANDSNAT"
}

# Two containers given the same address (a runtime's retry after an IPAM release, before the first
# one's DEL): the second takes the member over, and the first one's DEL leaves it. Fails on 5df3a31:
# the first DEL removes the second pod's member.
test_an_address_given_again_stays_with_its_last_owner() {
    entry ADD c1 198.18.0.60/24
    entry ADD c2 198.18.0.60/24
    local set; set=$(member_set)
    expect_eq "the second ADD took the member over" "$(has_member "$set" 198.18.0.60)" "$T-n/c2-$RUN/eth0"
    entry DEL c1 198.18.0.60/24
    expect_eq "c1's DEL left c2's member" "$(has_member "$set" 198.18.0.60)" "$T-n/c2-$RUN/eth0"
    local check; check=$(randsnat_exec CHECK "$(entry_conf 198.18.0.60/24)" "c2-$RUN" "$(sandbox)" eth0 2>&1; echo "exit $?")
    expect_contains "CHECK passes for c2" "$check" "exit 0"
    entry DEL c2 198.18.0.60/24
    expect_absent "the last DEL leaves nothing of randsnat" "$(nat_state)" "RANDSNAT"
}
