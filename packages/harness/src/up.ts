import { constants, promises as fs } from "node:fs";
import { join } from "node:path";
import { describeSystemError, isSystemError } from "@ocsp-lab/cli-support";
import type { Logger } from "pino";
import { crlReasonName } from "@ocsp-lab/ocsp";
import type { StapleSnapshot, PollingPolicyInput } from "@ocsp-lab/stapler";
import { StateDirError } from "./errors.js";
import { ADMIN_TOKEN_ENV } from "./running.js";
import { LAB_FILE, startLab, type Lab } from "./lab.js";
import { applyLabStates, loadLabStates, type SavedLabState } from "./set.js";

/**
 * Polling policy of a persistent lab, in seconds: fast enough that a revocation shows in the
 * staple within ten seconds while someone is watching, without hammering the responder.
 */
export const UP_POLICY = {
  query_frequency: 10,
  response_timeout: 1,
  recovery_frequency: 2,
  recovery_max_tries: 3,
} as const satisfies PollingPolicyInput;

/** Options of startPersistentLab. */
export interface UpOptions {
  stateDir: string;
  policy?: PollingPolicyInput;
  responderPort?: number;
  staplerPort?: number;
  logger?: Logger;
  /** Issue a fresh server certificate instead of reusing the one recorded in lab.json (`up --new-cert`). */
  newCert?: boolean;
  /**
   * Bearer token (8 characters or more) of the responder's admin API and /metrics and of the
   * stapler's admin endpoint (`up --admin-token`); default none.
   */
  adminToken?: string;
}

/** What `ocsp-lab up --json` prints once ready: everything a script needs to drive the lab. */
export interface LabEndpoints {
  stateDir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  chainFile: string;
  fullchainFile: string;
  serial: string;
  responderUrl: string;
  /** The responder's admin API (behaviours, request log) and Prometheus metrics. */
  adminUrl: string;
  metricsUrl: string;
  staplerHost: string;
  staplerPort: number;
  staplerUrl: string;
  /** The stapler's admin endpoint: `GET /admin/ocsp` (staple status), `POST /admin/ocsp/query`, `GET /metrics`. */
  staplerAdminUrl: string;
  /**
   * Whether both admin APIs (and the responder's /metrics) need `Authorization: Bearer <token>`
   * (`up --admin-token`); the token itself is never printed.
   */
  adminTokenRequired: boolean;
  serverName: string;
  /** Policy in force, in seconds. */
  policy: PollingPolicyInput;
  /** States kept from earlier `ocsp-lab set`s, put on the responder before the first staple (`set <serial> clear` removes one). */
  behaviours: Array<Pick<SavedLabState, "serial" | "state" | "words">>;
}

/** A started persistent lab: see startPersistentLab. */
export interface PersistentLab {
  lab: Lab;
  endpoints: LabEndpoints;
  /** Set when the server certificate reused from an earlier start is revoked in the CA (clients refuse it). */
  revokedCertificate?: { serial: string; reason: string; time: string };
  /** Saved states that could not be used, one line each naming the file (skipped). */
  problems: string[];
}

/**
 * Start a persistent lab in `stateDir` (the CA is created on first use and kept). The responder
 * tries the port it had last time so the server certificate's AIA URL stays valid; when that
 * port is taken, or with `newCert`, a new certificate is issued. The states saved by
 * `ocsp-lab set` (loadLabStates) are put on the responder before the stapler's first query.
 * Reports (does not refuse) a reused server certificate that the CA has revoked. With
 * `adminToken`, both admin APIs need it.
 * @throws PortInUseError for a taken port given explicitly; StateDirError for a state folder
 * that is a file, is not writable (read-only, another user's) or holds a file this user cannot
 * read, saying what is wrong and how to fix it.
 */
export async function startPersistentLab(options: UpOptions): Promise<PersistentLab> {
  await checkStateDir(options.stateDir);
  try {
    return await startPersistentLabIn(options);
  } catch (err) {
    if (!isSystemError(err)) throw err;
    throw new StateDirError(
      `state folder ${options.stateDir}: ${describeSystemError(err, { fix: "give another with --state-dir (or OCSP_LAB_HOME)" })}`,
      { cause: err },
    );
  }
}

