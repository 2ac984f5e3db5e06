/**
 * Errors thrown by @ocsp-lab/ocsp, and the base class every ocsp-lab package's `errors.ts`
 * extends. Every class has a stable `code` that callers (and the commands) switch on; the
 * message names the offending value and, where there is one, the fix.
 */

/**
 * Base class of every ocsp-lab error: `code` is stable across releases (`OCSP_LAB_*`, which the
 * commands recognise as "ours" and print as one line), `message` is for humans, `cause` keeps
 * the internal reason apart from the user-facing message.
 */
export class OcspLabError extends Error {
  /** Stable machine-readable code, e.g. `OCSP_LAB_OCSP_DECODE`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A serial number that is not hexadecimal. */
export class InvalidSerialError extends OcspLabError {
  constructor(serial: string) {
    super("OCSP_LAB_CA_INVALID_SERIAL", `invalid serial "${serial}": give it in hexadecimal, e.g. 3f9a0c...`);
  }
}

/** A value that is not an RFC 5280 CRLReason name or number. */
export class InvalidReasonError extends OcspLabError {
  constructor(reason: string, allowed: readonly string[]) {
    super("OCSP_LAB_CA_INVALID_REASON", `unknown CRLReason "${reason}": use one of ${allowed.join(", ")}`);
  }
}

/** An OCSP message could not be decoded (bad DER, wrong structure). */
export class OcspDecodeError extends OcspLabError {
  constructor(what: string, detail: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_OCSP_DECODE", `cannot decode ${what}: ${detail}`, options);
  }
}

/**
 * Reasons an OCSP response fails verification; stable strings used in reports
 * (`refused: bad signature`...).
 */
export type OcspVerifyFailure =
  | "malformed"
  | "not successful"
  | "wrong certificate"
  | "bad signature"
  | "unauthorized signer"
  | "stale"
  | "not yet valid"
  | "no nextUpdate"
  | "nonce mismatch"
  | "unexpected responses"
  | "outlives certificate";

/** An OCSP response failed verification; `reason` says which check failed. */
export class OcspVerifyError extends OcspLabError {
  readonly reason: OcspVerifyFailure;

  constructor(reason: OcspVerifyFailure, detail: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_OCSP_VERIFY", `OCSP response rejected (${reason}): ${detail}`, options);
    this.reason = reason;
  }
}
