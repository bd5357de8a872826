#!/bin/bash
# spt-certs.sh OUTDIR [HOST...]: certificates for a small lab's spt pool.
#
# Makes (with the openssl CLI) in OUTDIR:
#   ca.pem, ca.key          a self-signed CA (kept and reused if OUTDIR has one,
#                           so certificates made earlier stay valid)
#   server.pem, server.key  the coordinator's certificate, valid for each HOST
#                           (names or IP addresses) plus localhost and 127.0.0.1
#   client.pem, client.key  a client certificate, for servers started with
#                           --tls-client-ca (shared by workers and clients)
# Private keys are mode 0600. Keys are EC P-256; certificates last 5 years
# (the CA 10). Prints which file goes where.
set -euo pipefail

usage() {
  echo "usage: $0 OUTDIR [HOST...]   (HOST: the coordinator's DNS names and IP addresses)" >&2
  exit 2
}
[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
out=$1
shift
command -v openssl > /dev/null || {
  echo "spt-certs.sh: openssl not found (apt-get install openssl)" >&2
  exit 1
}

mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

is_ip() { [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $1 == *:* ]]; }

# subjectAltName list: the hosts given, then localhost and 127.0.0.1.
san="DNS:localhost,IP:127.0.0.1"
cn=localhost
for h in "$@"; do
  [ -n "$h" ] || continue
  if is_ip "$h"; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
  [ "$cn" != localhost ] || cn=$h
done

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2> /dev/null; }

if [ -s "$out/ca.key" ] && [ -s "$out/ca.pem" ]; then
  echo "reusing the CA in $out/ca.pem"
else
  newkey "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 -subj "/CN=spt lab CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.pem"
fi

# issue NAME CN EXTENSIONS: NAME.key and NAME.pem signed by the CA.
issue() {
  newkey "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$3" \
    > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial -days 1825 -sha256 \
    -extfile "$tmp/$1.ext" -out "$out/$1.pem" 2> /dev/null
}
issue server "$cn" "extendedKeyUsage=serverAuth
subjectAltName=$san"
issue client spt-client "extendedKeyUsage=clientAuth"
rm -f "$out/ca.srl"
chmod 600 "$out/ca.key" "$out/server.key" "$out/client.key"
chmod 644 "$out/ca.pem" "$out/server.pem" "$out/client.pem"

cat << EOF
certificates in $out (server valid for: ${san//,/ })
  coordinator:  spt-server --listen 0.0.0.0:7070 --tls-cert $out/server.pem --tls-key $out/server.key
                (add --tls-client-ca $out/ca.pem to require client certificates)
  workers and clients: copy ca.pem (and, with --tls-client-ca, client.pem and client.key), then
                spt-worker --server HOST:7070 --tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]
                spt-client --tls-ca ca.pem ...   (or SPT_TLS_CA / SPT_TLS_CERT / SPT_TLS_KEY)
  keep ca.key offline: it signs new certificates (rerun this script with more hosts; the CA is reused)
EOF
