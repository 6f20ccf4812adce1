#!/usr/bin/env bash
# The bounded buffer: (A) a live source (fifo) overflowing while the server is
# away loses its oldest frames, counted and logged, the rest arrives whole and
# the exit status is 3; (B) a regular file waits instead of dropping; (C)
# SIGTERM stops reading, flushes and exits 0; with no server it exits 4.
. "$(dirname "$0")/client_lib.sh"

command -v socat >/dev/null 2>&1 || skip "socat is missing"
make_cert srv localhost "DNS:localhost,IP:127.0.0.1"

wait_for_log() { # wait_for_log FILE PATTERN: at most 15 s
	local i
	for i in $(seq 150); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1" >&2
	fail "no \"$2\" in $1 after 15s"
}

# --- A: overflow with a live source ---
port="$(free_port)"
mkfifo "$TMP/fifoA"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 --snaplen 1000 --buffer 8k \
	--source "$TMP/fifoA" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" \
	--retry-max 300ms 2>"$TMP/clientA.log" &
cpid=$!
PIDS+=("$cpid")
# a writer that keeps the fifo open until told to close it (touch $TMP/closeA)
python3 - "$TMP/inA.bin" "$TMP/closeA" >"$TMP/fifoA" <<'PY' &
import os, sys, time
out = os.fdopen(sys.stdout.fileno(), "wb", buffering=0)
with open(sys.argv[1], "wb") as copy:
    for i in range(40):
        chunk = (b"%08d " % i) + bytes([65 + i % 26]) * 991
        out.write(chunk)
        copy.write(chunk)
        time.sleep(0.02)
for _ in range(600):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.05)
PY
PIDS+=($!)
wait_for_log "$TMP/clientA.log" buffer_full
start_tls_listener "$port" "$TMP/outA.d4" srv
touch "$TMP/closeA"
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 3 ] || { cat "$TMP/clientA.log" >&2; fail "A: exit $rc, want 3 (frames discarded)"; }
wait "$LISTENER_PID" || true
frames --key "$TEST_KEY" --json "$TMP/outA.d4" >"$TMP/a.json" || fail "A: received stream is not whole"
summary="$(in_order "$TMP/inA.bin" "$TEST_KEY" "$TMP/outA.d4")" || fail "A: frames out of order"
python3 - "$TMP/a.json" <<'PY' || fail "A: unexpected frame count"
import json, sys
j = json.load(open(sys.argv[1]))
# 8k holds 7 frames of 1062 bytes: the oldest were discarded, the newest kept
assert 0 < j["frames"] < 40, j["frames"]
PY
grep -q 'buffer_full dropped_frames=[1-9]' "$TMP/clientA.log" || fail "A: drops not counted in the log"
echo "   $summary"
case "$summary" in
*"last_end=40000 "*) ;;
*) fail "A: the newest data did not arrive" ;;
esac
ok "A: overflow discarded the oldest frames (logged, exit 3), the newest arrived whole"

# --- B: a regular file is not dropped from: reading waits for room ---
port="$(free_port)"
head -c 50000 /dev/urandom >"$TMP/inB.bin"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 --snaplen 1000 --buffer 4k \
	--source "$TMP/inB.bin" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" \
	--retry-max 300ms 2>"$TMP/clientB.log" &
cpid=$!
PIDS+=("$cpid")
sleep 1
start_tls_listener "$port" "$TMP/outB.d4" srv
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/clientB.log" >&2; fail "B: exit $rc, want 0"; }
wait "$LISTENER_PID" || true
frames --key "$TEST_KEY" --payload "$TMP/payB.bin" "$TMP/outB.d4" >/dev/null || fail "B: stream"
cmp "$TMP/inB.bin" "$TMP/payB.bin" || fail "B: data lost from a regular file"
! grep -q buffer_full "$TMP/clientB.log" || fail "B: frames were dropped from a regular file"
ok "B: a regular file source waits for room instead of dropping (50000 bytes through a 4k buffer)"

