/**
 * Errors thrown by @ocsp-lab/harness, each with a stable `code` and the offending value in the
 * message.
 */
import { OcspLabError } from "@ocsp-lab/ocsp";

/** Base class of this package's errors (an OcspLabError: stable `code`, message for humans). */
export class HarnessError extends OcspLabError {}

/** A command-line or API argument that names nothing we have (scenario, client...). */
export class UsageError extends HarnessError {
  constructor(what: string, value: string, allowed: readonly string[]) {
    super("OCSP_LAB_USAGE", `unknown ${what} "${value}": use one of ${allowed.join(", ")}`);
  }
}

/** Reporters that cannot all write where they were told (several to standard output). */
export class ReporterError extends HarnessError {
  constructor(reporters: readonly string[]) {
    super(
      "OCSP_LAB_REPORTER",
      `reporters ${reporters.join(" and ")} cannot share standard output: give --output <dir> to write each to its own file, or one of them alone`,
    );
  }
}

/** A scenario waited for a stapler state that did not come before its deadline. */
export class ScenarioTimeoutError extends HarnessError {
  constructor(scenario: string, waitingFor: string, timeoutMs: number) {
    super("OCSP_LAB_SCENARIO_TIMEOUT", `scenario ${scenario}: no ${waitingFor} within ${timeoutMs} ms`);
  }
}

/** A port asked for is taken by another process. */
export class PortInUseError extends HarnessError {
  constructor(what: string, port: number, flag: string, options?: { cause?: unknown }) {
    super(
      "OCSP_LAB_PORT_IN_USE",
      `${what} port ${port} is in use: choose another with ${flag}, or leave it out for a free one`,
      options,
    );
  }
}

/** A scenario file that cannot be read or does not match the scenario schema. */
export class ScenarioFileError extends HarnessError {
  /**
   * @param file the path as given; @param field the dotted path of the bad field (`timeline.1.at`),
   * empty for the file as a whole; @param problem what is wrong, with the offending value.
   */
  constructor(file: string, field: string, problem: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_SCENARIO_FILE", `${file}: ${field ? `${field}: ` : ""}${problem}`, options);
  }
}

/** `ocsp-lab set` found no running `ocsp-lab up` on the state folder. */
export class LabNotRunningError extends HarnessError {
  constructor(stateDir: string, why: string) {
    super(
      "OCSP_LAB_NOT_RUNNING",
      `no running ocsp-lab up for state folder ${stateDir} (${why}): start one with ocsp-lab up --state-dir ${stateDir}`,
    );
  }
}

/** An admin API of the running lab refused a request or could not be reached. */
export class LabAdminError extends HarnessError {
  constructor(method: string, url: string, problem: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_ADMIN", `${method} ${url}: ${problem}`, options);
  }
}

/** An OcspLab builder option out of range (a negative validity, a bad key type...). */
export class LabOptionError extends HarnessError {
  /** @param option the builder method (`withResponseValidity`); @param value the offending value; @param fix what to give instead. */
  constructor(option: string, value: unknown, fix: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_OPTION", `${option}(${JSON.stringify(value) ?? String(value)}): ${fix}`, options);
  }
}

/**
 * A StartedOcspLab asked for something it does not have: a certificate it serves no stapler
 * for, the default server of a lab started without one, anything after stop().
 */
export class LabStateError extends HarnessError {
  constructor(problem: string) {
    super("OCSP_LAB_STATE", problem);
  }
}

/** `lab.staple(leaf).becomes(state)` saw no such staple before its deadline. */
export class StapleTimeoutError extends HarnessError {
  /**
   * @param where which certificate and server (`serial 0a1b… at 127.0.0.1:41234`);
   * @param wanted the staple state waited for; @param timeoutMs the deadline, in real
   * milliseconds; @param seen what the stapler served meanwhile, oldest first.
   */
  constructor(where: string, wanted: string, timeoutMs: number, seen: readonly string[]) {
    super(
      "OCSP_LAB_STAPLE_TIMEOUT",
      `${where}: no "${wanted}" staple within ${timeoutMs} ms; the stapler served ${seen.length > 0 ? seen.join(" → ") : "nothing it reported"}`,
    );
  }
}

/** A timeline step that cannot be applied to this lab (`revoke_issuer` on a root-issued certificate...). */
export class InvalidStepError extends HarnessError {
  constructor(action: string, problem: string) {
    super("OCSP_LAB_INVALID_STEP", `timeline step ${action}: ${problem}`);
  }
}

/**
 * The lab's state folder cannot be used: it is a file, not writable (read-only file system,
 * another user's), or a file in it cannot be read. Names the folder, what is wrong and the fix.
 */
export class StateDirError extends HarnessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_STATE_DIR", message, options);
  }
}

/** A server under test (nginx, Apache, HAProxy...) that would not start, reload or stop as asked. */
export class ServerUnderTestError extends HarnessError {
  /** What the server printed and the tail of its log, for the report's detail. */
  readonly log: string;
  constructor(server: string, what: string, log = "") {
    const last = log.trim().split("\n").filter(Boolean).slice(-3).join(" | ");
    super("OCSP_LAB_SERVER", `server ${server} ${what}${last ? `: ${last}` : ""}`);
    this.log = log;
  }
}

/** A command-template client (`--client-cmd name=template`) that cannot be used as given. */
export class CommandClientError extends HarnessError {
  /** @param where `--client-cmd` or the client file; @param problem what is wrong, with the offending value. */
  constructor(where: string, problem: string) {
    super("OCSP_LAB_CLIENT_CMD", `${where}: ${problem}`);
  }
}

/** A client file that cannot be read or does not match the client file schema. */
export class ClientFileError extends HarnessError {
  /**
   * @param file the path as given; @param field the dotted path of the bad field (`refused.0.output`),
   * empty for the file as a whole; @param problem what is wrong, with the offending value.
   */
  constructor(file: string, field: string, problem: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_CLIENT_FILE", `${file}: ${field ? `${field}: ` : ""}${problem}`, options);
  }
}

/**
 * The lab's container (OcspLabContainer) or a container server target that could not be
 * started or read: no JSON line, a JSON line that does not parse, a target that needs a file it
 * was not given.
 */
export class ContainerError extends HarnessError {
  /** @param what the container or target (`OcspLabContainer ocsp-lab:latest`, `container target haproxy`); @param problem what is wrong, with the offending value. */
  constructor(what: string, problem: string, options?: { cause?: unknown }) {
    super("OCSP_LAB_CONTAINER", `${what}: ${problem}`, options);
  }
}

/** `--server host:port` without the certificate it serves (and the up whose responder that certificate names). */
export class ServerAttachError extends HarnessError {
  constructor(server: string) {
    super(
      "OCSP_LAB_SERVER_ATTACH",
      `server ${server} is not one the harness starts: give --server-cert <its certificate's PEM file>, issued by the running ocsp-lab up (ocsp-ca issue --ocsp-url <its responder>)`,
    );
  }
}
