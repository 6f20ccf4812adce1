#!/usr/bin/env bash
# d4ctl's store commands on a fresh data directory: sensor register (each key
# option) / list / show / approve / reject / delete / set-key / set / block /
# unblock / kick / block-ip, the blocklists (a CIDR stays one entry, host bits
# set is refused with its reason), accepted types, stats, exit statuses, and
# that no key given by the operator is ever printed.
set -euo pipefail
: "${D4_BIN:?}" "${D4_TEST_DATA:?}"
CTL="$D4_BIN/d4ctl"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
dir="$t/data"
mkdir "$dir"

fail() {
	echo "FAIL: $*" >&2
	echo "--- stdout" >&2
	cat "$t/out" >&2 2>/dev/null || true
	echo "--- stderr" >&2
	cat "$t/err" >&2 2>/dev/null || true
	exit 1
}
# run ARGS...: d4ctl on the test store; stdout in $t/out, stderr in $t/err, status in $rc
run() {
	set +e
	"$CTL" --set "d4.data_dir=$dir" "$@" >"$t/out" 2>"$t/err"
	rc=$?
	set -e
}
expect() { # expect STATUS WHAT
	[ "$rc" = "$1" ] || fail "$2: exit $rc, expected $1"
}
out_has() { grep -qF -- "$1" "$t/out" || fail "stdout lacks '$1' ($2)"; }
err_has() { grep -qF -- "$1" "$t/err" || fail "stderr lacks '$1' ($2)"; }
nowhere() { # the secret appears in neither output
	if grep -qF -- "$1" "$t/out" "$t/err"; then fail "a key was printed ($2)"; fi
}
pyjson() { # pyjson 'python expression on j' WHAT
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert ($1), j" "$t/out" ||
		fail "JSON check: $2"
}

U1=3b7a2f1e-4c5d-4e6f-8a9b-0c1d2e3f4a5b
U2=8d1c6a0e-2f3b-4a5c-9d6e-7f8091a2b3c4
U3=c0ffee00-1234-4abc-8def-0123456789ab
K1='k3y-one-SECRET-value'

# ---- before any store exists: read commands say so (exit 3), decode needs none
run sensor list
expect 3 "read command on a missing store"
err_has "no store at $dir/store" "missing store message"
run types list
expect 3 "types list on a missing store"
run --json decode --key 'private key to change' "$D4_TEST_DATA/vector-A.d4"
expect 0 "decode without a store"
python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); assert j["hmac"]=="ok", j' <"$t/out" ||
	fail "decode --json (global) output"

# ---- register with each key option
run sensor register "$U1" --key "$K1" --description "hp one" --mail soc@example.org
expect 0 "register --key"
out_has "registered sensor $U1 (pending)" "register output"
err_has "created a new store" "first write creates the store"
nowhere "$K1" "register --key"

printf 'file-key-XYZ\n' >"$t/keyfile"
run sensor register "$U2" --key-file "$t/keyfile"
expect 0 "register --key-file"
nowhere "file-key-XYZ" "register --key-file"

run sensor register "$U3" --generate-key --approve
expect 0 "register --generate-key"
genkey=$(sed -n 's/^key: \([0-9a-f]\{64\}\)$/\1/p' "$t/out")
[ -n "$genkey" ] || fail "generated key not shown once as 64 hex digits"
out_has "(approved)" "--approve"

# refusals
run sensor register "$U1" --key other
expect 1 "duplicate register"
err_has "already registered" "duplicate message"
run sensor register not-a-uuid --key x
expect 2 "invalid uuid"
err_has "'not-a-uuid' is not a UUID" "invalid uuid message"
run sensor register 3b7a2f1e-4c5d-1e6f-8a9b-0c1d2e3f4a5b --key x
expect 2 "non-v4 uuid"
err_has "not a version 4 UUID" "non-v4 message"
run sensor register c0ffee00-1234-4abc-8def-0123456789ac
expect 2 "register without a key option"
err_has "--generate-key" "missing key message"
run sensor register c0ffee00-1234-4abc-8def-0123456789ac --key a --generate-key
expect 2 "two key options"

# ---- list and show, text and JSON
run sensor list
expect 0 "sensor list"
[ "$(grep -c -- '-4' "$t/out")" = 3 ] || fail "list should have 3 sensor lines"
grep -q "^$U1  pending .*hp one" "$t/out" || fail "list line of U1"
run sensor list --status approved
expect 0 "list --status"
grep -q "$U3" "$t/out" && ! grep -q "$U1" "$t/out" || fail "--status approved filter"
run sensor list --status bogus
expect 2 "list --status bogus"
run --json sensor list
expect 0 "sensor list --json"
pyjson 'len(j)==3 and {s["uuid"]: s["state"] for s in j}["'"$U3"'"]=="approved" and all(s["packets"]==0 and s["last_seen"] is None for s in j)' "list JSON"

