#!/usr/bin/env bash
# bench/dispatch.sh — what dispatch costs on top of ingest, measured in the same run.
#
#   bench/dispatch.sh [build-dir] [seconds] [payload]     default: build, 8 s, 65536
#
# One TLS sensor (d4-loadgen, HMAC-signed frames) into d4-ingest, then:
#   1. ingest -> d4-sink (a null dispatcher): the ingest-only figure;
#   2. ingest -> d4-dispatch -> one d4-analyzer-null;
#   3. ingest -> d4-dispatch -> three queues, each a d4-analyzer-null (fan-out).
# Payload MB/s are counted where the data ends (the sink, or the analyzers' own counts), and
# printed with the ratio to the ingest-only figure. Target: one analyzer costs under 20 %.
set -euo pipefail
build=${1:-build}
secs=${2:-8}
size=${3:-65536}
bin=$(cd "$build/bin" && pwd)
t=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT
mkdir -p "$t/var/tls" "$t/var/run"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/var/tls/server.key" \
	-out "$t/var/tls/server.crt" -days 2 -subj /CN=localhost 2>/dev/null
key="bench key"
common=(--set d4.data_dir="$t/var" --set d4.log_level=notice)

run_ingest() {
	"$bin/d4-ingest" "${common[@]}" --set ingest.listen=127.0.0.1:0 --set ingest.mode=shared-secret \
		--set "ingest.shared_key=$key" > "$t/ingest.log" 2>&1 &
	ingest_pid=$!
	pids+=("$ingest_pid")
	for _ in $(seq 50); do grep -q started "$t/ingest.log" && break; sleep 0.1; done
	port=$(grep -o 'port=[0-9]*' "$t/ingest.log" | head -1 | cut -d= -f2)
}
load() {
	"$bin/d4-loadgen" -c 127.0.0.1:$port --key "$key" -n 1 -s "$size" -t 1 -d "$secs" > "$t/lg.out" 2>&1 || true
}
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# 1. ingest only
rm -f "$t/var/run/dispatch.sock"
"$bin/d4-sink" -q -s "$t/var/run/dispatch.sock" > "$t/sink.out" 2>&1 &
sink=$!
pids+=("$sink")
sleep 0.3
run_ingest
load
stop "$ingest_pid" "$sink"
base=$(tr ' ' '\n' < "$t/sink.out" | grep '^mbps=' | cut -d= -f2)

# 2 and 3: the real dispatcher with null analyzers; their summaries go to dispatch's log
dispatch_run() { # number of queues
	local n=$1 args=()
	for i in $(seq "$n"); do
		args+=(--set "queue.null$i.types=1" --set "queue.null$i.command=d4-analyzer-null")
	done
	rm -f "$t/var/run/dispatch.sock"
	"$bin/d4-dispatch" "${common[@]}" --set d4.log_level=info "${args[@]}" > "$t/dispatch.log" 2>&1 &
	disp=$!
	pids+=("$disp")
	for _ in $(seq 50); do [ -S "$t/var/run/dispatch.sock" ] && break; sleep 0.1; done
	run_ingest
	local s e
	s=$(date +%s.%N)
	load
	stop "$ingest_pid" "$disp"
	e=$(date +%s.%N)
	# bytes each analyzer acknowledged, from its own summary line (in dispatch's log)
	grep -o 'bytes=[0-9]*' "$t/dispatch.log" | cut -d= -f2 | sort -n | head -1 > "$t/bytes"
	awk -v b="$(cat "$t/bytes")" -v d="$secs" 'BEGIN{printf "%.1f", b/d/1e6}'
}
one=$(dispatch_run 1)
three=$(dispatch_run 3)

printf '%-44s %10s %8s\n' "path (payload $size B, ${secs} s)" "MB/s" "ratio"
printf '%-44s %10s %8s\n' "ingest -> null dispatcher (d4-sink)" "$base" "1.00"
printf '%-44s %10s %8s\n' "ingest -> dispatch -> 1 null analyzer" "$one" \
	"$(awk -v a="$one" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
printf '%-44s %10s %8s\n' "ingest -> dispatch -> 3 null analyzers" "$three" \
	"$(awk -v a="$three" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
echo "target: one analyzer costs under 20 % of the ingest-only throughput (ratio > 0.80)"
