/**
 * Errors thrown by @ocsp-lab/responder, each with a stable `code` and the offending value in
 * the message.
 */
import { OcspLabError } from "@ocsp-lab/ocsp";

/** Base class of this package's errors (an OcspLabError: stable `code`, message for humans). */
export class ResponderError extends OcspLabError {}

/** A behaviour (status override, delay, fault) with an invalid value. */
export class InvalidBehaviourError extends ResponderError {
  constructor(field: string, value: unknown, fix: string) {
    super("OCSP_LAB_RESPONDER_INVALID_BEHAVIOUR", `invalid ${field} ${JSON.stringify(value)}: ${fix}`);
  }
}

/** The responder was used before start() or after stop(). */
export class ResponderStateError extends ResponderError {
  constructor(message: string) {
    super("OCSP_LAB_RESPONDER_STATE", message);
  }
}

/** waitForRequests did not see the requests before its deadline. */
export class WaitTimeoutError extends ResponderError {
  constructor(what: string, timeoutMs: number) {
    super("OCSP_LAB_RESPONDER_WAIT_TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}`);
  }
}

/** A configuration file that cannot be read, parsed or validated; names the field and the fix. */
export class ConfigError extends ResponderError {
  constructor(file: string, field: string, problem: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_RESPONDER_CONFIG", `config ${file}: ${field ? `${field}: ` : ""}${problem}`, options);
  }
}

/**
 * The admin API would be reachable from other machines without a token: it shares the OCSP
 * port and that listens on a non-loopback address, with no `admin.token` and no
 * `admin.allow_unauthenticated: true`. Nothing was bound.
 */
export class AdminExposedError extends ResponderError {
  constructor(host: string) {
    super(
      "OCSP_LAB_RESPONDER_ADMIN_EXPOSED",
      `refusing to serve the admin API without a token on ${host}, which other machines can reach: set admin.token (8 characters or more), or move the admin API to its own port (admin.port, always on 127.0.0.1), or set admin.allow_unauthenticated: true if anyone who reaches ${host} may change the answers`,
    );
  }
}

/** A port or address the responder cannot listen on (in use, not this machine's, privileged); nothing is left bound. */
export class ListenError extends ResponderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_RESPONDER_LISTEN", message, options);
  }
}

/** A CA state folder (`cas`) that is not a folder or cannot be read. */
export class CaFolderError extends ResponderError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_RESPONDER_CA_FOLDER", message, options);
  }
}