run sensor show "$U1"
expect 0 "sensor show"
out_has "state:           pending" "show state"
out_has "key:             set (${#K1} bytes)" "show key length"
out_has "description:     hp one" "show description"
out_has "mail:            soc@example.org" "show mail"
out_has "blocked:         no" "show blocked"
nowhere "$K1" "sensor show"
run sensor show "$U2"
out_has "key:             set (12 bytes)" "key file: trailing newline not part of the key"
run --json sensor show "$U3"
expect 0 "sensor show --json"
pyjson 'j["registration"]["state"]=="approved" and j["registration"]["key"]=={"set":True,"bytes":64} and j["statistics"] is None and j["blocked"] is None' "show JSON"
nowhere "$genkey" "show of a generated key"
run sensor show c0ffee00-1234-4abc-8def-0123456789ac
expect 1 "show of an unknown sensor"
err_has "no sensor c0ffee00-1234-4abc-8def-0123456789ac is registered" "unknown sensor message"

# ---- states
run sensor approve "$U1"
expect 0 "approve"
run sensor show "$U1"
out_has "state:           approved" "approved"
run sensor reject "$U1"
expect 0 "reject"
run --json sensor show "$U1"
pyjson 'j["registration"]["state"]=="rejected"' "rejected"
run sensor approve "$U1"
expect 0 "approve after reject"
run sensor approve c0ffee00-1234-4abc-8def-0123456789ac
expect 1 "approve an unknown sensor"

run sensor delete "$U2"
expect 0 "delete"
run sensor show "$U2"
expect 1 "show after delete"
run sensor delete "$U2"
expect 1 "delete twice"

# ---- set-key never prints a given key
run sensor set-key "$U1" --key 'N3W-secret-key-000'
expect 0 "set-key --key"
nowhere 'N3W-secret-key-000' "set-key --key"
run sensor show "$U1"
out_has "key:             set (18 bytes)" "set-key length"
printf 'from-file-key\r\n' >"$t/keyfile2"
run sensor set-key "$U1" --key-file "$t/keyfile2"
expect 0 "set-key --key-file"
nowhere 'from-file-key' "set-key --key-file"
run sensor show "$U1"
out_has "key:             set (13 bytes)" "set-key from a CRLF file"
run sensor set-key "$U1" --generate-key
expect 0 "set-key --generate-key"
grep -Eq '^key: [0-9a-f]{64}$' "$t/out" || fail "set-key --generate-key shows the new key"
run sensor set-key "$U2" --key x
expect 1 "set-key of a deleted sensor"

# ---- set
run sensor set "$U1" --max-payload 64k --rate-limit 1M --groups dns,tls --cert-pin \
	"$(printf 'AB:%.0s' $(seq 31))AB" --description "hp one bis"
expect 0 "sensor set"
run sensor show "$U1"
out_has "max payload:     65536 bytes" "max payload set"
out_has "rate limit:      1048576 bytes/s" "rate limit set"
out_has "groups:          dns,tls" "groups set"
out_has "cert pin:        sha256 abababab" "cert pin set"
out_has "description:     hp one bis" "description set"
run sensor set "$U1" --cert-pin none --groups ''
run sensor show "$U1"
out_has "cert pin:        none" "cert pin cleared"
out_has "groups:          none" "groups cleared"
run sensor set "$U1" --groups 'a b'
expect 2 "group name with a space"
run sensor set "$U1" --cert-pin abc
expect 2 "short cert pin"
err_has "--cert-pin" "cert pin message"
run sensor set "$U1"
expect 2 "set without anything"

# ---- block, unblock, kick, block-ip
run sensor block "$U1" --for 2h --comment noisy
expect 0 "sensor block"
run sensor show "$U1"
out_has "blocked:         yes, until" "show blocked"
run --json block list
pyjson '[e["kind"] for e in j]==["uuid"] and j[0]["entry"]=="'"$U1"'" and j[0]["state"]=="temporary" and j[0]["comment"]=="noisy"' "uuid block listed"
run sensor block "$U1" --for 10x
expect 2 "bad duration"
err_has "not a duration" "bad duration message"
run sensor block c0ffee00-1234-4abc-8def-0123456789ac
expect 1 "block an unregistered sensor"
run sensor unblock "$U1"
expect 0 "unblock"
run sensor show "$U1"
out_has "blocked:         no" "unblocked"
run sensor unblock "$U1"
expect 1 "unblock twice"
err_has "is not blocked" "unblock twice message"

run sensor kick "$U1"
expect 0 "kick"
out_has "within a second" "kick message"
run sensor show "$U1"
out_has "kick requested:" "kick pending in show"
run sensor kick c0ffee00-1234-4abc-8def-0123456789ac
expect 1 "kick an unknown sensor"

