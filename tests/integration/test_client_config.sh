#!/usr/bin/env bash
# The reference clients' config directory: a missing uuid is generated (v4) and
# written back (mode 0600) and reused; flags override every file; bad values are
# refused with the file named.
. "$(dirname "$0")/client_lib.sh"

conf="$TMP/conf"
mkdir "$conf"
printf '%s\n' "$TEST_KEY" >"$conf/key"
chmod 600 "$conf/key"
echo 1 >"$conf/type"
echo 1 >"$conf/version"
echo 1000 >"$conf/snaplen"
echo stdin >"$conf/source"
echo stdout >"$conf/destination"

# 1. uuid generated and written back
printf 'abc' | "$CLIENT" -c "$conf" -q >"$TMP/out1.d4" 2>"$TMP/err1.log" || fail "first run: exit $?"
[ -f "$conf/uuid" ] || fail "no uuid file written"
uuid="$(cat "$conf/uuid")"
[[ "$uuid" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
	fail "written uuid is not a v4 uuid: $uuid"
[ "$(stat -c %a "$conf/uuid")" = 600 ] || fail "uuid file mode is $(stat -c %a "$conf/uuid")"
frames --key "$TEST_KEY" --json "$TMP/out1.d4" >"$TMP/s1.json" || fail "first stream"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["uuids"]==[sys.argv[2].replace("-","")], j' \
	"$TMP/s1.json" "$uuid" || fail "frames do not carry the generated uuid"
ok "uuid generated, written back (0600) and used: $uuid"

printf 'abc' | "$CLIENT" -c "$conf" -q >"$TMP/out2.d4" || fail "second run: exit $?"
[ "$(cat "$conf/uuid")" = "$uuid" ] || fail "uuid changed on the second run"
frames --key "$TEST_KEY" --json "$TMP/out2.d4" >"$TMP/s2.json" || fail "second stream"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["uuids"]==[sys.argv[2].replace("-","")], j' \
	"$TMP/s2.json" "$uuid" || fail "second run does not reuse the uuid"
ok "uuid reused on the next run"

# an empty uuid file (the Go client creates empty files) counts as missing
: >"$conf/uuid"
printf 'abc' | "$CLIENT" -c "$conf" -q >/dev/null || fail "empty uuid file: exit $?"
[ -s "$conf/uuid" ] && [ "$(cat "$conf/uuid")" != "$uuid" ] || fail "empty uuid file not regenerated"
ok "empty uuid file regenerated"

# 2. flags override the files
head -c 2500 /dev/urandom >"$TMP/in.bin"
printf 'other key\n' >"$TMP/other.key"
chmod 600 "$TMP/other.key"
"$CLIENT" -c "$conf" --uuid "$TEST_UUID" --key-file "$TMP/other.key" --type 8 --snaplen 700 \
	--source "$TMP/in.bin" --destination stdout -q >"$TMP/out3.d4" || fail "override run: exit $?"
frames --key "other key" --json --payload "$TMP/p3.bin" "$TMP/out3.d4" >"$TMP/s3.json" ||
	fail "override stream does not verify with the --key-file key"
cmp "$TMP/in.bin" "$TMP/p3.bin" || fail "--source not used"
python3 - "$TMP/s3.json" "$TEST_UUID" <<'PY' || fail "flags did not override"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["uuids"] == [sys.argv[2].replace("-", "")], j["uuids"]
assert set(j["types"]) == {8}, j["types"]
assert j["sizes"] == [700, 700, 700, 400], j["sizes"]
PY
[ "$(cat "$conf/uuid")" != "$TEST_UUID" ] || fail "--uuid was written to the config directory"
printf 'abc' | "$CLIENT" -c "$conf" --key "inline key" -q >"$TMP/out4.d4" || fail "--key: exit $?"
frames --key "inline key" "$TMP/out4.d4" >/dev/null || fail "--key not used"
ok "flags override uuid, key, key-file, type, snaplen, source, destination"

# 3. source and destination files are honoured
cp "$TMP/in.bin" "$TMP/src.bin"
echo "$TMP/src.bin" >"$conf/source"
echo "$TEST_UUID" >"$conf/uuid"
"$CLIENT" -c "$conf" -q </dev/null >"$TMP/out5.d4" || fail "file source from config: exit $?"
frames --key "$TEST_KEY" --payload "$TMP/p5.bin" "$TMP/out5.d4" >/dev/null || fail "stream 5"
cmp "$TMP/in.bin" "$TMP/p5.bin" || fail "source file from the config directory not read"
echo stdin >"$conf/source"
ok "source file path from the config directory"

# 4. bad values are refused and name their origin
expect_refused() {
	local what="$1" pattern="$2"
	shift 2
	local rc=0
	printf 'x' | "$CLIENT" "$@" >"$TMP/refused.d4" 2>"$TMP/err.log" || rc=$?
	[ "$rc" -eq 2 ] || fail "$what: exit $rc, want 2"
	[ ! -s "$TMP/refused.d4" ] || fail "$what: frames were written"
	grep -q -- "$pattern" "$TMP/err.log" || { cat "$TMP/err.log" >&2; fail "$what: no clear error"; }
	ok "refused: $what"
}
echo 2 >"$conf/version"
expect_refused "version 2" "only D4 protocol version 1" -c "$conf"
echo 1 >"$conf/version"
echo 0 >"$conf/snaplen"
expect_refused "snaplen 0" "$conf/snaplen" -c "$conf"
echo 1000 >"$conf/snaplen"
echo not-a-uuid >"$conf/uuid"
expect_refused "bad uuid" "not a UUID" -c "$conf"
echo 6ba7b810-9dad-11d1-80b4-00c04fd430c8 >"$conf/uuid"
expect_refused "v1 uuid" "not a version 4 UUID" -c "$conf"
echo "$TEST_UUID" >"$conf/uuid"
expect_refused "bad snaplen flag" "--snaplen" -c "$conf" --snaplen 2000000
expect_refused "bad destination" "host:port" -c "$conf" --destination nowhere
expect_refused "bad IPv6 destination" "\[addr\]:port" -c "$conf" --destination "[::1:4443"
expect_refused "no key" "no HMAC key" --type 1
expect_refused "no type" "no type" --key k
expect_refused "missing config dir" "not a directory" -c "$TMP/nope"
expect_refused "unknown flag" "" --frobnicate
expect_refused "d4server source" "not supported" -c "$conf" --source d4server

# 5. a uuid is needed without a config directory: an ephemeral one, with a warning
printf 'x' | "$CLIENT" --key k --type 1 >/dev/null 2>"$TMP/eph.log" || fail "flags only: exit $?"
grep -q uuid_ephemeral "$TMP/eph.log" || fail "no warning for an ephemeral uuid"
ok "flags only: ephemeral uuid with a warning"

# 6. stdout on a terminal is refused (binary frames on a tty help nobody)
if command -v script >/dev/null 2>&1; then
	rc=0
	script -qec "printf x | $CLIENT --key k --type 1 -q" /dev/null >"$TMP/tty.log" 2>&1 || rc=$?
	grep -q "stdout is a terminal" "$TMP/tty.log" || fail "stdout on a tty not refused (rc=$rc)"
	ok "stdout on a terminal refused"
fi
