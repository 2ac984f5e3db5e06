#!/usr/bin/env bash
# Usage: scripts/expect-staple.sh HOST:PORT CAFILE STATUS [SECONDS]
# Handshakes with `openssl s_client -status` (SNI localhost, chain verified against CAFILE) until
# the stapled response says "Cert Status: STATUS" (good, revoked, unknown), or with STATUS none
# until the handshake has no staple, for up to SECONDS (default 20; 0: one handshake only).
# Prints what was stapled and exits 0, or prints what the last handshake stapled and exits 1. The README's recipes use it; nothing in it is specific to them.
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 HOST:PORT CAFILE good|revoked|unknown|none [SECONDS]" >&2
  exit 2
fi
target=$1 cafile=$2 want=$3 seconds=${4:-20}
deadline=$((SECONDS + seconds))
while :; do
  out=$(openssl s_client -connect "$target" -servername localhost -status -CAfile "$cafile" </dev/null 2>&1)
  if grep -q 'Cert Status: ' <<<"$out"; then
    got=$(grep -m1 -o 'Cert Status: [a-z]*' <<<"$out" | sed 's/.*: //')
  elif grep -q 'OCSP response: no response sent' <<<"$out"; then
    got=none
  else
    got="no handshake: $(tail -n 3 <<<"$out")"
  fi
  if [ "$got" = "$want" ]; then
    [ "$got" = none ] && echo "$target staples nothing" || echo "$target staples Cert Status: $got"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "$target: expected Cert Status: $want, got: $got" >&2
    exit 1
  fi
  sleep 0.25
done
