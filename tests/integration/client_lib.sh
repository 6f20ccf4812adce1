# client_lib.sh — helpers sourced by tests/integration/test_client_*.sh.
#
# Gives: $CLIENT (the binary), $TMP (removed at exit), frames (d4frames.py),
# skip/fail, free_port, make_cert, start_tls_listener, and a trap
# that kills every background process the test registered in PIDS (by pid).
set -euo pipefail

: "${D4_BIN:?D4_BIN must name the bin directory of the build}"
CLIENT="$D4_BIN/d4-client"
export PYTHONDONTWRITEBYTECODE=1
export LIBDIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEST_UUID=cd980d75-dcf1-47da-bb60-aabe94fea6b2
TEST_KEY="private key to change"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

[ -x "$CLIENT" ] || fail "no d4-client in $D4_BIN"
command -v python3 >/dev/null 2>&1 || skip "python3 is missing"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/d4-client-test.XXXXXX")"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

frames() { python3 "$LIBDIR/d4frames.py" "$@"; }

# A TCP port nobody listens on right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# dead_port: a port nobody can listen on while the test runs (a socket is bound to it and
# never listens, in a background process): connecting to it is refused for sure, even when
# other tests pick ports at the same time. Sets DEAD_PORT (call it directly, not in $(...),
# so that the holder is registered in PIDS and killed at the end).
dead_port() {
	python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
sys.stdout.close(); time.sleep(600)' > "$TMP/dead_port" &
	PIDS+=($!)
	local i
	for i in $(seq 100); do [ -s "$TMP/dead_port" ] && break; sleep 0.05; done
	DEAD_PORT=$(cat "$TMP/dead_port")
}

# make_cert NAME SUBJECT_CN SAN: self-signed $TMP/NAME.crt and $TMP/NAME.key.
make_cert() {
	command -v openssl >/dev/null 2>&1 || skip "openssl is missing"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
		-addext "subjectAltName=$3" -keyout "$TMP/$1.key" -out "$TMP/$1.crt" \
		>/dev/null 2>&1 || fail "openssl req failed"
}

# start_tls_listener PORT OUTFILE CERTNAME [OPENSSL-LISTEN options, default verify=0]:
# a one-connection TLS server on 127.0.0.1 that writes what it receives to
# OUTFILE; its pid is left in LISTENER_PID (and registered for cleanup).
start_tls_listener() {
	command -v socat >/dev/null 2>&1 || skip "socat is missing"
	local extra="${4:-verify=0}"
	local log="$TMP/socat.$1.$RANDOM.log"
	timeout 120 socat -d -d -u \
		"OPENSSL-LISTEN:$1,bind=127.0.0.1,reuseaddr,cert=$TMP/$3.crt,key=$TMP/$3.key,$extra" \
		"OPEN:$2,creat,trunc" 2>"$log" &
	LISTENER_PID=$!
	PIDS+=("$LISTENER_PID")
	# a one-shot listener may accept and finish before a port probe sees it:
	# its own "listening on" notice is the reliable sign
	local i
	for i in $(seq 200); do
		grep -q "listening on" "$log" 2>/dev/null && { cat "$log" >>"$TMP/socat.log"; return 0; }
		kill -0 "$LISTENER_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	fail "socat did not listen on port $1"
}

# feed FIFO COUNT INTERVAL_MS [COPY]: writes COUNT numbered 100-byte lines into
# FIFO, one write every INTERVAL_MS, and a copy of everything to COPY.
feed() {
	python3 - "$@" <<'PY'
import sys, time
path, count, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000.0
copy = open(sys.argv[4], "wb") if len(sys.argv) > 4 else None
with open(path, "wb", buffering=0) as f:
    for i in range(count):
        line = ("%08d " % i).encode() + b"x" * 90 + b"\n"
        f.write(line)
        if copy:
            copy.write(line)
        time.sleep(interval)
PY
}

# in_order INPUT KEY FILE...: the whole frames of FILE... (in that order) are
# pieces of INPUT in increasing positions, each 254/data frame a contiguous
# piece; prints "frames=N bytes=M last_end=E resent=R". Truncated tails are
# allowed. A file after the first may open with frames identical (same HMAC)
# to frames of the files before it, in their order: the client's resend window
# after a reconnect; they are counted in R and not taken as input again.
in_order() {
	python3 - "$@" <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["LIBDIR"])
import d4frames
data = open(sys.argv[1], "rb").read()
key = sys.argv[2].encode()
pos = 0
n = 0
total = 0
resent = 0
seen = []
for path in sys.argv[3:]:
    frames, _ = d4frames.parse(open(path, "rb").read(), key)
    copies = None  # index in seen of the next expected copy, while the file opens with copies
    for fr in frames:
        assert fr["hmac_ok"], "bad HMAC in %s" % path
        if fr["type"] == 2 or fr["size"] == 0:
            continue
        if copies is None and seen:
            copies = seen.index(fr["hmac"]) if fr["hmac"] in seen else -1
        if copies is not None and copies >= 0:
            if copies < len(seen) and seen[copies] == fr["hmac"]:
                copies += 1
                resent += 1
                continue
            copies = -1
        seen.append(fr["hmac"])
        at = data.find(fr["payload"], pos)
        assert at >= 0, "a frame of %s is not a piece of the input after offset %d" % (path, pos)
        pos = at + fr["size"]
        n += 1
        total += fr["size"]
print("frames=%d bytes=%d last_end=%d input=%d resent=%d" % (n, total, pos, len(data), resent))
PY
}
