#!/usr/bin/env bash
# The newcomer's first command: installs the Debian packages and builds every program
# into build/bin/ (Release-like flags: RelWithDebInfo).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${D4_SKIP_DEPS:-0}" = 1 ] || scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
echo
echo "built: $(ls build/bin | tr '\n' ' ')"
echo "try:   build/bin/d4ctl decode --key 'private key to change' tests/data/vector-A.d4"
