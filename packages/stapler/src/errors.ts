/**
 * Errors thrown by @ocsp-lab/stapler, each with a stable `code` and the offending value in the
 * message.
 */

/** Base class. */
export class StaplerError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A polling policy value that is missing, of the wrong type or out of range. */
export class InvalidPolicyError extends StaplerError {
  constructor(field: string, value: unknown, fix: string) {
    super("OCSP_LAB_STAPLER_INVALID_POLICY", `invalid ${field} ${JSON.stringify(value)}: ${fix}`);
  }
}

/** The certificate cannot be stapled: no issuer, no OCSP URL, unreadable PEM. */
export class CertificateSetupError extends StaplerError {
  constructor(what: string, value: string, fix: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STAPLER_CERTIFICATE", `${what} ${JSON.stringify(value)}: ${fix}`, options);
  }
}

/** How a fetch failed. */
export type FetchFailureKind = "timeout" | "network" | "http" | "invalid";

/**
 * One OCSP fetch failed: the responder timed out (`response_timeout`), the connection failed,
 * the HTTP status was not 200, or the response did not verify (then `cause` is the
 * OcspVerifyError and its reason is in the message).
 */
export class FetchError extends StaplerError {
  readonly kind: FetchFailureKind;

  constructor(kind: FetchFailureKind, message: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STAPLER_FETCH", message, options);
    this.kind = kind;
  }
}
