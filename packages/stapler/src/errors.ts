/**
 * Errors thrown by @ocsp-lab/stapler, each with a stable `code` and the offending value in the
 * message.
 */
import { OcspLabError } from "@ocsp-lab/ocsp";

/** Base class of this package's errors (an OcspLabError: stable `code`, message for humans). */
export class StaplerError extends OcspLabError {}

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
  /** For `invalid`: the DER the responder sent (the `staple-errors` policy staples unsuccessful answers as received). */
  readonly response: Uint8Array | undefined;

  constructor(kind: FetchFailureKind, message: string, options?: { cause?: unknown; response?: Uint8Array }) {
    super("OCSP_LAB_STAPLER_FETCH", message, options);
    this.kind = kind;
    this.response = options?.response;
  }
}

/** A configuration file that cannot be read or does not validate; names the file, the field and the fix. */
export class ConfigError extends StaplerError {
  constructor(file: string, field: string, fix: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STAPLER_CONFIG", `config ${file}: ${field ? `${field}: ` : ""}${fix}`, options);
  }
}

/** A reload found certificate or key files it cannot serve; the previous ones stay in service. */
export class ReloadError extends StaplerError {
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STAPLER_RELOAD", `reload kept the previous certificates: ${JSON.stringify(file)} ${reason}`, options);
  }
}

/** A staple source (`withStapleSource`, `staple_source`) that is not one of the known kinds or lacks its bytes or path. */
export class InvalidStapleSourceError extends StaplerError {
  constructor(value: unknown, fix: string) {
    super("OCSP_LAB_STAPLER_STAPLE_SOURCE", `invalid staple source ${JSON.stringify(value)}: ${fix}`);
  }
}

/**
 * The admin endpoint would be reachable from other machines without a token: `admin.host` is
 * not a loopback address, with no `admin.token` and no `admin.allow_unauthenticated: true`.
 * Nothing was bound.
 */
export class AdminExposedError extends StaplerError {
  constructor(host: string) {
    super(
      "OCSP_LAB_STAPLER_ADMIN_EXPOSED",
      `refusing to serve the admin endpoint without a token on ${host}, which other machines can reach: set admin.token (8 characters or more), or leave admin.host out (127.0.0.1), or set admin.allow_unauthenticated: true if anyone who reaches ${host} may reload and query`,
    );
  }
}

/** The state folder where staples are persisted (`state_dir`) cannot be used: a file, read-only, not ours. */
export class StateDirError extends StaplerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STAPLER_STATE_DIR", message, options);
  }
}
