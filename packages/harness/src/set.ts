import { promises as fs } from "node:fs";
import { join } from "node:path";
import { FileStore, serialOfTarget } from "@ocsp-lab/ca";
import { crlReasonName, parseCrlReason } from "@ocsp-lab/ocsp";
import { actionSchema, CONTENT_FLAWS, type ActionInput, type StartedOcspResponder } from "@ocsp-lab/responder";
import { z } from "zod";
import { LabAdminError, LabNotRunningError, UsageError } from "./errors.js";
import { ADMIN_TOKEN_ENV, findRunningLab } from "./running.js";

/** Every state `ocsp-lab set` accepts, with its argument when it takes one (for usage texts). */
export const LAB_STATES = [
  "good",
  "revoked [--reason R]",
  "unknown",
  "hang",
  "down",
  "slow <seconds>",
  "http <status>",
  "trylater",
  "flaw <name>",
  "clear",
] as const;

/**
 * What one serial's responder answers should be, parsed from the command line: a responder
 * action to answer every request for that serial with (a per-serial behaviour), or `clear`
 * (remove the serial's behaviour: the CA's own status again).
 */
export type LabState = { name: string; words: string; action: ActionInput } | { name: "clear"; words: "clear" };

const usage = (value: string): never => {
  throw new UsageError("state", value, LAB_STATES);
};

/**
 * Parse `<state> [value]` of `ocsp-lab set`. `revoked` is a status override (RFC 6960 §2.2
 * revoked with `reason`, default unspecified), reversible by `clear`; the CA's own record is
 * left alone (`ocsp-lab revoke` is the permanent revocation). `down` resets the connection
 * (TCP RST); `slow` delays every answer by `seconds` (user-facing seconds, sent in ms);
 * `http` answers an HTTP status 300..599 without an OCSP body; `trylater` the unsigned
 * tryLater responseStatus (RFC 6960 §2.3); `flaw` signs a defective response (CONTENT_FLAWS).
 * @throws UsageError (code OCSP_LAB_USAGE) for an unknown state or a missing/bad value;
 * InvalidReasonError for a bad reason.
 */
export function parseLabState(words: string[], reason?: string): LabState {
  const [name = "", value, ...extra] = words;
  const lower = name.toLowerCase();
  const needs = (what: string): string => {
    if (value === undefined) usage(`${name} (needs ${what})`);
    return value!;
  };
  if (extra.length > 0 || (value !== undefined && !["slow", "http", "flaw"].includes(lower))) usage(words.join(" "));
  if (reason !== undefined && lower !== "revoked") usage(`${name} --reason (only revoked takes a reason)`);
  switch (lower) {
    case "clear":
      return { name: "clear", words: "clear" };
    case "good":
    case "unknown":
      return { name: lower, words: lower, action: { kind: "status", status: lower } };
    case "revoked": {
      const r = crlReasonName(parseCrlReason(reason ?? "unspecified"));
      return { name: lower, words: `revoked (${r})`, action: { kind: "status", status: "revoked", revocationReason: r } };
    }
    case "hang":
      return { name: lower, words: "nothing (the responder hangs)", action: { kind: "hang" } };
    case "down":
      return { name: lower, words: "with a connection reset (the responder is down)", action: { kind: "reset" } };
    case "trylater":
      return { name: lower, words: "tryLater", action: { kind: "responseStatus", responseStatus: "tryLater" } };
    case "slow": {
      const s = Number(needs("seconds"));
      if (!(s >= 0) || !Number.isFinite(s) || s > 600) usage(`slow ${value} (seconds 0..600)`);
      return { name: lower, words: `after ${s} s`, action: { kind: "delay", ms: Math.round(s * 1000) } };
    }
    case "http": {
      const status = Number(needs("status"));
      if (!Number.isInteger(status) || status < 300 || status > 599) usage(`http ${value} (status 300..599)`);
      return { name: lower, words: `HTTP ${status}`, action: { kind: "http", status } };
    }
    case "flaw": {
      const flaw = needs("name");
      if (!(CONTENT_FLAWS as readonly string[]).includes(flaw)) throw new UsageError("flaw", flaw, CONTENT_FLAWS);
      return {
        name: lower,
        words: `a response with flaw ${flaw}`,
        action: { kind: "content", flaw: flaw as (typeof CONTENT_FLAWS)[number] },
      };
    }
    default:
      return usage(name);
  }
}

