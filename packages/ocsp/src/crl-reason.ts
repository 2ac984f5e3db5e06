import { InvalidReasonError } from "./errors.js";

/**
 * RFC 5280 §5.3.1 CRLReason, with the RFC's numeric values (7 is unused).
 *
 * ```asn1
 * CRLReason ::= ENUMERATED {
 *      unspecified             (0),
 *      keyCompromise           (1),
 *      cACompromise            (2),
 *      affiliationChanged      (3),
 *      superseded              (4),
 *      cessationOfOperation    (5),
 *      certificateHold         (6),
 *           -- value 7 is not used
 *      removeFromCRL           (8),
 *      privilegeWithdrawn      (9),
 *      aACompromise           (10) }
 * ```
 */
export enum CRLReason {
  unspecified = 0,
  keyCompromise = 1,
  cACompromise = 2,
  affiliationChanged = 3,
  superseded = 4,
  cessationOfOperation = 5,
  certificateHold = 6,
  removeFromCRL = 8,
  privilegeWithdrawn = 9,
  aACompromise = 10,
}

/** The RFC 5280 names, in numeric order. */
export const CRL_REASON_NAMES: readonly string[] = Object.keys(CRLReason).filter((k) => Number.isNaN(Number(k)));

/**
 * Parse a CRLReason given as its RFC name (case-insensitive, `-`/`_` ignored: `key-compromise`
 * works) or its number.
 * @throws InvalidReasonError when it is neither.
 */
export function parseCrlReason(input: string | number): CRLReason {
  if (typeof input === "number" || /^\d+$/.test(String(input).trim())) {
    const n = Number(input);
    if (CRLReason[n] !== undefined) return n as CRLReason;
    throw new InvalidReasonError(String(input), CRL_REASON_NAMES);
  }
  const wanted = String(input)
    .replace(/[-_\s]/g, "")
    .toLowerCase();
  for (const name of CRL_REASON_NAMES) {
    if (name.toLowerCase() === wanted) return CRLReason[name as keyof typeof CRLReason];
  }
  throw new InvalidReasonError(String(input), CRL_REASON_NAMES);
}

/** The RFC name of a reason, e.g. `keyCompromise`. */
export function crlReasonName(reason: CRLReason): string {
  return CRLReason[reason] ?? `reason(${reason})`;
}
