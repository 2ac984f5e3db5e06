import { randomBytes } from "node:crypto";
import { normalizeSerial } from "@ocsp-lab/ocsp";
import { InvalidArgumentError } from "./errors.js";

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

/**
 * A serial chosen by the caller, checked for a certificate to carry: its canonical form
 * (`normalizeSerial`: lowercase hex of whole bytes, no leading zero bytes), which must be
 * positive and at most 20 octets as a DER INTEGER (RFC 5280 §4.1.2.2; a first byte of 0x80 or
 * more costs one 00 octet in DER).
 * @throws InvalidSerialError when it is not hexadecimal; InvalidArgumentError when it is zero
 * or longer than 20 octets.
 */
export function checkedSerial(serial: string): string {
  const canonical = normalizeSerial(serial);
  if (/^0+$/.test(canonical))
    throw new InvalidArgumentError("serial", serial, "RFC 5280 §4.1.2.2 wants a positive integer; give a non-zero serial");
  const octets = canonical.length / 2 + (parseInt(canonical.slice(0, 2), 16) >= 0x80 ? 1 : 0);
  if (octets > 20)
    throw new InvalidArgumentError(
      "serial",
      serial,
      `it takes ${octets} octets as a DER INTEGER; RFC 5280 §4.1.2.2 allows at most 20`,
    );
  return canonical;
}
