#!/usr/bin/env bash
# Live capture (source pcap:IFACE): the frames' payload is one valid libpcap 2.4
# stream holding the captured packets. Skips without libpcap support or without
# the privilege to capture on the loopback interface.
. "$(dirname "$0")/client_lib.sh"

iface=lo
[ -d "/sys/class/net/$iface" ] || skip "no loopback interface named $iface"
port="$(free_port)"
timeout 60 "$CLIENT" --uuid "$TEST_UUID" --key "$TEST_KEY" --type 1 --source "pcap:$iface" \
	--pcap-filter "udp port $port" >"$TMP/out.d4" 2>"$TMP/client.log" &
cpid=$!
PIDS+=("$cpid")
for _ in $(seq 100); do
	grep -q " start " "$TMP/client.log" && break
	kill -0 "$cpid" 2>/dev/null || break
	sleep 0.05
done
if ! kill -0 "$cpid" 2>/dev/null; then
	rc=0
	wait "$cpid" || rc=$?
	grep -q "built without libpcap" "$TMP/client.log" && skip "d4-client built without libpcap"
	grep -q "source_error" "$TMP/client.log" && skip "cannot capture on $iface: $(grep -o 'reason=.*' "$TMP/client.log")"
	cat "$TMP/client.log" >&2
	fail "d4-client exited $rc"
fi
sleep 0.5
python3 - "$port" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(25):
    s.sendto(b"d4 capture test %03d" % i, ("127.0.0.1", int(sys.argv[1])))
    time.sleep(0.01)
PY
sleep 0.5
client_pid="$(pgrep -P "$cpid" -x d4-client 2>/dev/null)" || client_pid="$cpid"
kill -TERM "$client_pid"
rc=0
wait "$cpid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/client.log" >&2; fail "exit $rc after SIGTERM"; }
frames --key "$TEST_KEY" --payload "$TMP/cap.pcap" "$TMP/out.d4" >/dev/null || fail "frames do not verify"
python3 - "$TMP/cap.pcap" <<'PY' || fail "payload is not the expected pcap stream"
import struct, sys
data = open(sys.argv[1], "rb").read()
magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("=IHHiIII", data, 0)
assert magic == 0xa1b2c3d4 and (major, minor) == (2, 4), (hex(magic), major, minor)
off, seen = 24, set()
while off < len(data):
    sec, usec, caplen, length = struct.unpack_from("=IIII", data, off)
    pkt = data[off + 16:off + 16 + caplen]
    assert len(pkt) == caplen, "truncated record"
    i = pkt.find(b"d4 capture test ")
    if i >= 0:
        seen.add(int(pkt[i + 16:i + 19]))
    off += 16 + caplen
assert seen == set(range(25)), sorted(seen)
print("   pcap stream: linktype %d, %d test packets" % (linktype, len(seen)))
PY
grep -q pcap_stats "$TMP/client.log" || fail "no capture statistics logged"
ok "pcap:$iface: a valid libpcap 2.4 stream with all 25 packets"
