import { CertificateAuthority, describeLockHolder, serialOfTarget, type CertificateRecord } from "@ocsp-lab/ca";
import { CRLReason, crlReasonName, parseCrlReason } from "@ocsp-lab/ocsp";

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
  /** Replace the reason and time of a certificate already revoked (see CertificateAuthority.revoke). */
  force?: boolean;
  /** Called once when the store lock is busy for a second (another writer holds it), with the line to show. */
  onLockWait?: (line: string) => void;
}

/**
 * Revoke a certificate of the CA in `stateDir`, by serial or certificate file. A running
 * responder on the same state folder answers `revoked` within a second.
 * @throws InvalidArgumentError when the target is neither a readable certificate nor hex;
 * InvalidReasonError for a bad reason; UnknownSerialError when the CA did not issue it;
 * StateNotFoundError when there is no CA; AlreadyRevokedError when it is revoked already
 * (unless `force`; a certificate on hold may be revoked for a final reason, RFC 5280 §5.3.1).
 */
export async function revokeCertificate(options: RevokeOptions): Promise<CertificateRecord> {
  const reason = options.reason === undefined ? CRLReason.unspecified : parseCrlReason(options.reason);
  const serial = await serialOfTarget(options.target);
  const onLockWait = options.onLockWait;
  const ca = await CertificateAuthority.open(options.stateDir, {
    ...(onLockWait ? { onLockWait: (holder) => onLockWait(describeLockHolder(holder)) } : {}),
  });
  try {
    return await ca.revoke(serial, {
      reason,
      ...(options.time ? { time: options.time } : {}),
      ...(options.force ? { force: true } : {}),
    });
  } finally {
    ca.close();
  }
}

/** One line describing a revocation, for the CLI. */
export function describeRevocation(rec: CertificateRecord): string {
  const r = rec.revocation!;
  return `revoked serial ${rec.serial} (${rec.subject}) reason ${crlReasonName(r.reason)} at ${r.time}`;
}
