#!/usr/bin/env bash
# bench/weakkeys.sh — batch GCD and incremental check of the TLS analyzer's weak-key code
# (analyzers/tls/weakkeys.c) on 100,000 RSA-1024 moduli.
#
#   bench/weakkeys.sh [build-dir] [moduli]        default: build, 100000
#
# 1. Generates the moduli once with gen_tls_moduli (seed 1, 50 pairs sharing a prime, 5 triples,
#    5 duplicates, 5 chains where one modulus shares both primes) and caches them as
#    <build>/bench-data/rsa1024-<moduli>.hex.txt (~2 minutes on 2 cores the first time).
# 2. Batch GCD with all online CPUs, then with 1 thread: seconds, findings, peak RSS, and the
#    ratio to fastgcd (C + GMP) measured on this machine class: 17 s with 4 threads, 31 s with 1
#    (../shared/PERF.md). Ratio > 1 means faster than fastgcd.
# 3. Incremental: a wk_set built from 99,000 moduli, then 1,000 (the 140 weak ones among them,
#    so that partners arrive) checked
#    and added one by one: bulk build time and milliseconds per new modulus; then the same
#    1,000 in one wk_set_check_many call on a fresh set.
# CPU seconds and the load average are printed beside wall time: on a shared 2-core machine a
# busy neighbour shows as wall time well above CPU time / threads.
# The expected findings are 2*50 + 3*5 + 2*5 + 3*5 = 140; the script checks the count.
set -euo pipefail
build=${1:-build}
count=${2:-100000}
gen="$build/bin/gen_tls_moduli"
[ -x "$gen" ] || { echo "weakkeys.sh: $gen missing: build the gen_tls_moduli target" >&2; exit 1; }
data="$build/bench-data"
file="$data/rsa1024-$count.hex.txt"
mkdir -p "$data"
if [ ! -s "$file" ]; then
	echo "== generating $count RSA-1024 moduli into $file (cached)"
	t0=$(date +%s)
	"$gen" -n "$count" -b 1024 -s 1 -p 50 -t 5 -d 5 -x 5 -o "$file.tmp" -e "$data/rsa1024-$count.truth.txt"
	mv "$file.tmp" "$file"
	echo "   $(( $(date +%s) - t0 )) s"
fi
expect=140

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }

run_batch() { # threads label fastgcd-seconds
	local out secs cpu found rss
	out=$("$gen" -r "$file" -j "$1")
	secs=$(echo "$out" | field seconds)
	cpu=$(echo "$out" | field cpu_seconds)
	found=$(echo "$out" | field findings)
	rss=$(echo "$out" | field maxrss_kb)
	printf '%-24s %6.2f s (CPU %6.2f s)  findings %s%s  peak RSS %d MB  fastgcd %s s -> ratio %.2f  (load %s)\n' \
		"$2" "$secs" "$cpu" "$found" "$([ "$found" = "$expect" ] || echo " (EXPECTED $expect)")" \
		$((rss / 1024)) "$3" "$(awk -v a="$3" -v b="$secs" 'BEGIN{print a/b}')" \
		"$(cut -d' ' -f1 /proc/loadavg)"
}

cpus=$(getconf _NPROCESSORS_ONLN)
echo "== batch GCD over $count RSA-1024 moduli ($cpus CPUs)"
run_batch 0 "all CPUs ($cpus threads)" 17
run_batch 1 "1 thread" 31

echo "== incremental: set of $((count - 1000)) moduli, 1000 new ones (the $expect weak among them) checked and added"
out=$("$gen" -r "$file" -i 1000 -j 0 -e "$data/rsa1024-$count.truth.txt")
echo "   bulk build $(echo "$out" | field build_seconds) s," \
	"$(echo "$out" | field ms_per_check) ms per new modulus (worst $(echo "$out" | field worst_ms) ms)," \
	"findings $(echo "$out" | field findings), peak RSS $(( $(echo "$out" | field maxrss_kb) / 1024 )) MB"
echo "   the same 1000 in one wk_set_check_many call: $(echo "$out" | field many_seconds) s"
