#!/usr/bin/env bash
# Makes a private certificate authority and the certificates of a TLS test or local stack in
# DIR (docs/USER_GUIDE.md, "Production"): used by `scripts/dev-up.sh --secure` and by the
# security tests (crates/globalmart-testkit). Never for production: the keys are not encrypted.
#
#   ca.pem, ca.key          the CA (clients trust ca.pem)
#   server.pem, server.key  the servers' certificate, for the host name localhost only (so a
#                           client that checks names refuses 127.0.0.1); server.key is PKCS#8
#   server-keystore.pem     server.key and server.pem in one file (Kafka's PEM keystore)
#   client.pem, client.key  a client certificate (mutual TLS), CN globalmart
#
# Keeps the files that exist already: running it twice changes nothing.
set -euo pipefail

usage() {
    echo "usage: scripts/make-certs.sh DIR"
    echo "Creates a private CA and localhost server and client certificates in DIR (kept if present)."
}
case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
command -v openssl >/dev/null 2>&1 || { echo "error: openssl not found (Debian package openssl)" >&2; exit 1; }
DIR=$1
mkdir -p "$DIR"
cd "$DIR"
[ -f ca.pem ] && [ -f server-keystore.pem ] && [ -f client.pem ] && exit 0
umask 077
DAYS=825

openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -keyout ca.key -out ca.pem \
    -subj "/CN=GlobalMart local CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# $1: name; $2: subject; $3: extensions.
issue() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$DAYS" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth"
issue client "/CN=globalmart" "extendedKeyUsage=clientAuth"
cat server.key server.pem >server-keystore.pem
rm -f ca.srl
# Certificates readable by all; keys (and the keystore, which holds one) by this user only:
# a server running as another user (postgres) gets its own copy.
chmod 644 ca.pem server.pem client.pem
