import { randomBytes } from "node:crypto";

/**
 * A fresh certificate serial number: 16 random bytes (RFC 5280 §4.1.2.2 allows up to 20 octets;
 * CA/B Forum asks for at least 64 random bits), first byte in 0x01..0x7f so the INTEGER is
 * positive and always exactly 16 bytes long. Returned as lowercase hex (already canonical in
 * the sense of `normalizeSerial` from @ocsp-lab/ocsp).
 */
export function newSerial(random: (n: number) => Uint8Array = randomBytes): string {
  const bytes = Uint8Array.from(random(16));
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return Buffer.from(bytes).toString("hex");
}
