/**
 * Errors thrown by @ocsp-lab/ca. Every class has a stable `code` that callers (and the CLI) can
 * switch on; the message names the offending value and, where there is one, the fix. Bad
 * serials and CRLReasons throw @ocsp-lab/ocsp's InvalidSerialError and InvalidReasonError.
 */
import { OcspLabError } from "@ocsp-lab/ocsp";

/** Base class of the CA's errors: `code` is stable across releases, `message` is for humans. */
export class CaError extends OcspLabError {}

/** The state folder has no CA in it (run `init` first) or is unreadable. */
export class StateNotFoundError extends CaError {
  constructor(stateDir: string, options?: { cause?: unknown }) {
    super(
      "OCSP_LAB_CA_STATE_NOT_FOUND",
      `no CA in state folder ${stateDir}: create one with \`ocsp-ca init\` (or \`ocsp-lab up\`), or point OCSP_LAB_HOME at an existing one`,
      options,
    );
  }
}

/** The state folder exists but its database cannot be parsed or is of an unknown version. */
export class StateCorruptError extends CaError {
  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_CA_STATE_CORRUPT", `CA database ${file} is unreadable: ${detail}`, options);
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

/** The store lock could not be taken in time (another process holds it). */
export class LockTimeoutError extends CaError {
  constructor(lockFile: string, waitedMs: number) {
    super(
      "OCSP_LAB_CA_LOCK_TIMEOUT",
      `could not lock ${lockFile} within ${waitedMs} ms: another ocsp-lab process is writing; retry, or remove the lock folder (rm -r) if no such process runs`,
    );
  }
}
