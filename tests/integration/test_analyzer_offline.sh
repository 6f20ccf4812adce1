#!/usr/bin/env bash
# Analyzers run by hand on saved D4 streams (offline mode of common/d4_analyzer.h and of the
# Python example): lines that span frames come out whole, a 254 session carries its meta
# header, pcap records are reassembled across frames, and a bad stream is a clear error.
. "$(dirname "$0")/client_lib.sh"

AN_STDOUT="$D4_BIN/d4-analyzer-stdout"
AN_NULL="$D4_BIN/d4-analyzer-null"
AN_PY="${D4_SRC:-$LIBDIR/../..}/analyzers/example-python/d4-analyzer-example.py"
[ -x "$AN_STDOUT" ] || fail "no d4-analyzer-stdout in $D4_BIN"
[ -x "$AN_NULL" ] || fail "no d4-analyzer-null in $D4_BIN"
[ -f "$AN_PY" ] || fail "no $AN_PY"
TAG=cd980d75

mk() { "$CLIENT" --destination stdout --fixed-timestamp 1700000000 --uuid "$TEST_UUID" \
	--key "$TEST_KEY" -q "$@"; }
# text lines of session TAG/TYPE printed by the stdout analyzer
lines_of() { sed -n "s#^$1 | ##p" "$2"; }

# --- type 3, snaplen 100: lines span frames -------------------------------------------------
python3 - "$TMP/in.txt" <<'PY'
import sys
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(200):
        f.write("%04d %s\tutf-8 é ü %s\n" % (i, "x" * (i % 230), "end"))
PY
mk --type 3 --snaplen 100 --source "$TMP/in.txt" >"$TMP/t3.d4" || fail "d4-client type 3"
"$AN_STDOUT" --key "$TEST_KEY" <"$TMP/t3.d4" >"$TMP/out3.txt" || fail "stdout analyzer: exit $?"
lines_of "$TAG/3" "$TMP/out3.txt" | cmp - "$TMP/in.txt" || fail "type 3: printed lines differ"
[ "$(grep -c "^$TAG/3 START uuid=$TEST_UUID type=3 (log) peer=- time=1700000000" "$TMP/out3.txt")" = 1 ] ||
	fail "type 3: START line"
size=$(stat -c %s "$TMP/in.txt")
nframes=$(((size + 99) / 100))
grep -q "^$TAG/3 END records=$nframes bytes=$size reason=ok\$" "$TMP/out3.txt" || fail "type 3: END line"
ok "stdout: type 3 at snaplen 100 prints exactly the file's lines ($nframes frames)"

"$AN_NULL" <"$TMP/t3.d4" 2>"$TMP/null.err" || fail "null analyzer: exit $?"
grep -q "sessions=1 records=$nframes bytes=$size" "$TMP/null.err" || { cat "$TMP/null.err"; fail "null counts"; }
ok "null: counts sessions, records and bytes"

python3 "$AN_PY" <"$TMP/t3.d4" >"$TMP/py3.txt" || fail "python example: exit $?"
grep -q "^cd980d75dcf147dabb60aabe94fea6b2 type=3 lines=200 " "$TMP/py3.txt" || { cat "$TMP/py3.txt"; fail "python lines"; }
ok "python example: counts the lines of a type 3 session"

# --- control bytes, CRLF, a last line without newline ----------------------------------------
printf 'a\033[31mred\001\r\nplain\r\ntail' >"$TMP/ctl.txt"
mk --type 3 --snaplen 5 --source "$TMP/ctl.txt" | "$AN_STDOUT" >"$TMP/outc.txt" || fail "ctl: exit $?"
printf '%s\n' 'a\x1b[31mred\x01' 'plain' 'tail' | cmp - <(lines_of "$TAG/3" "$TMP/outc.txt") ||
	{ cat "$TMP/outc.txt"; fail "control bytes / CRLF"; }
grep -q "^$TAG/3 ! no newline at the end of the session" "$TMP/outc.txt" || fail "unterminated line note"
ok "stdout: control bytes escaped, CRLF stripped, last line without newline flagged"

# --- type 254 with a meta header ---------------------------------------------------------------
printf '{"type": "ja3-jl", "encoding": "utf-8"}\n' >"$TMP/meta.json"
python3 -c '
import json
for i in range(50):
    print(json.dumps({"ja3": "%032x" % (i * 7919), "n": i}))' >"$TMP/jl.txt"
mk --type 254 --metaheader "$TMP/meta.json" --snaplen 64 --source "$TMP/jl.txt" >"$TMP/t254.d4" ||
	fail "d4-client type 254"
"$AN_STDOUT" <"$TMP/t254.d4" >"$TMP/out254.txt" || fail "254: exit $?"
grep -q "^$TAG/254 START .* meta-type=ja3-jl meta={\"type\": \"ja3-jl\", \"encoding\": \"utf-8\"}" "$TMP/out254.txt" ||
	{ head -1 "$TMP/out254.txt"; fail "254: START without the meta header"; }
lines_of "$TAG/254" "$TMP/out254.txt" | cmp - "$TMP/jl.txt" || fail "254: printed lines differ"
[ "$(grep -c START "$TMP/out254.txt")" = 1 ] || fail "254: type 2 then 254 must be one session"
python3 "$AN_PY" <"$TMP/t254.d4" | grep -q " type=254 lines=50 " || fail "python: 254 lines"
ok "type 254: one session, START carries meta-type and meta header, lines whole"

