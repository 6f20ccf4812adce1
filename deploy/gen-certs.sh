#!/usr/bin/env bash
# gen-certs.sh — a private CA for a d4 server and its sensors (openssl only).
#
#   deploy/gen-certs.sh ca     DIR                       DIR/ca.key, DIR/ca.crt (10 years)
#   deploy/gen-certs.sh server DIR NAME [NAME|IP ...]    DIR/server.key, DIR/server.crt (2 years)
#   deploy/gen-certs.sh sensor DIR UUID                  DIR/sensors/UUID.key, .crt (2 years)
#
# The server files go where [d4] tls_cert / tls_key point (default <data_dir>/tls/server.*);
# sensors verify the server with ca.crt (d4-client --ca, or rootCA.crt in its config dir).
# A sensor certificate is for mutual TLS: set ingest.client_cert = optional (or required)
# and ingest.client_ca = DIR/ca.crt, and pin it to its sensor with the printed command.
# Keys are ECDSA P-256, written 0600.
set -euo pipefail
umask 077
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,14p' "$0"; exit 2; }
mkdir -p "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
need_ca() { [ -f "$dir/ca.key" ] && [ -f "$dir/ca.crt" ] || { echo "gen-certs: no CA in $dir (run: $0 ca $dir)" >&2; exit 1; }; }
sign() { # csr crt days extfile
	openssl x509 -req -in "$1" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
		-out "$2" -days "$3" -sha256 -extfile "$4" 2>/dev/null
	chmod 0644 "$2"
}

case "$cmd" in
ca)
	[ -f "$dir/ca.key" ] && { echo "gen-certs: $dir/ca.key exists; not overwriting" >&2; exit 1; }
	newkey "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -sha256 \
		-subj "/O=d4/CN=d4 private CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	chmod 0644 "$dir/ca.crt"
	echo "CA: $dir/ca.crt (give it to sensors), key: $dir/ca.key (keep it offline)"
	;;
server)
	need_ca
	shift 2
	[ $# -ge 1 ] || { echo "gen-certs: server needs a name" >&2; exit 2; }
	san=""
	for n in "$@"; do
		if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
	done
	newkey "$dir/server.key"
	openssl req -new -key "$dir/server.key" -out "$dir/server.csr" -subj "/O=d4/CN=$1" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
		"${san%,}" > "$dir/server.ext"
	sign "$dir/server.csr" "$dir/server.crt" 825 "$dir/server.ext"
	rm -f "$dir/server.csr" "$dir/server.ext"
	echo "server: $dir/server.crt and $dir/server.key (names: ${san%,})"
	;;
sensor)
	need_ca
	uuid=${3:-}
	[[ "$uuid" =~ ^[0-9a-fA-F-]{32,36}$ ]] || { echo "gen-certs: sensor needs its uuid" >&2; exit 2; }
	mkdir -p "$dir/sensors"
	newkey "$dir/sensors/$uuid.key"
	openssl req -new -key "$dir/sensors/$uuid.key" -out "$dir/sensors/$uuid.csr" \
		-subj "/O=d4 sensor/CN=$uuid" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
		> "$dir/sensors/$uuid.ext"
	sign "$dir/sensors/$uuid.csr" "$dir/sensors/$uuid.crt" 825 "$dir/sensors/$uuid.ext"
	rm -f "$dir/sensors/$uuid.csr" "$dir/sensors/$uuid.ext"
	pin=$(openssl x509 -in "$dir/sensors/$uuid.crt" -outform DER | sha256sum | cut -d' ' -f1)
	echo "sensor: $dir/sensors/$uuid.crt and .key (d4-client --cert ... --cert-key ...)"
	echo "pin it: d4ctl sensor set $uuid --cert-pin $pin"
	;;
*)
	sed -n '2,14p' "$0"
	exit 2
	;;
esac
