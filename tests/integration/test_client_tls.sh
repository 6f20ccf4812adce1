#!/usr/bin/env bash
# TLS destination against a socat TLS server with a certificate made here:
# verified with --ca (IP and DNS names), refused with a wrong CA or a wrong name,
# --insecure with a warning, and mutual TLS with --cert/--cert-key.
. "$(dirname "$0")/client_lib.sh"

command -v socat >/dev/null 2>&1 || skip "socat is missing"
make_cert srv localhost "DNS:localhost,IP:127.0.0.1"
make_cert other other "DNS:other"
make_cert named d4.example "DNS:d4.example"
head -c 200000 /dev/urandom >"$TMP/in.bin"

send() { # send PORT [flags...]
	local port="$1"
	shift
	timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 --source "$TMP/in.bin" \
		--retry-max 1s "$@" 2>"$TMP/client.log"
}
received_equals_input() {
	frames --key "$TEST_KEY" --payload "$TMP/payload.bin" "$1" >/dev/null ||
		fail "received stream does not decode ($1)"
	cmp -s "$TMP/in.bin" "$TMP/payload.bin" || fail "received payload differs from the input"
}

# 1. --ca, IP address destination (checked against the IP SAN)
port="$(free_port)"
start_tls_listener "$port" "$TMP/out1.d4" srv
send "$port" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" || fail "verified send: exit $?"
wait "$LISTENER_PID" || true
received_equals_input "$TMP/out1.d4"
grep -q "connected.*tls=TLSv1.[23]" "$TMP/client.log" || fail "no TLS connection logged"
ok "--ca verified, IP destination: 200000 bytes received intact"

# 2. rootCA.crt from the config directory, DNS name destination
mkdir "$TMP/conf"
cp "$TMP/srv.crt" "$TMP/conf/rootCA.crt"
port="$(free_port)"
echo "localhost:$port" >"$TMP/conf/destination"
start_tls_listener "$port" "$TMP/out2.d4" srv
send "$port" -c "$TMP/conf" || fail "rootCA.crt send: exit $?"
wait "$LISTENER_PID" || true
received_equals_input "$TMP/out2.d4"
ok "rootCA.crt from the config directory, DNS name destination"

# 3. wrong CA: nothing is sent, the verification error is logged, exit non-zero
port="$(free_port)"
start_tls_listener "$port" "$TMP/out3.d4" srv
rc=0
send "$port" --destination "127.0.0.1:$port" --ca "$TMP/other.crt" --flush-timeout 2s || rc=$?
[ "$rc" -ne 0 ] || fail "wrong CA: exit 0"
[ "$rc" -eq 4 ] || fail "wrong CA: exit $rc, want 4 (unsent)"
grep -q "certificate verification failed" "$TMP/client.log" || { cat "$TMP/client.log" >&2; fail "no verification error logged"; }
kill "$LISTENER_PID" 2>/dev/null || true
wait "$LISTENER_PID" 2>/dev/null || true
[ ! -s "$TMP/out3.d4" ] || fail "data reached the server despite a wrong CA"
ok "wrong CA: refused to send (exit 4, verification error logged)"

# 4. right CA, wrong name: the certificate names d4.example, we dial 127.0.0.1
port="$(free_port)"
start_tls_listener "$port" "$TMP/out4.d4" named
rc=0
send "$port" --destination "127.0.0.1:$port" --ca "$TMP/named.crt" --flush-timeout 2s || rc=$?
[ "$rc" -eq 4 ] || fail "wrong host name: exit $rc, want 4"
grep -q "certificate verification failed" "$TMP/client.log" || fail "no host name error logged"
kill "$LISTENER_PID" 2>/dev/null || true
wait "$LISTENER_PID" 2>/dev/null || true
[ ! -s "$TMP/out4.d4" ] || fail "data reached a server whose certificate names another host"
ok "host name verified against the certificate"

# 5. no CA at all: the system store does not know our self-signed certificate
port="$(free_port)"
start_tls_listener "$port" "$TMP/out5.d4" srv
rc=0
send "$port" --destination "127.0.0.1:$port" --flush-timeout 2s || rc=$?
[ "$rc" -eq 4 ] || fail "no CA: exit $rc, want 4"
kill "$LISTENER_PID" 2>/dev/null || true
wait "$LISTENER_PID" 2>/dev/null || true
ok "without --ca the system trust store is used (self-signed refused)"

# 6. --insecure: sent, with a warning
port="$(free_port)"
start_tls_listener "$port" "$TMP/out6.d4" srv
send "$port" --destination "127.0.0.1:$port" --insecure || fail "--insecure: exit $?"
wait "$LISTENER_PID" || true
received_equals_input "$TMP/out6.d4"
grep -q "tls_insecure" "$TMP/client.log" || fail "--insecure did not warn"
ok "--insecure sends and warns"

# 7. mutual TLS: the server requires a client certificate signed by its CA
make_cert client sensor "DNS:sensor"
port="$(free_port)"
start_tls_listener "$port" "$TMP/out7.d4" srv "verify=1,cafile=$TMP/client.crt"
rc=0
send "$port" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" --flush-timeout 2s || rc=$?
[ "$rc" -eq 4 ] || fail "mTLS without a client certificate: exit $rc, want 4"
grep -q "tls_rejected" "$TMP/client.log" || { cat "$TMP/client.log" >&2; fail "server refusal not logged"; }
kill "$LISTENER_PID" 2>/dev/null || true
wait "$LISTENER_PID" 2>/dev/null || true
[ ! -s "$TMP/out7.d4" ] || fail "data reached a server that refused the client"
ok "mTLS: refused without a client certificate, nothing sent (TLS 1.3 confirmation)"
port="$(free_port)"
start_tls_listener "$port" "$TMP/out8.d4" srv "verify=1,cafile=$TMP/client.crt"
send "$port" --destination "127.0.0.1:$port" --ca "$TMP/srv.crt" \
	--cert "$TMP/client.crt" --cert-key "$TMP/client.key" || { cat "$TMP/client.log" "$TMP"/socat.*.log >&2; fail "mTLS send: exit $?"; }
wait "$LISTENER_PID" || true
received_equals_input "$TMP/out8.d4"
ok "mutual TLS with --cert/--cert-key"

# 8. a bad --cert-key is a configuration error
rc=0
send 1 --destination "127.0.0.1:1" --cert "$TMP/client.crt" --cert-key "$TMP/srv.key" || rc=$?
[ "$rc" -eq 2 ] || fail "mismatched --cert-key: exit $rc, want 2"
grep -Eq "key values mismatch|does not match" "$TMP/client.log" || fail "mismatched key not explained"
ok "mismatched client key refused"

# 9. --no-tls: plain TCP (for a TLS terminator in front of the server)
port="$(free_port)"
timeout 60 socat -d -d -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "OPEN:$TMP/out9.d4,creat,trunc" \
	2>"$TMP/socat9.log" &
PIDS+=($!)
l9=$!
for _ in $(seq 200); do grep -q "listening on" "$TMP/socat9.log" && break; sleep 0.05; done
send "$port" --destination "127.0.0.1:$port" --no-tls || fail "--no-tls: exit $?"
wait "$l9" || true
received_equals_input "$TMP/out9.d4"
grep -q "tls=off" "$TMP/client.log" || fail "--no-tls connection not logged as such"
ok "--no-tls sends over plain TCP"
