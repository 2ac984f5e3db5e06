import type { CRLReason } from "./crl-reason.js";

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

/** The name of an unsuccessful OCSPResponseStatus: `malformedRequest`, `internalError`, `tryLater`, `sigRequired`, `unauthorized`. */
export type UnsuccessfulStatusName = Exclude<keyof typeof OCSPResponseStatus, "successful">;

/** Every unsuccessful OCSPResponseStatus name, in numeric order. */
export const UNSUCCESSFUL_STATUS_NAMES: readonly UnsuccessfulStatusName[] = [
  "malformedRequest",
  "internalError",
  "tryLater",
  "sigRequired",
  "unauthorized",
];

/**
 * RFC 6960 §4.2.1 RevokedInfo: when the certificate was revoked and, optionally, why.
 *
 * ```asn1
 * RevokedInfo ::= SEQUENCE {
 *     revocationTime              GeneralizedTime,
 *     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
 * ```
 */
export interface RevokedInfo {
  revocationTime: Date;
  /** RFC 5280 §5.3.1 CRLReason; absent when the responder gives none. */
  revocationReason?: CRLReason;
}

/**
 * RFC 6960 §4.2.1 CertStatus, the one status type of ocsp-lab: what the CA knows of a serial,
 * what a responder signs, what a response says and what a stapler staples.
 *
 * ```asn1
 * CertStatus ::= CHOICE {
 *     good        [0]     IMPLICIT NULL,
 *     revoked     [1]     IMPLICIT RevokedInfo,
 *     unknown     [2]     IMPLICIT UnknownInfo }
 * ```
 */
export type CertStatus = { status: "good" } | ({ status: "revoked" } & RevokedInfo) | { status: "unknown" };

/** The CHOICE alternative's name: `good`, `revoked` or `unknown` (as in reports and JSON). */
export type CertStatusName = CertStatus["status"];

/** Every CertStatus name, in the order of their context tags. */
export const CERT_STATUS_NAMES: readonly CertStatusName[] = ["good", "revoked", "unknown"];

/** The context tag number of each CertStatus alternative (RFC 6960 §4.2.1: [0] good, [1] revoked, [2] unknown). */
export enum CertStatusTag {
  good = 0,
  revoked = 1,
  unknown = 2,
}

/** Name of a CertStatus context tag number; any other tag reads as `unknown`. */
export function certStatusName(tag: number): CertStatusName {
  return tag === CertStatusTag.good ? "good" : tag === CertStatusTag.revoked ? "revoked" : "unknown";
}

/** Name of an OCSPResponseStatus value, e.g. `tryLater`; `responseStatus(4)` for an unassigned one. */
export function responseStatusName(status: number): string {
  return OCSPResponseStatus[status] ?? `responseStatus(${status})`;
}
