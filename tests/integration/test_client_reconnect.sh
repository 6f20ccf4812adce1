#!/usr/bin/env bash
# Reconnection: (A) the server is not there when the client starts: data read
# meanwhile is buffered and arrives whole once it is; (B) the server dies in the
# middle of the stream and comes back: the client reconnects, opens the new
# session with the meta header again (type 254), never splits a frame, and exits
# 0 at the end of the input after flushing.
. "$(dirname "$0")/client_lib.sh"

command -v socat >/dev/null 2>&1 || skip "socat is missing"
make_cert srv localhost "DNS:localhost,IP:127.0.0.1"

# --- A: no listener yet ---
port="$(free_port)"
mkfifo "$TMP/fifo"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 --snaplen 512 \
	--source "$TMP/fifo" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" \
	--retry-max 500ms 2>"$TMP/clientA.log" &
cpid=$!
PIDS+=("$cpid")
feed "$TMP/fifo" 150 10 "$TMP/inA.txt" &
PIDS+=($!)
sleep 1
grep -q connect_failed "$TMP/clientA.log" || fail "the client did not try (and fail) to connect first"
start_tls_listener "$port" "$TMP/outA.d4" srv
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/clientA.log" >&2; fail "A: client exit $rc, want 0"; }
wait "$LISTENER_PID" || true
frames --key "$TEST_KEY" --payload "$TMP/payA.txt" "$TMP/outA.d4" >/dev/null ||
	fail "A: received stream does not decode whole"
cmp "$TMP/inA.txt" "$TMP/payA.txt" || fail "A: received data differs from the input"
ok "A: started without a server; all $(wc -c <"$TMP/inA.txt") bytes arrived whole after it came up"

# --- B: the server dies mid-stream and comes back (type 254) ---
printf '{"type":"d4-telemetry"}' >"$TMP/meta.json"
port="$(free_port)"
start_tls_listener "$port" "$TMP/outB1.d4" srv
l1=$LISTENER_PID
mkfifo "$TMP/fifoB"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 254 --metaheader "$TMP/meta.json" \
	--snaplen 700 --source "$TMP/fifoB" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" \
	--retry-max 500ms 2>"$TMP/clientB.log" &
cpid=$!
PIDS+=("$cpid")
feed "$TMP/fifoB" 300 10 "$TMP/inB.txt" &
PIDS+=($!)
sleep 1
kill "$l1"
wait "$l1" 2>/dev/null || true
sleep 0.7
start_tls_listener "$port" "$TMP/outB2.d4" srv
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/clientB.log" >&2; fail "B: client exit $rc, want 0"; }
wait "$LISTENER_PID" || true
grep -q disconnected "$TMP/clientB.log" || fail "B: the client did not notice the server going away"
[ "$(grep -c ' connected ' "$TMP/clientB.log")" -ge 2 ] || fail "B: no second connection"

# the first session may end in a cut frame (the server discards it); the second
# must be whole, start with the meta header, and carry the end of the input
frames --key "$TEST_KEY" --allow-partial --json "$TMP/outB1.d4" >"$TMP/b1.json" || fail "B: session 1 has a bad frame"
frames --key "$TEST_KEY" --json "$TMP/outB2.d4" >"$TMP/b2.json" || fail "B: session 2 is not whole"
python3 - "$TMP/b1.json" "$TMP/b2.json" <<'PY' || fail "B: session layout"
import json, sys
b1, b2 = (json.load(open(p)) for p in sys.argv[1:3])
for name, b in (("session 1", b1), ("session 2", b2)):
    assert b["types"] and b["types"][0] == 2, "%s does not open with the meta header: %s" % (name, b["types"][:3])
    assert set(b["types"][1:]) <= {254}, "%s: %s" % (name, b["types"])
    assert json.loads(b["meta"][0]) == {"type": "d4-telemetry"}, b["meta"]
    assert len(b["meta"]) == 1, "%s: meta header sent %d times" % (name, len(b["meta"]))
assert b2["leftover"] == 0
PY
summary="$(in_order "$TMP/inB.txt" "$TEST_KEY" "$TMP/outB1.d4" "$TMP/outB2.d4")" || fail "B: frames out of order or split"
echo "   $summary"
case "$summary" in
*"last_end=$(wc -c <"$TMP/inB.txt") "*) ;;
*) fail "B: the end of the input did not arrive" ;;
esac
# what the dead server may have swallowed went out again first (the resend window)
case "$summary" in
*" resent=0") fail "B: no frame was sent again after the reconnect" ;;
esac
ok "B: server restarted mid-stream: reconnected, meta header resent, frames whole and in order"
