#!/usr/bin/env bash
# A file is cut into snaplen-sized frames: count, sizes, HMACs and the
# concatenated payload all match the input; a pipe gives frames of at most snaplen.
. "$(dirname "$0")/client_lib.sh"

head -c 10500 /dev/urandom >"$TMP/in.bin"

"$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 --snaplen 1000 \
	--source "$TMP/in.bin" -q >"$TMP/out.d4" || fail "d4-client exited $?"
frames --key "$TEST_KEY" --json --payload "$TMP/payload.bin" "$TMP/out.d4" >"$TMP/sum.json" ||
	fail "stream does not decode or an HMAC is wrong"
cmp "$TMP/in.bin" "$TMP/payload.bin" || fail "payload differs from the input"
python3 - "$TMP/sum.json" "$TEST_UUID" <<'PY' || fail "frame layout"
import json, sys, time
j = json.load(open(sys.argv[1]))
assert j["frames"] == 11, j["frames"]
assert j["sizes"] == [1000] * 10 + [500], j["sizes"]
assert set(j["types"]) == {3}, j["types"]
assert j["uuids"] == [sys.argv[2].replace("-", "")], j["uuids"]
now = time.time()
assert all(abs(t - now) < 300 for t in j["timestamps"]), "timestamps are not now"
PY
ok "file source: 11 frames (10 x 1000 + 500), HMACs, payload, type, uuid, timestamps"

# the default snaplen is 4096
"$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 -q <"$TMP/in.bin" >"$TMP/out2.d4" ||
	fail "d4-client exited $?"
frames --key "$TEST_KEY" --json "$TMP/out2.d4" >"$TMP/sum2.json" || fail "default snaplen stream"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["sizes"]==[4096,4096,2308], j["sizes"]' \
	"$TMP/sum2.json" || fail "default snaplen is not 4096"
ok "default snaplen 4096"

# through a pipe: frames are whatever each read returned, never more than snaplen
head -c 300000 /dev/urandom >"$TMP/big.bin"
cat "$TMP/big.bin" | "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 --snaplen 3000 -q \
	| cat >"$TMP/out3.d4" || fail "pipeline failed"
frames --key "$TEST_KEY" --json --payload "$TMP/payload3.bin" "$TMP/out3.d4" >"$TMP/sum3.json" ||
	fail "pipe stream does not decode"
cmp "$TMP/big.bin" "$TMP/payload3.bin" || fail "pipe payload differs"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert max(j["sizes"])<=3000 and min(j["sizes"])>0, j["sizes"]' \
	"$TMP/sum3.json" || fail "a frame is larger than snaplen"
ok "pipe source and pipe destination: 300000 bytes intact, frames <= snaplen"

# an empty input sends nothing and succeeds
"$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 -q </dev/null >"$TMP/empty.d4" ||
	fail "empty input: exit $?"
[ ! -s "$TMP/empty.d4" ] || fail "empty input produced frames"
ok "empty input"
