#!/usr/bin/env bash
# bench/ingest.sh — d4-ingest against the limits measured in the same run.
#
#   bench/ingest.sh [build-dir] [seconds]        default: build, 10 s per measurement
#
# Measures, on loopback, with d4-loadgen as the sensors and d4-sink as a null dispatcher:
#   1. the limits: openssl speed (AES-256-GCM, HMAC-SHA256) and a bare socat TLS pipe
#      (8 KiB, 64 KiB and 128 KiB writes) moving zeros;
#   2. one sensor, 4 KiB and 64 KiB payloads, HMAC verified, forwarded to the sink:
#      payload MB/s and frames/s, with the ratio to the bare TLS pipe with the same write size
#      (64 KiB frames: 64 KiB writes; 4 KiB frames: 8 KiB writes);
#   3. 10,000 idle sensors: d4-ingest's RSS per connection, and how many stayed connected;
#   4. p50/p99 latency from the sensor's write to the sink at half of the 4 KiB peak rate.
# The sender pays the same encryption and HMAC as the server, on the same 2 cores: compare
# ratios, not absolute figures (../shared/PERF.md).
set -euo pipefail
build=${1:-build}
secs=${2:-10}
bin=$(cd "$build/bin" && pwd)
t=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$t/var/tls" "$t/var/run"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/var/tls/server.key" \
	-out "$t/var/tls/server.crt" -days 2 -subj /CN=localhost 2>/dev/null
key="bench key"

speed() { # algorithm flag -> MB/s at 16 KiB
	openssl speed -seconds 2 -bytes 16384 "$@" 2>/dev/null | tail -n 1 | awk '{v=$NF; sub("k","",v); printf "%.0f", v/1000}'
}
echo "== limits (one core)"
aes=$(speed -evp aes-256-gcm)
hm=$(speed -hmac sha256)
both=$(awk -v a="$aes" -v h="$hm" 'BEGIN{printf "%.0f", 1/(1/a+1/h)}')
echo "aes-256-gcm ${aes} MB/s   hmac-sha256 ${hm} MB/s   decrypt+verify ${both} MB/s"

socat_pipe() { # write size -> MB/s
	local port=$((20000 + RANDOM % 20000)) bytes=$((2 * 1024 * 1024 * 1024))
	socat -u OPENSSL-LISTEN:$port,reuseaddr,cert="$t/var/tls/server.crt",key="$t/var/tls/server.key",verify=0 /dev/null &
	local lp=$!
	sleep 0.5
	local s e
	s=$(date +%s.%N)
	head -c $bytes /dev/zero | socat -b "$1" -u - OPENSSL:127.0.0.1:$port,verify=0
	e=$(date +%s.%N)
	wait $lp 2>/dev/null || true
	awk -v b=$bytes -v s="$s" -v e="$e" 'BEGIN{printf "%.0f", b/(e-s)/1e6}'
}
pipe8=$(socat_pipe 8192)
pipe64=$(socat_pipe 65536)
pipe128=$(socat_pipe 131072)
echo "bare TLS pipe (socat): ${pipe8} MB/s with 8 KiB writes, ${pipe64} MB/s with 64 KiB, ${pipe128} MB/s with 128 KiB"

start_server() { # extra --set options...
	rm -f "$t/var/run/dispatch.sock"
	"$bin/d4-sink" -q -s "$t/var/run/dispatch.sock" "${sink_args[@]}" > "$t/sink.out" 2>"$t/sink.err" &
	sink_pid=$!
	pids+=("$sink_pid")
	for _ in $(seq 50); do [ -S "$t/var/run/dispatch.sock" ] && break; sleep 0.1; done
	"$bin/d4-ingest" --set d4.data_dir="$t/var" --set ingest.listen=127.0.0.1:0 \
		--set ingest.mode=shared-secret --set "ingest.shared_key=$key" --set d4.log_level=notice "$@" \
		> "$t/ingest.log" 2>&1 &
	ingest_pid=$!
	pids+=("$ingest_pid")
	for _ in $(seq 50); do grep -q started "$t/ingest.log" && break; sleep 0.1; done
	port=$(grep -o 'port=[0-9]*' "$t/ingest.log" | head -1 | cut -d= -f2)
}
stop_server() {
	kill "$ingest_pid" 2>/dev/null || true
	wait "$ingest_pid" 2>/dev/null || true
	kill "$sink_pid" 2>/dev/null || true
	wait "$sink_pid" 2>/dev/null || true
}
field() { tr ' ' '\n' | grep "^$1=" | head -1 | cut -d= -f2; }

