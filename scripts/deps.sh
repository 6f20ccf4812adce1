#!/usr/bin/env bash
# Installs the Debian packages d4 builds against and tests with (README.md says why each).
# Runs apt-get as root, or through sudo when there is one.
set -euo pipefail

packages=(
	# toolchain
	build-essential cmake pkg-config clang libclang-rt-14-dev
	# libraries the programs link
	libssl-dev libuv1-dev liblmdb-dev libjansson-dev libmicrohttpd-dev libpcap-dev libargon2-dev
	zlib1g-dev
	# analyzers: GMP for the TLS analyzer's batch GCD, libidn2 for passive DNS names
	libgmp-dev libidn2-dev
	# tests
	libcmocka-dev python3 socat openssl procps tcpdump
	# benchmarks (bench/): an HTTP load generator
	wrk
	# operator tools for the store (mdb_stat, mdb_dump)
	lmdb-utils
	# the web UI test: headless Chromium (driven by playwright-core from npm)
	chromium
)

as_root=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "deps.sh: run as root or install sudo" >&2; exit 1; }
	as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
# Node.js and npm for the UI test, unless the machine has them already (a NodeSource nodejs
# includes npm and conflicts with Debian's npm package)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	"${as_root[@]}" apt-get install -y -q --no-install-recommends nodejs npm
fi
