import { InvalidSerialError } from "./errors.js";

/**
 * Canonical form of a certificate serial (RFC 5280 §4.1.2.2 CertificateSerialNumber) for
 * lookups, file names and display: lowercase hex of whole bytes (as OpenSSL prints it), no
 * `0x`, `:` or spaces, no leading zero bytes (DER prepends 00 to keep an INTEGER positive, so
 * the same serial arrives with and without it). An odd number of digits gets one leading `0`,
 * so `f`, `0f` and `000f` are all `0f`: every place that takes a serial from a person (CLI,
 * admin API, config) or from DER goes through this one function.
 * @throws InvalidSerialError when the input is not hexadecimal.
 */
export function normalizeSerial(serial: string): string {
  const hex = serial.trim().toLowerCase().replace(/^0x/, "").replace(/[:\s]/g, "");
  if (!/^[0-9a-f]+$/.test(hex)) throw new InvalidSerialError(serial);
  let even = hex.length % 2 === 1 ? `0${hex}` : hex;
  while (even.length > 2 && even.startsWith("00")) even = even.slice(2);
  return even;
}

/** The canonical serial (normalizeSerial) of an INTEGER's content octets, as DER carries them. */
export function serialFromBytes(bytes: Uint8Array | ArrayBuffer): string {
  return normalizeSerial(Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString("hex") || "00");
}
