import { randomBytes } from "node:crypto";
import { InvalidSerialError } from "./errors.js";

/**
 * A fresh certificate serial number: 16 random bytes (RFC 5280 §4.1.2.2 allows up to 20 octets;
 * CA/B Forum asks for at least 64 random bits), first byte in 0x01..0x7f so the INTEGER is
 * positive and always exactly 16 bytes long. Returned as lowercase hex.
 */
export function newSerial(random: (n: number) => Uint8Array = randomBytes): string {
  const bytes = Uint8Array.from(random(16));
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return Buffer.from(bytes).toString("hex");
}

/**
 * Canonical form of a serial for lookups and display: lowercase hex of whole bytes (as OpenSSL
 * prints it), no `0x`, `:` or spaces, no leading zero bytes (DER prepends 00 to keep an INTEGER
 * positive, so the same serial arrives with and without it).
 * @throws InvalidSerialError when the input is not hexadecimal.
 */
export function normalizeSerial(serial: string): string {
  const hex = serial.trim().toLowerCase().replace(/^0x/, "").replace(/[:\s]/g, "");
  if (!/^[0-9a-f]+$/.test(hex)) throw new InvalidSerialError(serial);
  let even = hex.length % 2 === 1 ? `0${hex}` : hex;
  while (even.length > 2 && even.startsWith("00")) even = even.slice(2);
  return even;
}
