/**
 * RFC 6960 §4.2.1 OCSPResponseStatus, with the RFC's numeric values (4 is unused).
 *
 * ```asn1
 * OCSPResponseStatus ::= ENUMERATED {
 *     successful            (0),  -- Response has valid confirmations
 *     malformedRequest      (1),  -- Illegal confirmation request
 *     internalError         (2),  -- Internal error in issuer
 *     tryLater              (3),  -- Try again later
 *                                 -- (4) is not used
 *     sigRequired           (5),  -- Must sign the request
 *     unauthorized          (6)   -- Request unauthorized
 * }
 * ```
 */
export enum OCSPResponseStatus {
  successful = 0,
  malformedRequest = 1,
  internalError = 2,
  tryLater = 3,
  sigRequired = 5,
  unauthorized = 6,
}

/**
 * RFC 6960 §4.2.1 CertStatus, by its context tag number.
 *
 * ```asn1
 * CertStatus ::= CHOICE {
 *     good        [0]     IMPLICIT NULL,
 *     revoked     [1]     IMPLICIT RevokedInfo,
 *     unknown     [2]     IMPLICIT UnknownInfo }
 * ```
 */
export enum CertStatus {
  good = 0,
  revoked = 1,
  unknown = 2,
}

/** The lowercase name used in reports and JSON: `good`, `revoked`, `unknown`. */
export type CertStatusName = "good" | "revoked" | "unknown";

/** Name of a CertStatus value. */
export function certStatusName(status: CertStatus): CertStatusName {
  return status === CertStatus.good ? "good" : status === CertStatus.revoked ? "revoked" : "unknown";
}

/** Name of an OCSPResponseStatus value, e.g. `tryLater`. */
export function responseStatusName(status: number): string {
  return OCSPResponseStatus[status] ?? `responseStatus(${status})`;
}
