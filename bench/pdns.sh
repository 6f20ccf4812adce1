#!/usr/bin/env bash
# bench/pdns.sh — passive DNS benchmark: ingest of N passivedns CSV records (default 10
# million, bench/gen_pdns.c) by d4-analyzer-passivedns offline, store bytes per distinct
# record, then lookups with wrk against d4-pdns-lookup for a popular name, an address and a
# miss. Prints each figure and its ratio to the reference (D4-project/analyzer-d4-passivedns,
# ../shared/PERF.md "Passive DNS").
#
#   bench/pdns.sh [BIN_DIR]            (default build/bin)
#   env: N=10000000 NAMES=2000000 SEED=42 DURATION=10s CONNS=16 THREADS=2 (server)
#        WRK_THREADS=1 WORK=/tmp/dir
#
# Run it once, on an otherwise quiet machine: it uses both cores and ~2 GB of disk.
set -euo pipefail

BIN=${1:-build/bin}
N=${N:-10000000}
NAMES=${NAMES:-2000000}
SEED=${SEED:-42}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
WRK_THREADS=${WRK_THREADS:-1}
WORK=${WORK:-$(mktemp -d /tmp/pdns-bench.XXXXXX)}
LPID=

cleanup() {
	if [ -n "$LPID" ]; then kill "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

for p in gen_pdns d4-analyzer-passivedns d4-pdns-lookup; do
	[ -x "$BIN/$p" ] || { echo "pdns.sh: $BIN/$p is not built" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "pdns.sh: wrk is not installed" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "-" }'; }

echo "== generating $N records ($NAMES names, seed $SEED)"
"$BIN/gen_pdns" -n "$N" --names "$NAMES" --seed "$SEED" --d4 >"$WORK/in.d4" 2>"$WORK/gen.txt"
POPULAR=$(sed -n 's/.*popular=\([^ ]*\).*/\1/p' "$WORK/gen.txt")
ADDRESS=$(sed -n 's/.*address=\([^ ]*\).*/\1/p' "$WORK/gen.txt")
MISS=$(sed -n 's/.*miss=\([^ ]*\).*/\1/p' "$WORK/gen.txt")

echo "== ingest"
t0=$(date +%s.%N)
"$BIN/d4-analyzer-passivedns" --db "$WORK/db" <"$WORK/in.d4" 2>"$WORK/analyzer.txt"
t1=$(date +%s.%N)
cat "$WORK/analyzer.txt"
DISTINCT=$(sed -n 's/.* distinct=\([0-9]*\).*/\1/p' "$WORK/analyzer.txt")
SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
RATE=$(awk -v n="$N" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }')
echo "ingest: $N records in $SECS s = $RATE records/s (reference 980/s: x$(ratio "$RATE" 980))"

echo "== store"
PSIZE=$(mdb_stat -e "$WORK/db" | awk '/Page size/ { print $3 }')
USED=$(mdb_stat -e "$WORK/db" | awk '/Number of pages used/ { print $5 }')
mkdir -p "$WORK/compact"
mdb_copy -c "$WORK/db" "$WORK/compact"
FILE=$(stat -c %s "$WORK/db/data.mdb")
COMPACT=$(stat -c %s "$WORK/compact/data.mdb")
# per database: entries, pages, bytes per distinct record. mdb_stat does not count the pages
# of sub-databases (the duplicates of a key of rec or rdx, MDB_DUPSORT, once they outgrow a page):
# they are the file's pages that no database accounts for (less the 2 meta pages).
mdb_stat -a "$WORK/compact" | awk -v file="$(stat -c %s "$WORK/compact/data.mdb")" \
	-v psize="$PSIZE" -v d="$DISTINCT" '/^Status of/ { db = $3 } /Leaf pages/ { leaf[db] = $3 }
	/Branch pages/ { br[db] = $3 } /Overflow pages/ { ov[db] = $3 } /Entries/ { n[db] = $2 }
	END { for (x in n) { p = leaf[x] + br[x] + ov[x]; sum += p
	        if (x != "Main") printf "  %-7s %10d entries %8d pages %6.1f B/record\n", x, n[x], p, p * psize / d }
	      sub_ = file / psize - sum - 2
	      printf "  %-7s %10s         %8d pages %6.1f B/record (sub-databases of duplicates: rec and rdx)\n", "(dups)", "", sub_, sub_ * psize / d }'
# the databases of duplicates in all (sub-databases included): the pages that emptying each
# one frees in a copy of the compacted store (gen_pdns --drop, then mdb_stat -ef)
mkdir -p "$WORK/dropped"
cp "$WORK/compact/data.mdb" "$WORK/dropped/"
for db in rec rec6 rdx rdx6; do
	f0=$(mdb_stat -ef "$WORK/dropped" | awk '/Free pages/ { print $3 }')
	"$BIN/gen_pdns" --drop "$WORK/dropped" "$db"
	f1=$(mdb_stat -ef "$WORK/dropped" | awk '/Free pages/ { print $3 }')
	awk -v n="$db" -v p="$((f1 - f0))" -v psize="$PSIZE" -v d="$DISTINCT" \
		'BEGIN { printf "  %-7s in all (sub-databases included) %8d pages %6.1f B/record\n", n, p, p * psize / d }'
done
rm -rf "$WORK/dropped"
BPR=$(awk -v b="$COMPACT" -v d="$DISTINCT" 'BEGIN { printf "%.1f", b / d }')
echo "store: $DISTINCT distinct records; data.mdb $FILE bytes ($((USED * PSIZE)) in pages used), $COMPACT after mdb_copy -c"
echo "store: $BPR bytes per distinct record as ingested, after mdb_copy -c (reference 764: x$(ratio 764 "$BPR") smaller)"
t0=$(date +%s.%N)
"$BIN/d4-analyzer-passivedns" --db "$WORK/db" --repack "$WORK/packed"
t1=$(date +%s.%N)
PACKED=$(stat -c %s "$WORK/packed/data.mdb")
PBPR=$(awk -v b="$PACKED" -v d="$DISTINCT" 'BEGIN { printf "%.1f", b / d }')
echo "store: $PBPR bytes per distinct record after --repack ($PACKED bytes, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; reference 764: x$(ratio 764 "$PBPR") smaller)"
rm -rf "$WORK/compact" "$WORK/in.d4"

echo "== lookups (d4-pdns-lookup --threads $THREADS; wrk -t$WRK_THREADS -c$CONNS -d$DURATION)"
: >"$WORK/lookup.txt" # exists before the background job opens it (sed below reads it)
"$BIN/d4-pdns-lookup" --db "$WORK/packed" --listen 127.0.0.1:0 --threads "$THREADS" \
	2>"$WORK/lookup.txt" &
LPID=$!
PORT=
for _ in $(seq 1 100); do
	PORT=$(sed -n 's/.*listening .*port=\([0-9]*\).*/\1/p' "$WORK/lookup.txt")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || { echo "pdns.sh: d4-pdns-lookup did not start" >&2; cat "$WORK/lookup.txt"; exit 1; }

to_ms() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f", v }'; }

bench() { # label path ref_rps ref_p99_ms
	local n out rps p50 p99
	n=$(curl -s "http://127.0.0.1:$PORT$2" | wc -l)
	out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$PORT$2")
	rps=$(echo "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
	p50=$(echo "$out" | awk '$1 == "50%" { print $2 }' | to_ms)
	p99=$(echo "$out" | awk '$1 == "99%" { print $2 }' | to_ms)
	echo "lookup $1 ($2, $n records): $rps req/s p50 $p50 ms p99 $p99 ms" \
		"(reference $3 req/s p99 $4 ms: x$(ratio "$rps" "$3") req/s)"
	# one client, one request at a time: the latency without queueing behind other clients
	out=$(wrk -t1 -c1 -d"$DURATION" --latency "http://127.0.0.1:$PORT$2")
	rps=$(echo "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
	p50=$(echo "$out" | awk '$1 == "50%" { print $2 }' | to_ms)
	p99=$(echo "$out" | awk '$1 == "99%" { print $2 }' | to_ms)
	echo "  one client: $rps req/s p50 $p50 ms p99 $p99 ms"
}
bench "popular name" "/query/$POPULAR" 210 29
bench "address" "/query/$ADDRESS" 12 463
bench "miss" "/query/$MISS" 545 12
