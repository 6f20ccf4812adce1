#!/usr/bin/env bash
# d4ctl decode: frame lines, HMAC checks, malformed and truncated streams, exit statuses.
set -euo pipefail
: "${D4_BIN:?}" "${D4_TEST_DATA:?}"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
vec="$D4_TEST_DATA/vector-A.d4"
key='private key to change'
fail() { echo "FAIL: $*" >&2; exit 1; }

# the published vector: one frame, HMAC ok
out=$("$D4_BIN/d4ctl" decode --key "$key" "$vec")
[[ "$out" == *"type=1(pcap) uuid=cd980d75-dcf1-47da-bb60-aabe94fea6b2 timestamp=1629453011"*"size=4 hmac=ok"* ]] ||
	fail "vector line: $out"

# key from a file with a trailing newline, input from stdin, three frames
printf '%s\n' "$key" > "$t/key"
cat "$vec" "$vec" "$vec" > "$t/three.d4"
n=$("$D4_BIN/d4ctl" decode --key-file "$t/key" < "$t/three.d4" | grep -c 'hmac=ok')
[ "$n" = 3 ] || fail "expected 3 good frames, got $n"

# payload extraction
"$D4_BIN/d4ctl" decode --payload "$t/payload" "$t/three.d4" > /dev/null
[ "$(cat "$t/payload")" = "blahblahblah" ] || fail "payload extraction"

# JSON output parses and carries the fields
"$D4_BIN/d4ctl" decode --json --key "$key" "$vec" |
	python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); assert j["hmac"]=="ok" and j["size"]==4 and j["type"]==1, j'

# wrong key: every frame reported bad, exit 1
set +e
"$D4_BIN/d4ctl" decode --key wrong "$t/three.d4" > "$t/out"; rc=$?
set -e
[ $rc = 1 ] || fail "wrong key exit $rc"
[ "$(grep -c 'hmac=bad' "$t/out")" = 3 ] || fail "wrong key lines"

# a flipped payload bit in the second frame: one bad, the others good
cp "$t/three.d4" "$t/flip.d4"
printf 'c' | dd of="$t/flip.d4" bs=1 seek=$((66 + 62)) conv=notrunc status=none
set +e
"$D4_BIN/d4ctl" decode --key "$key" "$t/flip.d4" > "$t/out"; rc=$?
set -e
[ $rc = 1 ] || fail "flipped bit exit $rc"
grep -q 'frame=2 .*hmac=bad' "$t/out" || fail "frame 2 not reported bad"
[ "$(grep -c 'hmac=ok' "$t/out")" = 2 ] || fail "frames 1 and 3 should stay good"

# truncated stream: the good frame, then the error, exit 1
head -c 100 "$t/three.d4" > "$t/trunc.d4"
set +e
"$D4_BIN/d4ctl" decode "$t/trunc.d4" > "$t/out"; rc=$?
set -e
[ $rc = 1 ] || fail "truncated exit $rc"
grep -q 'frame=2 offset=66 error=truncated' "$t/out" || fail "truncation not reported: $(cat "$t/out")"

# malformed headers, each with its reason
check_reason() { # offset byte reason
	cp "$vec" "$t/bad.d4"
	printf "$2" | dd of="$t/bad.d4" bs=1 seek="$1" conv=notrunc status=none
	set +e
	"$D4_BIN/d4ctl" decode "$t/bad.d4" > "$t/out"; rc=$?
	set -e
	[ $rc = 1 ] || fail "$3: exit $rc"
	grep -q "error=$3" "$t/out" || fail "$3 not reported: $(cat "$t/out")"
}
check_reason 0 '\x02' bad_version
check_reason 1 '\x09' unknown_type
check_reason 8 '\x17' uuid_not_v4
set +e
"$D4_BIN/d4ctl" decode --max-payload 3 "$vec" > "$t/out"; rc=$?
set -e
[ $rc = 1 ] && grep -q 'error=payload_too_large' "$t/out" || fail "max payload"

# usage errors
set +e
"$D4_BIN/d4ctl" decode --max-payload abc "$vec" 2>/dev/null; rc=$?
"$D4_BIN/d4ctl" decode /nonexistent 2>/dev/null; rc2=$?
"$D4_BIN/d4ctl" nosuchcommand 2>/dev/null; rc3=$?
set -e
[ $rc = 2 ] && [ $rc2 = 3 ] && [ $rc3 = 2 ] || fail "usage statuses $rc $rc2 $rc3"
echo "ok"