# --- C: SIGTERM flushes and exits 0 ---
port="$(free_port)"
start_tls_listener "$port" "$TMP/outC.d4" srv
mkfifo "$TMP/fifoC"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 \
	--source "$TMP/fifoC" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" 2>"$TMP/clientC.log" &
cpid=$!
PIDS+=("$cpid")
hold_fifo() { # hold_fifo FIFO TEXT STOPFILE: writes TEXT, keeps FIFO open until STOPFILE exists
	python3 - "$2" "$3" >"$1" <<'PY' &
import os, sys, time
sys.stdout.write(sys.argv[1]); sys.stdout.flush()
for _ in range(600):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.05)
PY
	PIDS+=($!)
}
hold_fifo "$TMP/fifoC" $'hello before the signal\n' "$TMP/closeC"
wait_for_log "$TMP/clientC.log" "meta_header_sent\|connected"
sleep 0.3
kill -TERM "$cpid"
rc=0
wait "$cpid" || rc=$?
touch "$TMP/closeC"
[ "$rc" -eq 0 ] || { cat "$TMP/clientC.log" >&2; fail "C: exit $rc after SIGTERM, want 0"; }
wait "$LISTENER_PID" || true
frames --key "$TEST_KEY" --payload "$TMP/payC.txt" "$TMP/outC.d4" >/dev/null || fail "C: stream"
[ "$(cat "$TMP/payC.txt")" = "hello before the signal" ] || fail "C: data read before SIGTERM not delivered"
ok "C: SIGTERM stops reading, flushes, exits 0"

# --- D: SIGTERM with no server: the flush times out, exit 4 ---
dead_port
port="$DEAD_PORT"
mkfifo "$TMP/fifoD"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 --flush-timeout 1s --log-level debug \
	--source "$TMP/fifoD" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" 2>"$TMP/clientD.log" &
cpid=$!
PIDS+=("$cpid")
hold_fifo "$TMP/fifoD" $'nobody will read this\n' "$TMP/closeD"
wait_for_log "$TMP/clientD.log" connect_failed
wait_for_log "$TMP/clientD.log" frame_read # the line is read and waits in the buffer
kill -TERM "$cpid"
rc=0
wait "$cpid" || rc=$?
touch "$TMP/closeD"
[ "$rc" -eq 4 ] || { cat "$TMP/clientD.log" >&2; fail "D: exit $rc, want 4 (unsent)"; }
grep -q "flush_timeout unsent_frames=1" "$TMP/clientD.log" || { cat "$TMP/clientD.log" >&2; fail "D: unsent frames not logged"; }
ok "D: no server at SIGTERM: flush timeout, unsent frames logged, exit 4"

# --- E: a second signal (a second after the first) exits at once ---
command -v pgrep >/dev/null 2>&1 || { echo "skip - E: pgrep is missing"; exit 0; }
dead_port
port="$DEAD_PORT"
mkfifo "$TMP/fifoE"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 3 --flush-timeout 30s --log-level debug \
	--source "$TMP/fifoE" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" 2>"$TMP/clientE.log" &
cpid=$!
PIDS+=("$cpid")
hold_fifo "$TMP/fifoE" $'still unsent\n' "$TMP/closeE"
wait_for_log "$TMP/clientE.log" connect_failed
wait_for_log "$TMP/clientE.log" frame_read
# signal the client itself: timeout(1) relays only the first signal it gets
client_pid="$(pgrep -P "$cpid" -x d4-client)" || fail "E: no d4-client under timeout"
kill -TERM "$client_pid"
sleep 1.3
start=$SECONDS
kill -TERM "$client_pid"
rc=0
wait "$cpid" || rc=$?
touch "$TMP/closeE"
[ "$rc" -eq 4 ] || { cat "$TMP/clientE.log" >&2; fail "E: exit $rc, want 4"; }
[ $((SECONDS - start)) -le 5 ] || fail "E: the second signal did not exit at once"
grep -q 'action="exit now"' "$TMP/clientE.log" || fail "E: no exit-now log"
ok "E: a second signal exits at once (exit 4, frames unsent)"
