#!/usr/bin/env bash
# The newcomer's first command: installs the Debian packages, builds every program into
# build/bin/, and starts the whole server in the foreground on embedded defaults with a
# sample analyzer set (etc/quickstart.conf: archive and stdout): `d4ctl run`, data in ./var,
# sensors on 127.0.0.1:4443, the web API on 127.0.0.1:7000; the first run creates a TLS
# certificate and prints the first admin password once.
#
#   scripts/setup.sh              install, build, run (Ctrl-C stops the server)
#   scripts/setup.sh --no-start   install and build only
set -euo pipefail
cd "$(dirname "$0")/.."
start=1
[ "${1:-}" = "--no-start" ] && start=0
[ "${D4_SKIP_DEPS:-0}" = 1 ] || scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
echo
echo "built: $(ls build/bin | tr '\n' ' ')"
[ "$start" = 1 ] || exit 0
echo "starting the server (Ctrl-C stops it; 'build/bin/d4ctl start' runs it in the background)"
exec build/bin/d4ctl -c etc/quickstart.conf run