# --- type 1: a tiny pcap cut in 50-byte frames --------------------------------------------------
python3 - "$TMP/tiny.pcap" <<'PY'
import struct, sys
out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
for i, n in enumerate((60, 1000, 14)):
    out += struct.pack("<IIII", 1700000001 + i, 2 + i, n, n + 4) + bytes((i + k) & 255 for k in range(n))
open(sys.argv[1], "wb").write(out)
PY
mk --type 1 --snaplen 50 --source "$TMP/tiny.pcap" >"$TMP/t1.d4" || fail "d4-client type 1"
"$AN_STDOUT" <"$TMP/t1.d4" >"$TMP/out1.txt" || fail "pcap: exit $?"
grep "^$TAG/1 pcap" "$TMP/out1.txt" >"$TMP/pcaplines.txt"
cat >"$TMP/pcapwant.txt" <<EOT
$TAG/1 pcap v2.4 linktype=1 snaplen=65535 usec
$TAG/1 pcap 1700000001.000002 caplen=60 len=64
$TAG/1 pcap 1700000002.000003 caplen=1000 len=1004
$TAG/1 pcap 1700000003.000004 caplen=14 len=18
EOT
cmp "$TMP/pcaplines.txt" "$TMP/pcapwant.txt" || { cat "$TMP/out1.txt"; fail "pcap records"; }
"$AN_STDOUT" -x <"$TMP/t1.d4" >"$TMP/out1x.txt" || fail "pcap -x: exit $?"
nhex=$(grep -c "^$TAG/1 [0-9a-f]\{8\}  " "$TMP/out1x.txt")
[ "$nhex" = $((4 + 63 + 1)) ] || fail "pcap -x: $nhex hex lines"
grep -q "^$TAG/1 000003e0  e1 e2 e3 e4 e5 e6 e7 e8  *|........|$" "$TMP/out1x.txt" ||
	fail "pcap -x: hex dump of the second record"
ok "stdout: pcap records whole across 50-byte frames; -x dumps them"

# --- a binary type as a hex dump, offsets continuing across frames -------------------------
printf 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd' >"$TMP/bin.dat"
mk --type 4 --snaplen 32 --source "$TMP/bin.dat" | "$AN_STDOUT" >"$TMP/out4.txt" || fail "type 4: exit $?"
grep -q "^$TAG/4 00000020  36 37 38 39 61 62 63 64  *|6789abcd|$" "$TMP/out4.txt" ||
	{ cat "$TMP/out4.txt"; fail "type 4 hex dump"; }
ok "stdout: binary types as a hex dump with stream offsets"

# --- several sensors and sessions in one file -------------------------------------------------
"$CLIENT" --destination stdout --fixed-timestamp 1700000000 --uuid 5b6f8f4e-0a3c-4d2e-9f1a-2b3c4d5e6f70 \
	--key "$TEST_KEY" -q --type 3 --source "$TMP/ctl.txt" >"$TMP/other.d4" || fail "d4-client uuid B"
cat "$TMP/t3.d4" "$TMP/other.d4" "$TMP/t254.d4" "$TMP/t3.d4" >"$TMP/all.d4"
"$AN_NULL" <"$TMP/all.d4" 2>"$TMP/null.err" || fail "null on all: exit $?"
grep -q "sessions=4 " "$TMP/null.err" || { cat "$TMP/null.err"; fail "4 sessions"; }
"$AN_STDOUT" <"$TMP/all.d4" | grep -c ' START ' | grep -qx 4 || fail "stdout: 4 sessions"
[ "$(python3 "$AN_PY" <"$TMP/all.d4" | wc -l)" = 4 ] || fail "python: 4 sessions"
ok "a change of uuid or type ends a session (2 -> 254 does not)"

# --- bad input -----------------------------------------------------------------------------------
expect_error() {
	local what="$1" pattern="$2" file="$3"
	shift 3
	local rc=0
	"$@" <"$file" >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
	[ "$rc" -ne 0 ] || fail "$what: exit 0"
	grep -q "$pattern" "$TMP/bad.err" || { cat "$TMP/bad.err"; fail "$what: no clear error"; }
	ok "$what: exit $rc, '$pattern'"
}
expect_error "wrong HMAC key" "hmac_mismatch" "$TMP/t3.d4" "$AN_STDOUT" --key wrong
head -c 1000 "$TMP/t3.d4" >"$TMP/cut.d4"
expect_error "stream cut inside a frame" "ends inside a frame" "$TMP/cut.d4" "$AN_STDOUT"
grep -q "^$TAG/3 END .* reason=truncated" "$TMP/bad.out" || fail "cut stream: END reason"
expect_error "python: stream cut inside a frame" "ends inside" "$TMP/cut.d4" python3 "$AN_PY"
printf 'GET / HTTP/1.0\r\n' >"$TMP/garbage"
expect_error "neither D4 nor the protocol" "neither" "$TMP/garbage" "$AN_NULL"
expect_error "python: neither D4 nor the protocol" "neither" "$TMP/garbage" python3 "$AN_PY"
expect_error "unknown option" "unknown option" "$TMP/t3.d4" "$AN_NULL" --bogus
: >"$TMP/empty"
"$AN_STDOUT" <"$TMP/empty" >/dev/null || fail "empty input: exit $?"
ok "empty input: nothing to do, exit 0"
