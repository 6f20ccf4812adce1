#!/usr/bin/env bash
# The analyzer protocol (docs/analyzer-protocol.md) against a fake dispatcher: handshake,
# two interleaved sessions, cumulative ACKs up to the last seq, BYE answered with exit 0; a
# seq gap, a foreign protocol version and EOF without BYE are errors. Run for the null and
# stdout analyzers and for the Python example.
. "$(dirname "$0")/client_lib.sh"

FAKE="$LIBDIR/fake_dispatcher.py"
AN_PY="${D4_SRC:-$LIBDIR/../..}/analyzers/example-python/d4-analyzer-example.py"
for a in null stdout; do
	[ -x "$D4_BIN/d4-analyzer-$a" ] || fail "no d4-analyzer-$a in $D4_BIN"
done

run_all() {
	local label="$1"
	shift
	local sc
	for sc in normal seq-gap bad-version eof; do
		timeout 60 python3 "$FAKE" --scenario "$sc" --out "$TMP/$label.$sc.out" \
			--err "$TMP/$label.$sc.err" -- "$@" >"$TMP/fake.log" ||
			{ cat "$TMP/fake.log" "$TMP/$label.$sc.err" >&2; fail "$label: scenario $sc"; }
		sed "s/^/$label $sc: /" "$TMP/fake.log"
	done
}

run_all null "$D4_BIN/d4-analyzer-null"
grep -q "sessions=2 records=45 bytes=" "$TMP/null.normal.err" || fail "null: counts"

run_all stdout "$D4_BIN/d4-analyzer-stdout"
out="$TMP/stdout.normal.out"
sed -n 's#^cd980d75/3 | ##p' "$out" | cmp - "$out.a" || fail "stdout: session A lines"
sed -n 's#^5b6f8f4e/254 | ##p' "$out" | cmp - "$out.b" || fail "stdout: session B lines"
grep -q "^cd980d75/3 START .* peer=192.0.2.146:4242 " "$out" || fail "stdout: START A peer"
grep -q "^5b6f8f4e/254 START .* peer=192.0.2.247:4343 .* meta-type=ja3-jl " "$out" ||
	fail "stdout: START B meta-type"
grep -q "^cd980d75/3 END records=[0-9]* bytes=$(stat -c %s "$out.a") reason=ok$" "$out" || fail "stdout: END A"
ok "stdout: interleaved sessions reassembled line by line"

run_all python python3 "$AN_PY"
grep -q "type=3 lines=40 " "$TMP/python.normal.out" || fail "python: session A"
grep -q "type=254 lines=30 " "$TMP/python.normal.out" || fail "python: session B"
ok "python example: counts per session"
