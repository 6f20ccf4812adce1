#!/usr/bin/env bash
# Installs d4 system-wide after a build: programs in /usr/local/bin, the configuration in
# /etc/d4 (an existing d4.conf is kept), data in /var/lib/d4 owned by the user d4, the
# systemd unit and the logrotate rule.
#
#   cmake -S . -B build && cmake --build build -j && sudo deploy/install.sh [build]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

cmake --install "$build" --prefix /usr/local
getent group d4 >/dev/null || groupadd --system d4
getent passwd d4 >/dev/null || useradd --system --gid d4 --home-dir /var/lib/d4 \
	--shell /usr/sbin/nologin --comment "D4 server" d4
install -d -m 0755 /etc/d4
if [ ! -e /etc/d4/d4.conf ]; then
	sed -e 's|^#data_dir = ./var|data_dir = /var/lib/d4|' etc/d4.conf > /etc/d4/d4.conf
	chmod 0640 /etc/d4/d4.conf
	chgrp d4 /etc/d4/d4.conf
fi
install -d -m 0700 -o d4 -g d4 /var/lib/d4
install -m 0644 deploy/systemd/d4.service /etc/systemd/system/d4.service
install -m 0644 deploy/logrotate/d4 /etc/logrotate.d/d4
command -v systemctl >/dev/null && systemctl daemon-reload || true
echo "installed: systemctl enable --now d4; the first admin password is in: journalctl -u d4"
