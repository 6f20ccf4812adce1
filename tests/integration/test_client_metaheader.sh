#!/usr/bin/env bash
# Type 254: the meta header goes first as a type-2 frame, then the data as 254;
# a meta header that is not one JSON object with a string "type" is refused.
. "$(dirname "$0")/client_lib.sh"

run() { "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" -q "$@"; }

printf '{"type": "ja3-jl", "encoding": "utf-8"}\n' >"$TMP/meta.json"
head -c 5000 /dev/urandom >"$TMP/in.bin"
run --type 254 --metaheader "$TMP/meta.json" --snaplen 2048 --source "$TMP/in.bin" \
	>"$TMP/out.d4" || fail "d4-client exited $?"
frames --key "$TEST_KEY" --json --payload "$TMP/payload.bin" "$TMP/out.d4" >"$TMP/sum.json" ||
	fail "stream does not decode"
cmp "$TMP/in.bin" "$TMP/payload.bin" || fail "payload differs"
python3 - "$TMP/sum.json" <<'PY' || fail "frame layout"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["types"] == [2, 254, 254, 254], j["types"]
assert j["sizes"][1:] == [2048, 2048, 904], j["sizes"]
meta = json.loads(j["meta"][0])
assert meta == {"type": "ja3-jl", "encoding": "utf-8"}, meta
PY
ok "type 254: meta header first (type 2), then 254 frames"

# from a config directory: metaheader.json is picked up
mkdir "$TMP/conf"
echo 254 >"$TMP/conf/type"
printf '%s\n' "$TEST_KEY" >"$TMP/conf/key"
echo "$TEST_UUID" >"$TMP/conf/uuid"
printf '{"type":"maltrail"}' >"$TMP/conf/metaheader.json"
printf 'x' | "$CLIENT" -c "$TMP/conf" -q >"$TMP/out2.d4" || fail "config dir 254: exit $?"
frames --key "$TEST_KEY" --json "$TMP/out2.d4" >"$TMP/sum2.json" || fail "config dir 254 stream"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["types"]==[2,254] and j["meta"]==["{\"type\":\"maltrail\"}"], j' \
	"$TMP/sum2.json" || fail "config dir meta header"
ok "metaheader.json from the config directory"

expect_refused() {
	local what="$1" pattern="$2"
	shift 2
	local rc=0
	printf 'x' | run "$@" >"$TMP/refused.d4" 2>"$TMP/err.log" || rc=$?
	[ "$rc" -eq 2 ] || fail "$what: exit $rc, want 2"
	[ ! -s "$TMP/refused.d4" ] || fail "$what: frames were written"
	grep -q "$pattern" "$TMP/err.log" || { cat "$TMP/err.log" >&2; fail "$what: no clear error"; }
	ok "refused: $what"
}

printf '{"type": "ja3-jl"' >"$TMP/bad1.json"
expect_refused "truncated JSON" "not valid JSON" --type 254 --metaheader "$TMP/bad1.json"
printf '["type", "ja3-jl"]' >"$TMP/bad2.json"
expect_refused "JSON array" "one JSON object" --type 254 --metaheader "$TMP/bad2.json"
printf '{"kind": "ja3-jl"}' >"$TMP/bad3.json"
expect_refused "no type member" 'no \\"type\\" member' --type 254 --metaheader "$TMP/bad3.json"
printf '{"type": 3}' >"$TMP/bad4.json"
expect_refused "non-string type" "must be a non-empty string" --type 254 --metaheader "$TMP/bad4.json"
printf '{"type": "a", "type": "b"}' >"$TMP/bad5.json"
expect_refused "duplicate type" "not valid JSON" --type 254 --metaheader "$TMP/bad5.json"
expect_refused "missing file" "no such file" --type 254 --metaheader "$TMP/none.json"
expect_refused "254 without a meta header" "needs a meta header" --type 254
expect_refused "meta header with another type" "only sent with type 254" --type 1 --metaheader "$TMP/meta.json"
expect_refused "type 2 alone" "type 2 is the meta header" --type 2
head -c 100001 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
expect_refused "meta header over 100000 bytes" "larger than 100000" --type 254 --metaheader "$TMP/big.json"
