#!/usr/bin/env bash
# Usage: scripts/expect-ocsp.sh RESPONDER_URL ISSUER CERT STATUS [RESPOUT] [SECONDS]
# Asks RESPONDER_URL about CERT with `openssl ocsp` (no nonce, the response verified against
# ISSUER, a root here) until it answers STATUS (good, revoked, unknown), for up to SECONDS
# (default 20). Prints openssl's status line and exits 0, writing the DER response to RESPOUT
# when given; or prints the last answer and exits 1. The responder of `ocsp-lab up` follows the
# CA's files, so a certificate just issued or revoked by another process shows a moment later:
# the README's recipes wait with this before a server fetches.
set -uo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 RESPONDER_URL ISSUER CERT good|revoked|unknown [RESPOUT] [SECONDS]" >&2
  exit 2
fi
url=$1 issuer=$2 cert=$3 want=$4 respout=${5:-} seconds=${6:-20}
deadline=$((SECONDS + seconds))
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while :; do
  out=$(openssl ocsp -issuer "$issuer" -cert "$cert" -url "$url" -CAfile "$issuer" -no_nonce -respout "$tmp" 2>&1)
  got=$(grep -m1 -o "^$cert: [a-z]*" <<<"$out" | sed 's/.*: //')
  if [ "$got" = "$want" ] && grep -q '^Response verify OK' <<<"$out"; then
    [ -n "$respout" ] && cp "$tmp" "$respout"
    echo "$url answers $want for $cert"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "$url: expected $want for $cert, got: ${got:-$out}" >&2
    exit 1
  fi
  sleep 0.25
done