/** Options of setLabState. */
export interface SetOptions {
  /** State folder of a running `ocsp-lab up`. */
  stateDir: string;
  /** A hex serial, or the path of a certificate file. */
  target: string;
  state: LabState;
  /**
   * Admin token to send (`set --admin-token`, or $OCSP_LAB_ADMIN_TOKEN) instead of the one the
   * running up recorded in lab.json; needed when lab.json is not readable by this user.
   */
  adminToken?: string;
}

/** What setLabState did. */
export interface SetResult {
  serial: string;
  state: LabState;
  /**
   * What the stapler staples after re-querying (StapleState), or undefined when it serves no
   * certificate with this serial (or, for `notRunning`, when no `up` runs).
   */
  staple: string | undefined;
  /** Only for `clear` with no `up` running: the saved state was removed, nothing else was touched. */
  notRunning?: true;
}

/**
 * Folder of the state folder where `ocsp-lab set` keeps one file per serial
 * (`behaviours/<serial>.json`, a SavedLabState), re-applied by `ocsp-lab up` at start until
 * `set <serial> clear` removes it.
 */
export const SAVED_STATES_DIR = "behaviours";

/** A state `ocsp-lab set` recorded for one serial: what `up` puts on its responder at start. */
export interface SavedLabState {
  /** Lower-case hex serial. */
  serial: string;
  /** The state's name (`unknown`, `hang`, `slow`...). */
  state: string;
  /** What the serial answers, in words (`unknown`, `after 2 s`, `revoked (keyCompromise)`...). */
  words: string;
  /** The responder action every request for the serial gets (responder actionSchema). */
  action: ActionInput;
}

const savedStateSchema = z
  .object({ serial: z.string().regex(/^(?:[0-9a-f]{2})+$/), state: z.string(), words: z.string(), action: actionSchema })
  .strict();

const savedFile = (serial: string): string => join(SAVED_STATES_DIR, `${serial}.json`);

/**
 * Record `state` for `serial` in the state folder (`behaviours/<serial>.json`, atomic write:
 * temp file, fsync, rename), or remove the record for `clear`. One file per serial, so two
 * `set`s on different serials never overwrite each other. Resolves with whether a record
 * existed before (for `clear`: whether one was removed).
 */
export async function saveLabState(stateDir: string, serial: string, state: LabState): Promise<boolean> {
  const store = new FileStore(stateDir);
  const existed = await fs.access(store.path(savedFile(serial))).then(
    () => true,
    () => false,
  );
  if (state.name === "clear") {
    await fs.rm(store.path(savedFile(serial)), { force: true });
    return existed;
  }
  const saved: SavedLabState = {
    serial,
    state: state.name,
    words: state.words,
    action: (state as { action: ActionInput }).action,
  };
  await store.writeAtomic(savedFile(serial), `${JSON.stringify(saved, null, 2)}\n`, 0o644);
  return existed;
}

/**
 * Every state recorded by `ocsp-lab set` in `stateDir`, sorted by serial, and one line per
 * record that cannot be used (unreadable, not JSON, not a SavedLabState, file name and serial
 * disagree), naming the file: those are skipped, never fatal.
 */
export async function loadLabStates(stateDir: string): Promise<{ saved: SavedLabState[]; problems: string[] }> {
  const dir = join(stateDir, SAVED_STATES_DIR);
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  } catch {
    return { saved: [], problems: [] };
  }
  const saved: SavedLabState[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      const raw = JSON.parse(await fs.readFile(file, "utf8")) as SavedLabState;
      const parsed = savedStateSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        problems.push(`${file}: ${issue.path.join(".") || "file"}: ${issue.message}`);
      } else if (`${parsed.data.serial}.json` !== name) {
        problems.push(`${file}: records serial ${parsed.data.serial}, not the one its name says`);
      } else {
        // The record as written (the action in its input form, as the admin API takes it).
        saved.push(raw);
      }
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  return { saved, problems };
}

/**
 * Put every saved state on `responder` (a per-serial behaviour `{steps:[{actions:[action]}]}`,
 * as `PUT /admin/behaviours/serials/<serial>` would). Run by `up` before its stapler's first
 * query, so the first staple already reflects them.
 * @throws InvalidBehaviourError when a record's action is not one the responder accepts.
 */
