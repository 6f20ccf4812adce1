#!/usr/bin/env bash
# d4-analyzer-tls --batch-gcd FILE: the moduli that share a prime (or are duplicates) and no
# other, on our own 40-moduli set (its truth file lists the weak lines) and, when present, on
# the shared 100-moduli vector (compared with a pairwise GCD done here in Python).
set -euo pipefail
bin="${D4_BIN:?}/d4-analyzer-tls"
data="${D4_TEST_DATA:?}/weakkeys"
fail() { echo "FAIL: $*" >&2; exit 1; }

got=$("$bin" --batch-gcd "$data/moduli-40.hex.txt" --threads 2 | awk '{print $1}' | sort -n | tr '\n' ' ')
want=$(awk '{print $1}' "$data/moduli-40.truth.txt" | sort -n | tr '\n' ' ')
[ "$got" = "$want" ] || fail "40 moduli: got [$got], want [$want]"
echo "ok - own 40 moduli: weak lines $got"

"$bin" --batch-gcd /nonexistent 2>/dev/null && fail "a missing file is not an error"
echo "ok - a missing file exits non-zero"

vec="${D4_SHARED_VECTORS:-}/keys/rsa1024-moduli-100.hex.txt"
if [ -f "$vec" ]; then
	got=$("$bin" --batch-gcd - < "$vec" | awk '{print $1}' | sort -n | tr '\n' ' ')
	want=$(python3 - "$vec" <<'PY'
import math, sys
ms = [int(l, 16) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
weak = sorted({i for i in range(len(ms)) for j in range(len(ms))
               if i != j and math.gcd(ms[i], ms[j]) > 1})
print(" ".join(map(str, weak)) + " ")
PY
)
	[ "$got" = "$want" ] || fail "100 moduli: got [$got], want [$want]"
	echo "ok - shared 100 moduli: the $(echo $got | wc -w) that pairwise GCD finds"
fi
