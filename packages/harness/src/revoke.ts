import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { CRLReason, CertificateAuthority, crlReasonName, normalizeSerial, parseCrlReason, type CertificateRecord } from "@ocsp-lab/ca";
import { RevokeTargetError } from "./errors.js";

/** Options of revokeCertificate. */
export interface RevokeOptions {
  /** State folder of the CA. */
  stateDir: string;
  /** A hex serial, or the path of a PEM certificate issued by the CA. */
  target: string;
  /** RFC 5280 CRLReason name or number; default unspecified. */
  reason?: string;
  /** Revocation time; default now. */
  time?: Date;
}

/**
 * Revoke a certificate of the CA in `stateDir`, by serial or certificate file. A running
 * responder on the same state folder answers `revoked` within a second.
 * @throws RevokeTargetError when the target is neither a readable certificate nor hex;
 * InvalidReasonError for a bad reason; UnknownSerialError when the CA did not issue it;
 * StateNotFoundError when there is no CA.
 */
export async function revokeCertificate(options: RevokeOptions): Promise<CertificateRecord> {
  const reason = options.reason === undefined ? CRLReason.unspecified : parseCrlReason(options.reason);
  const serial = await serialOf(options.target);
  const ca = await CertificateAuthority.open(options.stateDir);
  try {
    return await ca.revoke(serial, { reason, ...(options.time ? { time: options.time } : {}) });
  } finally {
    ca.close();
  }
}

async function serialOf(target: string): Promise<string> {
  let text: string | undefined;
  try {
    text = await fs.readFile(target, "utf8");
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    try {
      return normalizeSerial(new x509.X509Certificate(text).serialNumber);
    } catch {
      throw new RevokeTargetError(target, "the file is not a PEM certificate");
    }
  }
  try {
    return normalizeSerial(target);
  } catch {
    throw new RevokeTargetError(target, "it is neither a certificate file nor a hexadecimal serial");
  }
}

/** One line describing a revocation, for the CLI. */
export function describeRevocation(rec: CertificateRecord): string {
  const r = rec.revocation!;
  return `revoked serial ${rec.serial} (${rec.subject}) reason ${crlReasonName(r.reason)} at ${r.time}`;
}
