#!/usr/bin/env bash
# bench/web.sh — d4-web under load: the sensor list and /metrics with 1,000 registered sensors.
#
#   bench/web.sh [build-dir] [seconds]         default: build, 10 s per route
#
# Registers 1,000 sensors (with statistics from a short ingest run would take long: they are
# registrations only, which is what the list reads first), makes a read-only API token, and
# runs wrk (2 threads, 50 connections, HTTPS, keep-alive) against GET /api/v1/sensors (its
# first page of 100) and GET /metrics. Prints requests/s and p99. Target (issue 5): over 10,000
# requests/s, p99 < 5 ms. WEB_THREADS=N sets web.threads (default 1, as d4-web's).
set -euo pipefail
build=${1:-build}
secs=${2:-10}
bin=$(cd "$build/bin" && pwd)
command -v wrk >/dev/null || { echo "bench/web.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
t=$(mktemp -d)
web_pid=
cleanup() {
	[ -n "$web_pid" ] && kill "$web_pid" 2>/dev/null && wait "$web_pid" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
mkdir -p "$t/var/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/var/tls/server.key" \
	-out "$t/var/tls/server.crt" -days 2 -subj /CN=localhost 2>/dev/null
sets=(--set d4.data_dir="$t/var" --set web.listen=127.0.0.1:0 --set d4.log_level=notice
	--set web.threads="${WEB_THREADS:-1}")
python3 - "$bin/d4ctl" "$t/var" <<'PY'
import subprocess, sys, uuid
ctl, data = sys.argv[1], sys.argv[2]
# one d4ctl per sensor would take a while: batch through a shell loop of 1000 calls anyway
for i in range(1000):
    subprocess.run([ctl, "--set", "d4.data_dir=" + data, "sensor", "register", str(uuid.uuid4()),
                    "--key", "k%d" % i, "--description", "bench sensor %d" % i] + (["--approve"] if i % 2 else []),
                   check=True, capture_output=True)
PY
"$bin/d4ctl" "${sets[@]}" --set web.argon2_memory=64k user add bench --role read-only --password-stdin \
	<<< "a bench password" > /dev/null
token=$("$bin/d4ctl" "${sets[@]}" user token bench | sed -n 's/^token for bench: //p')
"$bin/d4-web" "${sets[@]}" 2> "$t/web.log" &
web_pid=$!
for _ in $(seq 100); do grep -q "port=" "$t/web.log" && break; sleep 0.05; done
port=$(grep -o 'port=[0-9]*' "$t/web.log" | head -1 | cut -d= -f2)
sleep 0.3
printf '%-22s %12s %10s %10s\n' route "requests/s" "p50" "p99"
for route in /api/v1/sensors /metrics; do
	out=$(wrk -t2 -c50 -d"${secs}s" --latency -H "Authorization: Bearer $token" "https://127.0.0.1:$port$route")
	rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
	p50=$(echo "$out" | awk '$1=="50%"{print $2}')
	p99=$(echo "$out" | awk '$1=="99%"{print $2}')
	non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}')
	printf '%-22s %12s %10s %10s %s\n' "$route" "$rps" "$p50" "$p99" "${non2xx:+(non-2xx: $non2xx)}"
done
echo "target: over 10,000 requests/s and p99 under 5 ms (1,000 sensors, wrk -t2 -c50, HTTPS)"
