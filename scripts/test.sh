#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. the normal build and every ctest test (unit + integration);
#   2. the same suite in an ASan + UBSan build;
#   3. every libFuzzer target for FUZZ_SECONDS seconds (default 60; 0 skips) from its seed corpus.
# Build trees: build/, build-asan/, build-fuzz/. Stops at the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-60}

stage() { printf '\n==== %s ====\n' "$*"; }

stage "build and test (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

stage "build and test (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DD4_SANITIZE=ON > /dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure -j"$jobs")

if [ "$fuzz_seconds" -gt 0 ]; then
	stage "fuzz (${fuzz_seconds}s per target)"
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DD4_FUZZ=ON -DD4_TESTS=OFF > /dev/null
	targets=()
	for src in fuzz/fuzz_*.c; do targets+=(--target "$(basename "$src" .c)"); done
	cmake --build build-fuzz -j"$jobs" "${targets[@]}"
	for target in build-fuzz/bin/fuzz_*; do
		name=$(basename "$target")
		name=${name#fuzz_}
		corpus=$(mktemp -d)
		[ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$corpus/"
		echo "fuzz_$name: ${fuzz_seconds}s"
		# libFuzzer exits non-zero on a crash, a leak or a timeout and prints the reproducer
		"$target" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="build-fuzz/" "$corpus" 2>&1 |
			grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)' || true
		status=${PIPESTATUS[0]}
		rm -rf "$corpus"
		[ "$status" = 0 ] || { echo "fuzz_$name FAILED (see build-fuzz/crash-*)"; exit 1; }
	done
fi
stage "all tests passed"