run sensor block-ip "$U1"
expect 1 "block-ip without a known address"
err_has "no address is known" "block-ip message"

# ---- IP blocklist: a CIDR is one entry, never expanded
run block ip add 10.0.0.0/8 --comment "lab net"
expect 0 "block ip add CIDR"
run block list
expect 0 "block list"
[ "$(grep -c '^ip ' "$t/out")" = 1 ] || fail "block list should hold exactly one ip entry"
grep -q '^ip    10\.0\.0\.0/8 .*permanent  lab net$' "$t/out" || fail "ip entry shown as 10.0.0.0/8"
run --json block list
pyjson '[e["entry"] for e in j if e["kind"]=="ip"]==["10.0.0.0/8"] and [e for e in j if e["kind"]=="ip"][0]["expires"] is None' "JSON ip entry"
run block ip add 10.0.0.1/8
expect 2 "host bits set"
err_has "host bits set" "host bits reason"
run block ip add 10.0.0.9-10.0.0.5
expect 2 "range start after end"
err_has "range start after end" "range reason"
run block ip add 2001:db8::/32 --for 1d
expect 0 "block ip add v6"
run --json block list
pyjson 'sorted(e["entry"] for e in j if e["kind"]=="ip")==["10.0.0.0/8","2001:db8::/32"]' "two ip entries"
run block ip del 10.0.0.0/8
expect 0 "block ip del"
run block ip del 10.0.0.0/8
expect 1 "block ip del twice"
err_has "no entry for 10.0.0.0/8" "del twice message"
run block uuid add c0ffee00-1234-4abc-8def-0123456789ac --comment scanner
expect 0 "block uuid add"
run block uuid del c0ffee00-1234-4abc-8def-0123456789ac
expect 0 "block uuid del"
run block uuid del c0ffee00-1234-4abc-8def-0123456789ac
expect 1 "block uuid del twice"
run block purge
expect 0 "block purge"
out_has "removed 0 expired entries" "purge count"

# ---- accepted types
run types list
expect 0 "types list"
out_has "ingest.accepted_types" "empty store: the configuration's set is named"
out_has "ingest.accepted_meta_types" "empty store: the configuration's meta set is named"
run --json --set 'ingest.accepted_types=1 3' types list
pyjson 'j["types"]["source"]=="configuration" and [t["type"] for t in j["types"]["accepted"]]==[1,3]' "configuration's types"
run types accept pcapng 7
expect 0 "types accept"
out_has "copied the configuration's" "first change seeds the defaults"
run --json types list
pyjson 'j["types"]["source"]=="store" and [t["type"] for t in j["types"]["accepted"]]==[1,2,3,4,5,7,8,254]' "accepted set after accept"
run types refuse 5
expect 0 "types refuse"
run --json types list
pyjson '5 not in [t["type"] for t in j["types"]["accepted"]] and 7 in [t["type"] for t in j["types"]["accepted"]]' "refused type gone"
run types refuse 9
expect 2 "refuse an undefined type"
err_has "not a type the protocol defines" "type 9 message"
run types accept 0
expect 2 "accept type 0"
run types refuse 1 2 3 4 7 8 254
expect 1 "refusing every type"
err_has "no accepted type" "refuse-all message"
run --json types list
pyjson 'len(j["types"]["accepted"])==7' "refuse-all wrote nothing"
run types meta accept my-meta
expect 0 "meta accept"
run --json types list
pyjson 'j["meta_types"]["source"]=="store" and "my-meta" in j["meta_types"]["accepted"] and "ja3-jl" in j["meta_types"]["accepted"]' "meta accepted"
run types meta refuse my-meta
expect 0 "meta refuse"
run --json types list
pyjson '"my-meta" not in j["meta_types"]["accepted"]' "meta refused"
run types meta accept 'bad name'
expect 2 "meta name with a space"

# ---- stats on a store with no traffic
run stats
expect 0 "stats"
out_has "0 sensors, 0 packets, 0 bytes" "empty stats totals"
run --json stats --day 2024-02-29 --uuid "$U1"
expect 0 "stats --json --day"
pyjson 'j["day"]=="2024-02-29" and j["rows"]==[] and j["total"]["packets"]==0' "stats JSON"
run stats --day 2023-02-29
expect 2 "stats on a day that does not exist"

# ---- usage
run sensor --help
expect 0 "sensor --help"
out_has "register UUID" "sensor help"
run block --help
expect 0 "block --help"
run types --help
expect 0 "types --help"
run stats --help
expect 0 "stats --help"
run sensor frobnicate
expect 2 "unknown subcommand"
run sensor list --json
expect 2 "--json after the command"
err_has "global option" "--json hint"

echo "ok: d4ctl sensor, block, types, stats"
