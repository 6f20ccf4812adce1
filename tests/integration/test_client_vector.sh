#!/usr/bin/env bash
# d4-client reproduces vector-A (D4-project/d4-rustclient's published packet) byte
# for byte on its stdout destination: uuid, key, type 1, timestamp 1629453011, "blah".
. "$(dirname "$0")/client_lib.sh"

vector="${D4_TEST_DATA:-$D4_SRC/tests/data}/vector-A.d4"
[ -f "$vector" ] || skip "tests/data/vector-A.d4 is missing"

printf 'blah' | "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 \
	--fixed-timestamp 1629453011 -q >"$TMP/out.d4" || fail "d4-client exited $?"
cmp "$vector" "$TMP/out.d4" || fail "output differs from vector-A"
ok "vector-A reproduced from tests/data"

if [ -f "${D4_SHARED_VECTORS:-/nonexistent}/d4/vector-A.d4" ]; then
	cmp "$D4_SHARED_VECTORS/d4/vector-A.d4" "$TMP/out.d4" || fail "differs from shared vector-A"
	ok "identical to the shared vector-A"
fi

# the same through a config directory written the way the reference clients ship it
mkdir "$TMP/conf"
echo "$TEST_UUID" >"$TMP/conf/uuid"
echo "$TEST_KEY" >"$TMP/conf/key"
echo 1 >"$TMP/conf/type"
echo 1 >"$TMP/conf/version"
echo 4096 >"$TMP/conf/snaplen"
echo stdin >"$TMP/conf/source"
echo stdout >"$TMP/conf/destination"
chmod 600 "$TMP/conf/key"
printf 'blah' | "$CLIENT" -c "$TMP/conf" --fixed-timestamp 1629453011 -q >"$TMP/out2.d4" ||
	fail "d4-client -c exited $?"
cmp "$vector" "$TMP/out2.d4" || fail "config-dir output differs from vector-A"
ok "vector-A reproduced from a config directory (key file with trailing newline)"

# --eof-frame appends one zero-length frame, like the C reference's end marker
printf 'blah' | "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 --eof-frame -q \
	--fixed-timestamp 1629453011 >"$TMP/out3.d4" || fail "d4-client --eof-frame exited $?"
frames --key "$TEST_KEY" --json "$TMP/out3.d4" >"$TMP/eof.json" || fail "bad stream with --eof-frame"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["sizes"]==[4,0], j' "$TMP/eof.json" ||
	fail "--eof-frame did not add a zero-length frame"
ok "--eof-frame"
