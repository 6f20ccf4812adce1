#!/usr/bin/env bash
# bench/tls.sh — d4-analyzer-tls throughput against the reference figures of ../shared/PERF.md
# ("TLS fingerprinting and weak keys"): Suricata 7 single thread 813 MB/s on a 1 GB capture with
# 2 % handshake bytes, 17,500 sessions/s on a dense handshake-only capture; targets 1.5 GB/s and
# 50,000 sessions/s, no session skipped silently.
#
#   bench/tls.sh [build-dir] [mixed-MB] [dense-handshakes]      default: build 1024 120000
#
# Generates both captures with gen_tls_capture (in a temporary directory: ~1.3 GB free needed),
# then measures, each with /usr/bin/time -v (wall time, peak RSS):
#   1. the reading floor: tcpdump -r F -w /dev/null (when tcpdump exists);
#   2. d4-analyzer-tls --pcap F --no-store (fingerprints, certificates, no LMDB);
#   3. d4-analyzer-tls --pcap F --db DIR --no-sync (everything, the store included);
# and checks that the handshakes the analyzer counted equal the handshakes generated.
set -euo pipefail
build=${1:-build}
mixed_mb=${2:-1024}
dense_n=${3:-120000}
bin=$(cd "$build/bin" && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

gen() { "$bin/gen_tls_capture" "$@"; }
echo "generating captures in $t ..."
mixed_info=$(gen mixed "$t/mixed.pcap" "$mixed_mb")
dense_info=$(gen dense "$t/dense.pcap" "$dense_n")
echo "mixed: $mixed_info"
echo "dense: $dense_info"

field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" | head -1; }

# run LABEL FILE EXPECTED_HANDSHAKES CMD... : prints MB/s, handshakes/s, peak RSS
run() {
	local label=$1 file=$2 expect=$3
	shift 3
	local size
	size=$(stat -c %s "$file")
	/usr/bin/time -v "$@" >/dev/null 2>"$t/err" || { cat "$t/err"; echo "$label: failed"; return 1; }
	local wall rss hs
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$t/err" |
		awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$t/err")
	hs=$(grep 'handshakes=' "$t/err" | field handshakes || true)
	awk -v l="$label" -v s="$size" -v w="$wall" -v r="$rss" -v h="${hs:-}" -v e="$expect" 'BEGIN {
		if (w <= 0) w = 0.001
		printf "%-44s %8.0f MB/s  %9s handshakes/s  %6.0f MB RSS  %s\n", l, s / w / 1e6,
		       h == "" ? "-" : sprintf("%.0f", h / w), r / 1024,
		       h == "" ? "" : (h == e ? "all " e " handshakes" : "HANDSHAKES " h " != " e)
	}'
	grep -E 'evicted=[1-9]|cap_hits=[1-9]|refused=[1-9]' "$t/err" | sed 's/^/    /' || true
}

mixed_hs=$(echo "$mixed_info" | field handshakes)
dense_hs=$(echo "$dense_info" | field handshakes)
echo
echo "reference (PERF.md, same machine): Suricata 7 single 813 MB/s (1 GB, 2 % handshakes), 17,500 sessions/s (dense)"
echo "targets: 1.5 GB/s, 50,000 sessions/s, no session skipped silently"
if command -v tcpdump >/dev/null; then
	run "tcpdump -r (read floor), mixed" "$t/mixed.pcap" "" tcpdump -r "$t/mixed.pcap" -w /dev/null
fi
run "d4-analyzer-tls --no-store, mixed" "$t/mixed.pcap" "$mixed_hs" "$bin/d4-analyzer-tls" --pcap "$t/mixed.pcap" --no-store
run "d4-analyzer-tls + LMDB store, mixed" "$t/mixed.pcap" "$mixed_hs" "$bin/d4-analyzer-tls" --pcap "$t/mixed.pcap" --db "$t/db1" --no-sync
run "d4-analyzer-tls --no-store, dense" "$t/dense.pcap" "$dense_hs" "$bin/d4-analyzer-tls" --pcap "$t/dense.pcap" --no-store
run "d4-analyzer-tls + LMDB store, dense" "$t/dense.pcap" "$dense_hs" "$bin/d4-analyzer-tls" --pcap "$t/dense.pcap" --db "$t/db2" --no-sync
du -sh "$t/db2" | awk '{print "store size after the dense capture: " $1}'