export function applyLabStates(responder: StartedOcspResponder, saved: readonly SavedLabState[]): void {
  for (const s of saved) responder.setBehaviour({ kind: "serial", serial: s.serial }, { steps: [{ actions: [s.action] }] });
}

async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new LabAdminError(method, url, `cannot reach the running lab (${(err as Error).message})`, { cause: err });
  }
  return res;
}

/** What an admin API's refusal says; for a 401, which token to give. */
async function refusal(res: Response, token: string | undefined): Promise<string> {
  const text = (await res.text()).trim();
  if (res.status !== 401) return `HTTP ${res.status} ${text}`;
  return token === undefined
    ? `HTTP 401: the running up needs its admin token: give it with --admin-token or ${ADMIN_TOKEN_ENV}`
    : `HTTP 401: the admin token sent is not the running up's: give the one its --admin-token was given, with --admin-token or ${ADMIN_TOKEN_ENV}`;
}

/**
 * Put one serial of a running `ocsp-lab up` (found through `stateDir`'s lab.json) into
 * `state`: `PUT <adminUrl>/behaviours/serials/<serial>` with `{actions:[action]}` (every
 * request for it, until cleared), or `DELETE` for `clear`; record it in the state folder
 * (saveLabState: `up` re-applies it at its next start, until `clear`); then ask the stapler to
 * query now (`POST <staplerAdminUrl>/admin/ocsp/query?serial=`) so the change shows in the
 * next handshake. Both requests carry `options.adminToken`, else the token the running up
 * recorded in lab.json (0600), if any. `clear` with no `up` running removes the saved record alone (`notRunning`).
 * @throws LabNotRunningError when no `up` runs on the folder (for `clear`: and nothing was
 * saved for the serial); LabAdminError when an admin API refuses or cannot be reached (a 401
 * says which token to give);
 * InvalidArgumentError (ca) for a bad target.
 */
export async function setLabState(options: SetOptions): Promise<SetResult> {
  const state = options.state;
  let running: Awaited<ReturnType<typeof findRunningLab>>;
  try {
    running = await findRunningLab(options.stateDir);
  } catch (err) {
    if (!(err instanceof LabNotRunningError) || state.name !== "clear") throw err;
    const serial = await serialOfTarget(options.target);
    if (!(await saveLabState(options.stateDir, serial, state))) throw err;
    return { serial, state, staple: undefined, notRunning: true };
  }
  const serial = await serialOfTarget(options.target);
  const url = `${running.adminUrl}/behaviours/serials/${serial}`;
  const token = options.adminToken ?? running.adminToken;
  const staplerToken = options.adminToken ?? running.staplerAdminToken;
  const res =
    state.name === "clear"
      ? await call("DELETE", url, token)
      : await call("PUT", url, token, { actions: [(state as { action: ActionInput }).action] });
  if (!res.ok && !(state.name === "clear" && res.status === 404))
    throw new LabAdminError(state.name === "clear" ? "DELETE" : "PUT", url, await refusal(res, token));
  await res.body?.cancel();
  await saveLabState(options.stateDir, serial, state);

  const queryUrl = `${running.staplerAdminUrl}/admin/ocsp/query?serial=${serial}`;
  const q = await call("POST", queryUrl, staplerToken);
  if (q.status === 404) {
    await q.body?.cancel();
    return { serial, state, staple: undefined };
  }
  if (!q.ok) throw new LabAdminError("POST", queryUrl, await refusal(q, staplerToken));
  const body = (await q.json()) as { certificates: { serial: string; staple: string }[] };
  return { serial, state, staple: body.certificates.find((c) => c.serial === serial)?.staple ?? "none" };
}

/** One line for the CLI: what the serial answers now, what the stapler staples, and what to run next. */
export function describeSetResult(r: SetResult): string {
  if (r.notRunning)
    return `no ocsp-lab up is running; removed the state saved for serial ${r.serial}, so the next up answers what the CA says`;
  const now =
    r.state.name === "clear"
      ? `serial ${r.serial} is back to what the CA says`
      : `serial ${r.serial} now answers ${r.state.words} (kept across restarts of up)`;
  const stapler =
    r.staple === undefined ? "the stapler does not serve this serial" : `the stapler re-queried: staple ${r.staple}`;
  const next =
    r.state.name === "clear"
      ? `Set another state with: ocsp-lab set ${r.serial} <state>`
      : `Undo with: ocsp-lab set ${r.serial} clear`;
  return `${now}; ${stapler}. ${next}`;
}