echo
echo "== one sensor, HMAC verified, to a null dispatcher (${secs} s each)"
printf '%-8s %10s %12s %14s %10s\n' payload "MB/s" "frames/s" "vs TLS pipe" "vs ref"
for size in 4096 65536; do
	sink_args=()
	start_server
	"$bin/d4-loadgen" -c 127.0.0.1:$port --key "$key" -n 1 -s $size -t 1 -d "$secs" > "$t/lg.out" 2>&1 || true
	stop_server
	mbps=$(field mbps < "$t/sink.out")
	fps=$(awk -v m="$mbps" -v s=$size 'BEGIN{printf "%.0f", m*1e6/s}')
	ref=$([ $size = 4096 ] && echo 500 || echo 228) # d4-core packets/s here (PERF.md)
	# the pipe with the sensor's write size: 64 KiB frames go out one per write; 4 KiB frames
	# are small writes (the generator batches them, a sensor's reads rarely fill 64 KiB)
	pipe=$([ $size = 4096 ] && echo "$pipe8" || echo "$pipe64")
	printf '%-8s %10s %12s %14s %10s\n' $size "$mbps" "$fps" \
		"$(awk -v a="$mbps" -v b="$pipe" 'BEGIN{printf "%.2f", a/b}')" \
		"$(awk -v a="$fps" -v b="$ref" 'BEGIN{printf "%.0fx", a/b}')"
	[ $size = 4096 ] && peak4k=$fps
done

echo
echo "== 10,000 idle sensors"
sink_args=()
start_server --set ingest.max_connections=12000
rss0=$(awk '/VmRSS/{print $2}' /proc/$ingest_pid/status)
"$bin/d4-loadgen" -c 127.0.0.1:$port --key "$key" -n 10000 --idle -s 64 -t 3 -d 40 --connect-rate 2000 > "$t/lg.out" 2>&1 &
lg=$!
pids+=("$lg")
sleep 30
rss1=$(awk '/VmRSS/{print $2}' /proc/$ingest_pid/status)
conns=$(ls /proc/$ingest_pid/fd | wc -l)
wait $lg || true
stop_server
est=$(field established < "$t/lg.out")
up=$(grep -o 'up_at_end=[0-9]*' "$t/lg.out" | cut -d= -f2 || true)
per=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN{printf "%.1f", (b-a)*1024/10000/1024}')
echo "established ${est:-?} of 10000, connected at the end ${up:-?}, ingest fds ${conns}"
echo "ingest RSS ${rss0} KiB -> ${rss1} KiB: ${per} KiB per sensor (target < 12, d4-core 15.8 KB)"

echo
rate=$(( ${peak4k:-20000} / 2 ))
echo "== latency at half of the 4 KiB peak (${rate} frames/s), sensor write -> sink"
sink_args=(--latency)
start_server
"$bin/d4-loadgen" -c 127.0.0.1:$port --key "$key" -n 1 -s 4096 -t 1 -d "$secs" -r "$rate" --latency > "$t/lg.out" 2>&1 || true
stop_server
grep -o 'p50_ms=[^ ]*\|p99_ms=[^ ]*\|p99.9_ms=[^ ]*\|max_ms=[^ ]*' "$t/sink.out" | tr '\n' ' '
echo "(target p99 < 2 ms)"
