/**
 * Errors thrown by @ocsp-lab/ca. Every class has a stable `code` that callers (and the CLI) can
 * switch on; the message names the offending value and, where there is one, the fix. Bad
 * serials and CRLReasons throw @ocsp-lab/ocsp's InvalidSerialError and InvalidReasonError.
 */
import { OcspLabError } from "@ocsp-lab/ocsp";

/** Base class of the CA's errors: `code` is stable across releases, `message` is for humans. */
export class CaError extends OcspLabError {}

/** The state folder has no CA in it (run `init` first): it has no `ca.json`. */
export class StateNotFoundError extends CaError {
  /** The state folder. */
  readonly stateDir: string;

  constructor(stateDir: string, options?: { cause?: unknown }) {
    super(
      "OCSP_LAB_CA_STATE_NOT_FOUND",
      `no CA in state folder ${stateDir}: create one with \`ocsp-ca init\` (or \`ocsp-lab up\`), or point OCSP_LAB_HOME at an existing one`,
      options,
    );
    this.stateDir = stateDir;
  }
}

/**
 * The database `ca.json` exists but cannot be used: it cannot be read, is not JSON, is of an
 * unknown version, or parses but is inconsistent (`detail` names the field and what is wrong
 * with it, e.g. `"root" names serial ab12, which has no record in "certificates"`).
 */
export class StateCorruptError extends CaError {
  /** Absolute path of the database file. */
  readonly file: string;
  /** What is wrong, without the file name. */
  readonly detail: string;

  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_CA_STATE_CORRUPT", `CA database ${file} is unusable: ${detail}`, options);
    this.file = file;
    this.detail = detail;
  }
}

/** `init` was asked to create a CA where one already exists. */
export class StateExistsError extends CaError {
  constructor(stateDir: string) {
    super(
      "OCSP_LAB_CA_STATE_EXISTS",
      `a CA already exists in ${stateDir}: open it instead, or choose another folder with OCSP_LAB_HOME`,
    );
  }
}

/** No certificate with this serial was issued by the CA. */
export class UnknownSerialError extends CaError {
  constructor(serial: string) {
    super(
      "OCSP_LAB_CA_UNKNOWN_SERIAL",
      `no certificate with serial ${serial} in this CA: list the issued serials in ca.json of the state folder`,
    );
  }
}

/** Any other bad argument (SAN, validity, key type...). */
export class InvalidArgumentError extends CaError {
  constructor(what: string, value: unknown, fix: string) {
    super("OCSP_LAB_CA_INVALID_ARGUMENT", `invalid ${what} ${JSON.stringify(value)}: ${fix}`);
  }
}

/** A PKCS#10 certificate request that cannot be parsed or whose signature does not verify. */
export class InvalidCsrError extends CaError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super(
      "OCSP_LAB_CA_INVALID_CSR",
      `invalid certificate request: ${detail}; create one with \`openssl req -new -key key.pem -subj /CN=name -out req.csr\``,
      options,
    );
  }
}

/**
 * The store lock could not be taken in time: another process holds it. `holder` describes it
 * and what to do (e.g. `it is held by pid 4242 since 2026-01-02T03:04:05.000Z, which is still
 * running: …`); the lock of a process that is still running on this machine is never taken
 * over, however long it stalls.
 */
export class LockTimeoutError extends CaError {
  /** Absolute path of the lock file. */
  readonly lockFile: string;

  constructor(lockFile: string, waitedMs: number, holder: string) {
    super("OCSP_LAB_CA_LOCK_TIMEOUT", `could not lock ${lockFile} within ${formatSeconds(waitedMs)}: ${holder}`);
    this.lockFile = lockFile;
  }
}

/**
 * The store lock this process held was taken from it (removed by hand, or taken over as stale
 * by a process on another machine while this one stalled) before its write landed. Nothing of
 * the write reached the database: the store is as the other process left it.
 */
export class LockLostError extends CaError {
  /** Absolute path of the lock file. */
  readonly lockFile: string;

  constructor(lockFile: string, since: string, now: string) {
    super(
      "OCSP_LAB_CA_LOCK_LOST",
      `the store lock ${lockFile} this process took at ${since} is no longer its own (${now}): nothing was written; check the state (ocsp-ca list) and retry`,
    );
    this.lockFile = lockFile;
  }
}

/**
 * The database changed on disk while this process held the store lock (a tool that writes
 * `ca.json` without taking the lock, or an edit by hand): the write that was about to replace
 * it is dropped, so the other change is kept. Nothing of this write reached the database.
 */
export class StoreConflictError extends CaError {
  /** Absolute path of the database file. */
  readonly file: string;

  constructor(file: string, readGeneration: number, diskGeneration: number | undefined) {
    super(
      "OCSP_LAB_CA_STORE_CONFLICT",
      `${file} changed while this process held the store lock (generation ${readGeneration} when read, ${diskGeneration ?? "unreadable"} now; written without the lock?): nothing was written; retry`,
    );
    this.file = file;
  }
}

/**
 * A revoke (or hold) of a certificate that is already revoked (or on hold): the first
 * revocation's reason and time stand unless the call says `force` (CLI `--force`). A hold
 * followed by a final reason is not this error: that is how a hold is made permanent (RFC 5280
 * §5.3.1).
 */
export class AlreadyRevokedError extends CaError {
  /** Canonical serial. */
  readonly serial: string;

  constructor(serial: string, reasonName: string, time: string) {
    const held = reasonName === "certificateHold";
    super(
      "OCSP_LAB_CA_ALREADY_REVOKED",
      `serial ${serial} is already ${held ? "on hold" : "revoked"} (${reasonName} at ${time}); the first ${held ? "hold" : "revocation"} stands: pass --force (library: force: true) to replace its reason and time`,
    );
    this.serial = serial;
  }
}

/**
 * A change landed in the database, but what follows it failed: republishing the CRL files
 * (the lock was lost after the database write, or the disk refused a file). The change stands
 * (an OCSP responder serves it); the CRL files show the previous state until the next
 * revocation change or `ocsp-ca crl --refresh`. Delivered as a warning (CaOpenOptions.onWarning),
 * never thrown: the operation itself succeeded.
 */
export class CrlNotPublishedError extends CaError {
  constructor(generation: number, cause: unknown) {
    super(
      "OCSP_LAB_CA_CRL_NOT_PUBLISHED",
      `the change is recorded (ca.json generation ${generation}), but its CRL files were not republished: ${cause instanceof Error ? cause.message : String(cause)}; publish them with \`ocsp-ca crl --refresh\``,
      { cause },
    );
  }
}

/** `1.5 s`, `10 s`: a duration in ms as seconds for messages. */
function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