/**
 * Refuse a state folder `up` could not work in, before anything is created: a file where the
 * folder should be, a folder this user cannot write (read-only file system, another user's).
 * A missing folder is fine (it is created), unless its parent cannot take it (reported when
 * creating it).
 * @throws StateDirError naming the folder, what is wrong and the fix.
 */
async function checkStateDir(dir: string): Promise<void> {
  const another = "give another with --state-dir (or OCSP_LAB_HOME)";
  let isDir: boolean;
  try {
    isDir = (await fs.stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new StateDirError(describeSystemError(err, { what: "state folder", fix: another }) ?? String(err), { cause: err });
  }
  if (!isDir) throw new StateDirError(`state folder ${dir} is a file, not a folder: move the file away, or ${another}`);
  try {
    await fs.access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "EROFS"
        ? "is on a read-only file system (EROFS)"
        : `is not writable by this user (${code}; ls -ld ${dir} shows its owner and mode: a folder made by another user, or with sudo, needs chown)`;
    throw new StateDirError(`state folder ${dir} ${why}: make it writable, or ${another}`, { cause: err });
  }
}

async function startPersistentLabIn(options: UpOptions): Promise<PersistentLab> {
  let saved: { responderPort?: number; serial?: string } = {};
  try {
    saved = JSON.parse(await fs.readFile(join(options.stateDir, LAB_FILE), "utf8")) as typeof saved;
  } catch {
    saved = {};
  }
  const preferred = saved.responderPort;
  const states = await loadLabStates(options.stateDir);
  const policy = { ...UP_POLICY, ...options.policy };
  const lab = await startLab({
    stateDir: options.stateDir,
    policy,
    ...(options.responderPort !== undefined ? { responderPort: options.responderPort } : {}),
    ...(preferred ? { preferredResponderPort: preferred } : {}),
    ...(options.staplerPort !== undefined ? { staplerPort: options.staplerPort } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.adminToken !== undefined ? { adminToken: options.adminToken } : {}),
    reuseCertificate: options.newCert !== true,
    beforeStapler: async ({ responder }) => applyLabStates(responder, states.saved),
  });
  const endpoints: LabEndpoints = {
    stateDir: lab.ca.stateDir,
    caFile: lab.ca.rootFile,
    certFile: lab.leaf.certFile,
    keyFile: lab.leaf.keyFile,
    chainFile: lab.leaf.chainFile,
    fullchainFile: lab.leaf.fullchainFile,
    serial: lab.leaf.serial,
    responderUrl: lab.responder.url,
    adminUrl: lab.responder.adminUrl,
    metricsUrl: `${lab.responder.url}/metrics`,
    staplerHost: lab.target.host,
    staplerPort: lab.target.port,
    staplerUrl: `https://${lab.target.servername}:${lab.target.port}/`,
    staplerAdminUrl: lab.stapler.adminUrl ?? "",
    adminTokenRequired: options.adminToken !== undefined,
    serverName: lab.target.servername,
    policy,
    behaviours: states.saved.map(({ serial, state, words }) => ({ serial, state, words })),
  };
  const status = lab.ca.status(lab.leaf.serial);
  const reused = options.newCert !== true && saved.serial === lab.leaf.serial;
  return {
    lab,
    endpoints,
    problems: states.problems,
    ...(reused && status.status === "revoked"
      ? {
          revokedCertificate: {
            serial: lab.leaf.serial,
            reason: crlReasonName(status.revocationReason ?? 0),
            time: status.revocationTime.toISOString(),
          },
        }
      : {}),
  };
}

/** The line `up` prints at start about a reused, revoked server certificate: what, and what to run. */
export function describeRevokedCertificate(r: NonNullable<PersistentLab["revokedCertificate"]>): string {
  return `the server certificate reused from the last start (serial ${r.serial}) is revoked (${r.reason}, ${r.time}): clients refuse it; run ocsp-lab up --new-cert for a fresh one`;
}

/**
 * The human text `ocsp-lab up` prints: endpoints, then the exact commands to try; with
 * `events` (default true) a last line announcing the event lines that follow.
 */
export function describeEndpoints(e: LabEndpoints, options: { events?: boolean } = {}): string {
  const p = e.policy;
  // The token is the user's to give; the commands read it from the environment.
  const auth = e.adminTokenRequired ? ` -H "Authorization: Bearer $${ADMIN_TOKEN_ENV}"` : "";
  return [
    `ocsp-lab is up (state folder ${e.stateDir})`,
    `  CA certificate   ${e.caFile}`,
    `  server cert      ${e.certFile}  (serial ${e.serial}, ${e.serverName})`,
    `  responder        ${e.responderUrl}  (admin ${e.adminUrl}, metrics ${e.metricsUrl})`,
    `  stapler          ${e.staplerUrl}  (listening on ${e.staplerHost}:${e.staplerPort}; status ${e.staplerAdminUrl}/admin/ocsp, metrics ${e.staplerAdminUrl}/metrics)`,
    ...e.behaviours.map(
      (b) =>
        `  kept state       serial ${b.serial} answers ${b.words}  (from ocsp-lab set; ocsp-lab set ${b.serial} clear undoes)`,
    ),
    `  policy           query_frequency ${p.query_frequency} s, response_timeout ${p.response_timeout} s, recovery_frequency ${p.recovery_frequency} s, recovery_max_tries ${p.recovery_max_tries}`,
    "",
    "Try:",
    `  openssl s_client -connect ${e.staplerHost}:${e.staplerPort} -servername ${e.serverName} -status -CAfile ${e.caFile} </dev/null`,
    `  curl --cert-status --cacert ${e.caFile} --resolve ${e.serverName}:${e.staplerPort}:${e.staplerHost} ${e.staplerUrl}`,
    `  openssl ocsp -issuer ${e.caFile} -cert ${e.certFile} -url ${e.responderUrl} -CAfile ${e.caFile}`,
    `  ocsp-lab revoke ${e.serial} --reason keyCompromise --state-dir ${e.stateDir}`,
    `  ocsp-lab set ${e.serial} unknown --state-dir ${e.stateDir}      (also good, revoked, hang, down, slow <s>, http <status>, trylater, flaw <name>; clear undoes)`,
    `  curl -X PUT ${e.adminUrl}/behaviours/global${auth} -H 'content-type: application/json' -d '{"actions":[{"kind":"responseStatus","responseStatus":"tryLater"}],"count":3}'`,
    `      (the responder answers revoked within 1 s; the stapler staples it within query_frequency, ${p.query_frequency} s)`,
    `  curl -X POST ${e.staplerAdminUrl}/admin/ocsp/query${auth}      (the stapler queries now instead)`,
    ...(e.adminTokenRequired
      ? [
          `      (both admin APIs and the responder's metrics need the token given to --admin-token; ocsp-lab set reads it from ${LAB_FILE}, mode 0600)`,
        ]
      : []),
    "",
    "Ctrl-C stops the lab (so does the end of the process that started it); the CA stays in the state folder for next time.",
    ...(options.events === false ? [] : ["Events (--quiet turns them off):"]),
  ].join("\n");
}

/**
 * One thing a person watching `up` wants to know, as `up` prints it (`--json`: one JSON
 * object per line). `time` is ISO 8601 on the lab's clock.
 * - `staple`: the stapler got a staple (at start and after each query): its status (StapleState:
 *   good, revoked, unknown, or an error status under staple-errors), thisUpdate, nextUpdate.
 * - `fetch-failed`: a query failed: `error` (why), `kind` (timeout, network, http, invalid...),
 *   `failures` in a row.
 * - `staple-dropped`: recovery_max_tries failures in a row: handshakes get no staple.
 * - `revoked`: the CA's store shows a new revocation (`ocsp-lab revoke`, `ocsp-ca revoke|hold`):
 *   serial, subject, reason (RFC 5280 CRLReason name), revocationTime.
 * - `released`: a certificate on hold was released (good again).
 */
export type LabEvent =
  | { event: "staple"; time: string; serial: string; staple: string; thisUpdate?: string; nextUpdate?: string }
  | { event: "fetch-failed"; time: string; serial: string; kind: string; error: string; failures: number }
  | { event: "staple-dropped"; time: string; serial: string; failures: number }
  | { event: "revoked"; time: string; serial: string; subject: string; reason: string; revocationTime: string }
  | { event: "released"; time: string; serial: string; subject: string };

/** The `staple` event for a snapshot of the stapler (StapleSnapshot). */
export function stapleEvent(s: StapleSnapshot, time: Date): LabEvent {
  return {
    event: "staple",
    time: time.toISOString(),
    serial: s.serial,
    staple: s.staple,
    ...(s.thisUpdate ? { thisUpdate: s.thisUpdate.toISOString() } : {}),
    ...(s.nextUpdate ? { nextUpdate: s.nextUpdate.toISOString() } : {}),
  };
}

/**
 * Call `onEvent` for every LabEvent of `lab` from now on: the stapler's `staple:updated`,
 * `fetch:failed` and `staple:invalidated`, and the revocations and releases the CA's store
 * watcher loads (compared with the revocations known when this was called). Returns a
 * function that stops listening.
 */
export function watchLabEvents(lab: Lab, onEvent: (e: LabEvent) => void): () => void {
  const now = (): string => lab.clock.now().toISOString();
  const onStaple = (s: StapleSnapshot): void => onEvent(stapleEvent(s, lab.clock.now()));
  const onFailed = (e: { error: { kind: string; message: string }; snapshot: StapleSnapshot }): void =>
    onEvent({
      event: "fetch-failed",
      time: now(),
      serial: e.snapshot.serial,
      kind: e.error.kind,
      error: e.error.message,
      failures: e.snapshot.consecutiveFailures,
    });
  const onDropped = (s: StapleSnapshot): void =>
    onEvent({ event: "staple-dropped", time: now(), serial: s.serial, failures: s.consecutiveFailures });
  lab.stapler.on("staple:updated", onStaple);
  lab.stapler.on("fetch:failed", onFailed);
  lab.stapler.on("staple:invalidated", onDropped);

  const revocationKey = (r: { revocation?: { time: string; reason: number } }): string =>
    r.revocation ? `${r.revocation.time}/${r.revocation.reason}` : "";
  let known = new Map(lab.ca.listRevoked().map((r) => [r.serial, revocationKey(r)]));
  let watching = true;
  lab.ca.watch(() => {
    if (!watching) return;
    const revoked = lab.ca.listRevoked();
    const next = new Map(revoked.map((r) => [r.serial, revocationKey(r)]));
    for (const r of revoked)
      if (known.get(r.serial) !== next.get(r.serial))
        onEvent({
          event: "revoked",
          time: now(),
          serial: r.serial,
          subject: r.subject,
          reason: crlReasonName(r.revocation!.reason),
          revocationTime: r.revocation!.time,
        });
    for (const serial of known.keys())
      if (!next.has(serial)) onEvent({ event: "released", time: now(), serial, subject: lab.ca.get(serial)?.subject ?? "" });
    known = next;
  });
  return () => {
    watching = false;
    lab.stapler.off("staple:updated", onStaple);
    lab.stapler.off("fetch:failed", onFailed);
    lab.stapler.off("staple:invalidated", onDropped);
  };
}

/** The human line for a LabEvent: the time of day (UTC), then what happened and what it means. */
export function describeLabEvent(e: LabEvent): string {
  const at = `${e.time.slice(11, 19)}Z`;
  switch (e.event) {
    case "staple":
      return `${at} staple ${e.staple} for serial ${e.serial}${e.thisUpdate ? ` (thisUpdate ${e.thisUpdate}, nextUpdate ${e.nextUpdate ?? "none"})` : ""}`;
    case "fetch-failed":
      return `${at} staple fetch failed for serial ${e.serial} (${e.failures} in a row): ${e.error}`;
    case "staple-dropped":
      return `${at} staple dropped for serial ${e.serial} after ${e.failures} failed queries: handshakes get no staple until a query succeeds`;
    case "revoked":
      return `${at} revocation seen: serial ${e.serial} (${e.subject}) revoked, reason ${e.reason} at ${e.revocationTime}; the responder answers revoked now, the stapler at its next query`;
    case "released":
      return `${at} release seen: serial ${e.serial} (${e.subject}) is off hold, good again`;
  }
}
