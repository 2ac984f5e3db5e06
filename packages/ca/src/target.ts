import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { InvalidArgumentError } from "./errors.js";
import { normalizeSerial } from "@ocsp-lab/ocsp";

/**
 * The canonical serial named by a command-line target: the path of a PEM or DER certificate
 * file, or a hexadecimal serial (`:` separators and `0x` allowed).
 * @throws InvalidArgumentError when it is neither a readable certificate nor hexadecimal.
 */
export async function serialOfTarget(target: string): Promise<string> {
  let bytes: Buffer | undefined;
  try {
    bytes = await fs.readFile(target);
  } catch {
    bytes = undefined;
  }
  if (bytes !== undefined) {
    try {
      const text = bytes.toString("utf8");
      const cert = text.includes("-----BEGIN") ? new x509.X509Certificate(text) : new x509.X509Certificate(new Uint8Array(bytes));
      return normalizeSerial(cert.serialNumber);
    } catch {
      throw new InvalidArgumentError("certificate file", target, "the file is not a PEM or DER certificate");
    }
  }
  try {
    return normalizeSerial(target);
  } catch {
    throw new InvalidArgumentError(
      "serial or certificate file",
      target,
      "give a hexadecimal serial or the path of a certificate file",
    );
  }
}
