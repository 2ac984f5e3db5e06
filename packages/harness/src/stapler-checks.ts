import { join } from "node:path";
import { OcspResponse, crlReasonName, hashNameFromOid } from "@ocsp-lab/ocsp";
import {
  StaplingServer,
  type FetchError,
  type PollingPolicy,
  type PollingPolicyInput,
  type StapleManager,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import type { ClientDriver, ClientObservation, TlsTarget } from "./clients/client.js";
import { ScenarioTimeoutError } from "./errors.js";
import { LAB_SERVER_NAME, type Lab } from "./lab.js";

/** Everything a stapler check may act on. */
export interface CheckContext {
  /** The scenario's name, for timeout messages. */
  scenario: string;
  /**
   * The lab, on a TurnClock (as runScenarios starts it): the retry cadence is judged from the
   * stapler's schedule against the instant of each failure, which only a TurnClock makes exact.
   */
  lab: Lab;
  /** The policy in force, in milliseconds. */
  policy: PollingPolicy;
  /** The strict Node client, for probes during an outage. */
  nodeClient: ClientDriver;
  /** The text the scenario expects the check to observe. */
  expected: string;
  /**
   * Play the scenario's timeline (steps applied at their `at` on the lab's clock); resolves
   * once the last step is applied. Each check calls it once, after it starts listening.
   */
  applyTimeline(): Promise<void>;
}

/** Code that observes the stapler in a scenario and says what it saw, in the words of `expected`. */
export interface StaplerCheckDefinition {
  /** One line for documentation. */
  description: string;
  /** The expected text when the scenario file gives none, derived from the policy. */
  defaultExpected(policy: PollingPolicy): string | undefined;
  /**
   * Play the timeline, wait for the stapler, and describe what happened: the text, or with it
   * a stapler the check started (the clients then probe `target`; `stop` ends it after them).
   */
  observe(ctx: CheckContext): Promise<string | CheckOutcome>;
}

/** What a check that started a stapler of its own hands back (see StaplerCheckDefinition.observe). */
export interface CheckOutcome {
  observed: string;
  target?: TlsTarget;
  stop?: () => Promise<void>;
  detail?: string;
}

/** A recorded stapler event with the lab-clock time it arrived, in ms since the epoch. */
interface Recorded {
  event: "staple:updated" | "staple:invalidated" | "fetch:failed";
  at: number;
  snapshot: StapleSnapshot;
  error?: FetchError;
  /** For a revoked staple: the CA's revocation time of the certificate then, in ms since the epoch. */
  revokedAt?: number;
}

/**
 * Record the lab stapler's events from now on and wait for one matching `until`, polling nothing:
 * each event is checked as it arrives.
 * @throws ScenarioTimeoutError after `timeoutMs`.
 */
function watchUntil(
  lab: Lab,
  scenario: string,
  waitingFor: string,
  until: (r: Recorded, all: Recorded[]) => boolean,
  timeoutMs: number,
): Promise<Recorded[]> {
  const manager: StapleManager = lab.stapler.manager;
  const now = (): number => lab.clock.now().getTime();
  return new Promise((resolve, reject) => {
    const all: Recorded[] = [];
    const handlers = {
      "staple:updated": (snapshot: StapleSnapshot) => push({ event: "staple:updated", at: now(), snapshot }),
      "staple:invalidated": (snapshot: StapleSnapshot) => push({ event: "staple:invalidated", at: now(), snapshot }),
      "fetch:failed": (e: { error: FetchError; snapshot: StapleSnapshot }) =>
        push({ event: "fetch:failed", at: now(), snapshot: e.snapshot, error: e.error }),
    };
    const off = (): void => {
      clearTimeout(timer);
      manager.off("staple:updated", handlers["staple:updated"]);
      manager.off("staple:invalidated", handlers["staple:invalidated"]);
      manager.off("fetch:failed", handlers["fetch:failed"]);
    };
    const push = (r: Recorded): void => {
      all.push(r);
      if (until(r, all)) {
        off();
        resolve(all);
      }
    };
    const timer = setTimeout(() => {
      off();
      reject(new ScenarioTimeoutError(scenario, waitingFor, timeoutMs));
    }, timeoutMs);
    manager.on("staple:updated", handlers["staple:updated"]);
    manager.on("staple:invalidated", handlers["staple:invalidated"]);
    manager.on("fetch:failed", handlers["fetch:failed"]);
  });
}

/** Deadline for a scenario's wait: a regular query plus every retry, with generous slack for a loaded CI machine. */
function deadline(policy: PollingPolicy): number {
  return policy.queryFrequencyMs + policy.recoveryMaxTries * (policy.recoveryFrequencyMs + policy.responseTimeoutMs) + 10_000;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(2))} s`;

/** How much earlier than scheduled a timer may seem to fire: node rounds timer instants to the millisecond. */
const EARLY_SLACK_MS = 2;

/**
 * "retried every X s", judged from the stapler's own schedule, not from when its timers fired
 * (which depends on how busy the machine is). Each `fetch:failed` snapshot carries `nextFetch`,
 * the instant the stapler set for its next query; the lab runs on a TurnClock, so the event's
 * `at` is the very instant the stapler scheduled from. The cadence is the policy's when every
 * failure scheduled the next query exactly recovery_frequency later and each retry began after
 * the failure before it; otherwise the delays as scheduled are reported (`never` for a failure
 * that scheduled nothing). A retry that began less than recovery_frequency after the failure
 * before it is reported with its real delay: timers never fire early, so that is the stapler's.
 */
function retryCadence(failures: Recorded[], policy: PollingPolicy): string {
  const want = policy.recoveryFrequencyMs;
  const scheduled = failures.map((f) => (f.snapshot.nextFetch ? f.snapshot.nextFetch.getTime() - f.at : undefined));
  // A timer never fires early (node may round by a millisecond), so a retry that began less than
  // recovery_frequency after the failure before it is the stapler's doing, whatever the machine.
  const early = failures.findIndex(
    (f, i) =>
      i > 0 &&
      (f.snapshot.lastFetch === undefined || f.snapshot.lastFetch.at.getTime() < failures[i - 1]!.at + want - EARLY_SLACK_MS),
  );
  if (early !== -1) {
    const began = failures[early]!.snapshot.lastFetch?.at.getTime();
    return began === undefined
      ? "a retry with no start time"
      : `a retry began ${seconds(began - failures[early - 1]!.at)} after the failure before it`;
  }
  if (scheduled.every((d) => d === want)) return `retried every ${seconds(want)}`;
  return `retries scheduled ${scheduled.map((d) => (d === undefined ? "never" : seconds(d))).join(", ")} after each failure`;
}

/**
 * The revocation reason of the staple the stapler serves now (RFC 6960 §4.2.1 RevokedInfo):
 * `superseded`, `no reason` when the RevokedInfo has none, `not revoked` for any other staple.
 */
function stapledReason(lab: Lab): string {
  const der = lab.stapler.manager.current();
  if (der === undefined) return "no staple";
  try {
    const single = OcspResponse.fromDer(der).responses.find((r) => r.certId.serial === lab.leaf.serial);
    if (single?.status !== "revoked") return "not revoked";
    return single.revocationReason === undefined ? "no reason" : crlReasonName(single.revocationReason);
  } catch {
    return "unreadable";
  }
}

/**
 * Record the lab stapler's events from now on, with the snapshot in force before the first.
 * `until(done)` (called once) resolves as soon as `done()` holds, checked at once and after each
 * event; `timeoutMs` after the call it resolves anyway with what was recorded (the check then
 * describes what it saw, which does not match) and recording stops.
 */
function recordUntil(
  lab: Lab,
  timeoutMs: number,
): { events: Recorded[]; initial: StapleSnapshot; until(done: () => boolean): Promise<Recorded[]> } {
  const manager: StapleManager = lab.stapler.manager;
  const now = (): number => lab.clock.now().getTime();
  const events: Recorded[] = [];
  let check: (() => void) | undefined;
  const handlers = {
    "staple:updated": (snapshot: StapleSnapshot) => push({ event: "staple:updated", at: now(), snapshot }),
    "staple:invalidated": (snapshot: StapleSnapshot) => push({ event: "staple:invalidated", at: now(), snapshot }),
    "fetch:failed": (e: { error: FetchError; snapshot: StapleSnapshot }) =>
      push({ event: "fetch:failed", at: now(), snapshot: e.snapshot, error: e.error }),
  };
  const push = (r: Recorded): void => {
    const revocation = r.snapshot.staple === "revoked" ? lab.ca.get(lab.leaf.serial)?.revocation : undefined;
    if (revocation) r.revokedAt = new Date(revocation.time).getTime();
    events.push(r);
    check?.();
  };
  manager.on("staple:updated", handlers["staple:updated"]);
  manager.on("staple:invalidated", handlers["staple:invalidated"]);
  manager.on("fetch:failed", handlers["fetch:failed"]);
  const off = (): void => {
    manager.off("staple:updated", handlers["staple:updated"]);
    manager.off("staple:invalidated", handlers["staple:invalidated"]);
    manager.off("fetch:failed", handlers["fetch:failed"]);
  };
  return {
    events,
    initial: lab.stapler.status()[0]!,
    until: (done) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => finish(), timeoutMs);
        const finish = (): void => {
          clearTimeout(timer);
          check = undefined;
          off();
          resolve(events);
        };
        check = () => {
          if (done()) finish();
        };
        check();
      }),
  };
}

/** The staple states in the order served, each change once: `["good", "revoked"]`. */
function servedStates(initial: StapleSnapshot, events: readonly Recorded[]): string[] {
  const states = [initial.staple as string];
  for (const e of events) {
    if (e.event === "fetch:failed") continue;
    if (e.snapshot.staple !== states[states.length - 1]) states.push(e.snapshot.staple);
  }
  return states;
}

/**
 * How soon the stapler stapled `revoked` after the lab's CA revoked the certificate, judged from
 * the stapler's own schedule, not a stopwatch: the query that brought the first revoked staple
 * was scheduled (the `nextFetch` of the snapshot before it) at some instant; it is "within" one
 * query_frequency when that instant is at most query_frequency after the CA's revocation time.
 * Undefined when the certificate was not revoked in the CA after `since` (ms, lab clock), or no
 * revoked staple came.
 */
function revocationSeen(
  policy: PollingPolicy,
  since: number,
  initial: StapleSnapshot,
  events: readonly Recorded[],
): string | undefined {
  let before = initial;
  for (const e of events) {
    if (e.event === "staple:updated" && e.snapshot.staple === "revoked" && before.staple !== "revoked") {
      const time = e.revokedAt;
      if (time === undefined || time < since) return undefined;
      const scheduled = before.nextFetch?.getTime();
      if (scheduled === undefined) return "seen by an unscheduled query";
      const after = scheduled - time;
      return after <= policy.queryFrequencyMs
        ? `seen within ${seconds(policy.queryFrequencyMs)} of the revocation`
        : `seen by the query scheduled ${seconds(after)} after the revocation`;
    }
    before = e.snapshot;
  }
  return undefined;
}

/** Wait for the stapler's staple to have `status`, checking the current one first. */
/** Play the timeline and collect the stapler's `fetch:failed` events until it invalidates the staple. */
async function failuresUntilInvalidated(ctx: CheckContext): Promise<Recorded[]> {
  const waiting = watchUntil(
    ctx.lab,
    ctx.scenario,
    "invalidation",
    (r) => r.event === "staple:invalidated",
    deadline(ctx.policy),
  );
  await ctx.applyTimeline();
  return (await waiting).filter((e) => e.event === "fetch:failed");
}

async function stapleBecomes(ctx: CheckContext, status: string): Promise<string> {
  const { lab, policy, scenario } = ctx;
  if (lab.stapler.status()[0]!.staple !== status) {
    await watchUntil(
      lab,
      scenario,
      `staple with status ${status}`,
      (r) => r.event === "staple:updated" && r.snapshot.staple === status,
      deadline(policy),
    );
  }
  return `staple ${lab.stapler.status()[0]!.staple}`;
}

/** The policy in force, back in the seconds a StaplingServer takes (for the staplers a check starts). */
function policyInput(p: PollingPolicy): PollingPolicyInput {
  return {
    query_frequency: p.queryFrequencyMs / 1000,
    response_timeout: p.responseTimeoutMs / 1000,
    recovery_frequency: p.recoveryFrequencyMs / 1000,
    recovery_max_tries: p.recoveryMaxTries,
    on_failure: p.onFailure,
    expiry_margin: p.expiryMarginMs / 1000,
    mode: p.mode,
    startup: p.startup,
    max_skew: p.maxSkewMs / 1000,
    cert_id_hash: p.certIdHash === "SHA-256" ? "sha256" : "sha1",
  };
}

/**
 * A stapler of the check's own for `files` on the lab's clock, host and policy (no admin
 * endpoint, no file watch): `configure` adds a state folder or a staple source.
 */
async function ownStapler(
  lab: Lab,
  policy: PollingPolicy,
  files: { certFile: string; keyFile: string; chainFile: string },
  configure: (s: StaplingServer) => StaplingServer,
): Promise<StartedStaplingServer> {
  const builder = (await StaplingServer.fromFiles(files))
    .withHost(lab.target.host)
    .withAdmin(false)
    .withWatch(0)
    .withPolicy(policyInput(policy))
    .withClock(lab.clock);
  return configure(builder).start();
}

/** What a check that started `stapler` hands back: its text, the stapler as the clients' target, and how to stop it. */
function servedBy(lab: Lab, stapler: StartedStaplingServer, observed: string): CheckOutcome {
  return {
    observed,
    target: { ...lab.target, port: stapler.port },
    stop: () => stapler.stop(),
    detail: JSON.stringify(stapler.status()[0]),
  };
}

/** The WebCrypto name of the CertID hash of the lab stapler's staple (`SHA-256`), `no staple`, or `unreadable`. */
function stapledCertIdHash(lab: Lab): string {
  const der = lab.stapler.manager.current();
  if (der === undefined) return "no staple";
  try {
    const single = OcspResponse.fromDer(der).responses.find((r) => r.certId.serial === lab.leaf.serial);
    return single ? (hashNameFromOid(single.certId.hashOid) ?? single.certId.hashOid) : "no SingleResponse for the certificate";
  } catch {
    return "unreadable";
  }
}

/** Resolve at `at` (ms since the epoch) on the lab's clock; at once when it has passed. */
function clockAt(lab: Lab, at: number): Promise<void> {
  const wait = at - lab.clock.now().getTime();
  return wait > 0 ? new Promise((resolve) => lab.clock.setTimeout(resolve, wait)) : Promise.resolve();
}

/**
 * The checks a scenario file selects with `stapler_check`:
 * - `staple-status`: after the timeline, the staple reaches the status of `expect.stapler`
 *   (`staple good|revoked|unknown`); `staple revoked (superseded)` also names the staple's
 *   revocation reason (RFC 6960 §4.2.1 RevokedInfo);
 * - `staple-sequence`: the staple states the stapler served from the start of the timeline
 *   until the last state `expect.stapler` names, each change once (`staple good, revoked`,
 *   `staple unknown, good`); when the CA revoked the certificate during the timeline, `; seen
 *   within 1 s of the revocation` when the query that first stapled revoked was scheduled at
 *   most query_frequency after the CA's revocation time (see revocationSeen);
 * - `invalidation`: the stapler retries every recovery_frequency and drops the staple after
 *   recovery_max_tries failed queries;
 * - `invalidation-timeouts`: the same, counting queries that failed by timeout;
 * - `recovery`: queries fail and then succeed; the staple is kept throughout (a strict client
 *   probed after each failure still connects) and restored;
 * - `lazy-first-handshake` (nginx): no staple at start; the first handshake gets none and
 *   triggers the fetch; the staple follows;
 * - `in-handshake` (Apache): one handshake after the timeline, then the staple and its source;
 * - `unverified-staple` (client validation, with a staple_source other than `verified`): after
 *   the timeline the stapler queries at once (as-received) and staples what it got, unverified;
 *   reports what it staples, the source, and what verification would say;
 * - `cert-id-hash`: after the timeline, the staple is good and its CertID hash is the one the
 *   stapler asked with (`staple good, CertID SHA-256`);
 * - `restart-persisted`: a stapler with a state folder staples and persists; it stops, the
 *   timeline plays (the responder goes down), a new stapler on the same folder starts and
 *   serves the persisted staple, re-verified; the clients probe the restarted one;
 * - `served-until-expiry` (on_failure serve-until-expiry, a short response_validity): while
 *   every query fails, the staple is kept through each failure before its nextUpdate minus
 *   expiry_margin and dropped at it (judged at each failure, against the staple's nextUpdate);
 * - `expire-then-fetch` (mode expire-then-fetch, a CDN; a short response_validity): no refresh
 *   before nextUpdate; after it no staple, the first handshake gets none and starts the fetch;
 * - `renewed-certificate`: the certificate is renewed (same names, same issuer, new serial and
 *   key) and a stapler serves the renewed one with the old certificate's staple as configured
 *   bytes (a staple file not renewed with it); reports it as `unverified-staple` does.
 */
export const STAPLER_CHECKS = {
  "staple-status": {
    description: "the staple reaches the status expect.stapler names (and for `revoked (reason)`, that reason)",
    defaultExpected: () => undefined,
    async observe(ctx) {
      await ctx.applyTimeline();
      const [, status = "", withReason] = /^staple (\S+)( \(.*\))?$/.exec(ctx.expected) ?? [];
      const seen = await stapleBecomes(ctx, status);
      return withReason !== undefined && seen === "staple revoked" ? `${seen} (${stapledReason(ctx.lab)})` : seen;
    },
  },
  "staple-sequence": {
    description: "the staple states served in order, each change once; with a CA revocation, how soon it was seen",
    defaultExpected: () => undefined,
    async observe({ lab, policy, expected, applyTimeline }) {
      const since = lab.clock.now().getTime();
      const wanted = expected
        .replace(/^staple /, "")
        .split(";")[0]!
        .split(", ");
      const last = wanted[wanted.length - 1];
      const recorder = recordUntil(lab, deadline(policy));
      await applyTimeline();
      const events = await recorder.until(() => lab.stapler.status()[0]!.staple === last);
      const seen = revocationSeen(policy, since, recorder.initial, events);
      return `staple ${servedStates(recorder.initial, events).join(", ")}${seen ? `; ${seen}` : ""}`;
    },
  },
  invalidation: {
    description: "retries every recovery_frequency, invalidated after recovery_max_tries failed queries",
    defaultExpected: (policy) =>
      `invalidated after ${policy.recoveryMaxTries} failed queries, retried every ${seconds(policy.recoveryFrequencyMs)}`,
    async observe(ctx) {
      const failures = await failuresUntilInvalidated(ctx);
      return `invalidated after ${failures.length} failed queries, ${retryCadence(failures, ctx.policy)}`;
    },
  },
  "invalidation-timeouts": {
    description: "every query times out; retries every recovery_frequency, invalidated after recovery_max_tries",
    defaultExpected: (policy) =>
      `invalidated after ${policy.recoveryMaxTries} timeouts, retried every ${seconds(policy.recoveryFrequencyMs)}`,
    async observe(ctx) {
      const failures = await failuresUntilInvalidated(ctx);
      const timeouts = failures.filter((e) => e.error?.kind === "timeout").length;
      return `invalidated after ${timeouts} timeouts${timeouts !== failures.length ? ` (+${failures.length - timeouts} other failures)` : ""}, ${retryCadence(failures, ctx.policy)}`;
    },
  },
  recovery: {
    description: "queries fail, then succeed: the staple is kept throughout and restored",
    defaultExpected: (policy) => `${policy.recoveryMaxTries - 1} failed queries, staple kept, restored`,
    async observe({ lab, policy, nodeClient, scenario, applyTimeline }) {
      const probes: Array<Promise<ClientObservation>> = [];
      const waiting = watchUntil(
        lab,
        scenario,
        "a staple after the failures",
        (r, all) => {
          // Probe a strict client during the outage: it must still get the cached staple.
          if (r.event === "fetch:failed") probes.push(nodeClient.probe(lab.target));
          return r.event === "staple:updated" && all.some((e) => e.event === "fetch:failed");
        },
        deadline(policy),
      );
      await applyTimeline();
      const events = await waiting;
      const during = await Promise.all(probes);
      const failures = events.filter((e) => e.event === "fetch:failed").length;
      const invalidated = events.some((e) => e.event === "staple:invalidated");
      const refused = during.filter((o) => o.outcome !== "connected");
      return (
        `${failures} failed queries, ` +
        (invalidated
          ? "staple invalidated"
          : refused.length > 0
            ? `client refused during outage (${refused[0]!.outcome})`
            : "staple kept") +
        `, ${lab.stapler.status()[0]!.staple === "good" ? "restored" : "not restored"}`
      );
    },
  },
  "lazy-first-handshake": {
    description: "no staple at start; the first handshake gets none and triggers the fetch",
    defaultExpected: () => "no staple at start, first handshake refused: no staple, then staple good",
    async observe({ lab, policy, nodeClient, scenario, applyTimeline }) {
      const before = lab.stapler.status()[0]!.staple;
      const waiting = watchUntil(
        lab,
        scenario,
        "the fetch the first handshake triggered",
        (r) => r.event === "staple:updated",
        deadline(policy),
      );
      await applyTimeline();
      const first = await nodeClient.probe(lab.target);
      await waiting;
      return `${before === "none" ? "no staple at start" : `staple ${before} at start`}, first handshake ${first.outcome}, then staple ${lab.stapler.status()[0]!.staple}`;
    },
  },
  "in-handshake": {
    description: "one handshake after the timeline, then the staple and where it came from",
    defaultExpected: () => undefined,
    async observe({ lab, nodeClient, applyTimeline }) {
      await applyTimeline();
      await nodeClient.probe(lab.target);
      const snap = lab.stapler.status()[0]!;
      return `staple ${snap.staple}${snap.source ? ` (${snap.source})` : ""}`;
    },
  },
  "unverified-staple": {
    description: "the stapler staples exactly what its staple source gives, unverified; what verification would say",
    defaultExpected: () => undefined,
    async observe({ lab, applyTimeline }) {
      await applyTimeline();
      await lab.stapler.manager.queryNow();
      return describeUnverified(lab.stapler.status()[0]!);
    },
  },
  "cert-id-hash": {
    description: "the staple is good and its CertID uses the hash the stapler asked with",
    defaultExpected: (policy) => `staple good, CertID ${policy.certIdHash}`,
    async observe(ctx) {
      await ctx.applyTimeline();
      const seen = await stapleBecomes(ctx, "good");
      return `${seen}, CertID ${stapledCertIdHash(ctx.lab)}`;
    },
  },
  "restart-persisted": {
    description: "a stapler persists its staple, restarts with the responder down, and serves the persisted staple",
    defaultExpected: () => "staple good persisted, restarted: staple good (persisted)",
    async observe({ lab, policy, applyTimeline }) {
      const stateDir = join(lab.ca.stateDir, "restarted-stapler");
      const withState = (s: StaplingServer): StaplingServer => s.withStateDir(stateDir);
      const first = await ownStapler(lab, policy, lab.leaf, withState);
      const before = first.status()[0]!;
      await first.stop();
      await applyTimeline();
      const second = await ownStapler(lab, policy, lab.leaf, withState);
      const after = second.status()[0]!;
      const persisted = before.staple !== "none" && before.lastFetch?.ok ? "persisted" : "not persisted";
      return servedBy(
        lab,
        second,
        `staple ${before.staple} ${persisted}, restarted: staple ${after.staple}${after.source ? ` (${after.source})` : ""}`,
      );
    },
  },
  "served-until-expiry": {
    description: "every query fails: the staple is kept until its nextUpdate (minus expiry_margin), then dropped",
    defaultExpected: () => "staple kept through the failed queries before nextUpdate, none after",
    async observe({ lab, policy, applyTimeline }) {
      const recorder = recordUntil(lab, deadline(policy) + 60_000);
      await applyTimeline();
      const events = await recorder.until(() => lab.stapler.status()[0]!.staple === "none");
      let served = recorder.initial;
      let early: Recorded | undefined;
      let late: Recorded | undefined;
      let failures = 0;
      for (const e of events) {
        if (e.event === "staple:updated") served = e.snapshot;
        if (e.event !== "fetch:failed") continue;
        failures += 1;
        const limit = (served.nextUpdate?.getTime() ?? 0) - policy.expiryMarginMs;
        if (e.at < limit && e.snapshot.staple === "none") early ??= e;
        if (e.at >= limit && e.snapshot.staple !== "none") late ??= e;
      }
      if (early) return `staple dropped ${seconds(served.nextUpdate!.getTime() - early.at)} before nextUpdate`;
      if (late) return `staple ${late.snapshot.staple} served ${seconds(late.at - served.nextUpdate!.getTime())} past nextUpdate`;
      if (failures === 0) return `no failed query; staple ${lab.stapler.status()[0]!.staple}`;
      return `staple kept through the failed queries before nextUpdate, ${lab.stapler.status()[0]!.staple === "none" ? "none after" : "still served"}`;
    },
  },
  "expire-then-fetch": {
    description: "no refresh before nextUpdate; after it no staple; the first handshake gets none and starts the fetch",
    defaultExpected: () =>
      "staple good until nextUpdate, no query before it; then none, first handshake refused: no staple, then staple good",
    async observe({ lab, policy, nodeClient, scenario, applyTimeline }) {
      await applyTimeline();
      const start = lab.stapler.status()[0]!;
      if (!start.nextUpdate) return `staple ${start.staple} at start`;
      const recorder = recordUntil(lab, start.nextUpdate.getTime() - lab.clock.now().getTime() + 10_000);
      // Just past nextUpdate on the lab's clock (node timers fire at the millisecond or after).
      await clockAt(lab, start.nextUpdate.getTime() + 5);
      const queriesBefore = (await recorder.until(() => true)).length;
      const expired = lab.stapler.status()[0]!.staple;
      const waiting = watchUntil(
        lab,
        scenario,
        "the fetch the first handshake after expiry triggered",
        (r) => r.event === "staple:updated",
        deadline(policy),
      );
      const first = await nodeClient.probe(lab.target);
      await waiting;
      return (
        `staple ${start.staple} until nextUpdate, ${queriesBefore === 0 ? "no query" : `${queriesBefore} queries`} before it; ` +
        `then ${expired}, first handshake ${first.outcome}, then staple ${lab.stapler.status()[0]!.staple}`
      );
    },
  },
  "renewed-certificate": {
    description: "the renewed certificate is served with the old certificate's staple (CertID mismatch)",
    defaultExpected: () => "staple good bytes, verify: wrong certificate",
    async observe({ lab, policy, applyTimeline }) {
      await applyTimeline();
      const old = lab.stapler.manager.current();
      if (old === undefined) return "no staple of the old certificate to keep";
      const issuer = lab.ca.issuerOf(lab.leaf.serial);
      const renewed = await lab.ca.issueServer({
        dnsNames: [LAB_SERVER_NAME],
        ipAddresses: [lab.target.host],
        ocspUrl: lab.responder.url,
        ...(issuer !== undefined && issuer !== lab.ca.rootSerial ? { issuer } : {}),
      });
      const stapler = await ownStapler(lab, policy, renewed, (s) =>
        s.withStapleSource({ kind: "bytes", der: new Uint8Array(old) }),
      );
      return servedBy(lab, stapler, describeUnverified(stapler.status()[0]!));
    },
  },
} as const satisfies Record<string, StaplerCheckDefinition>;

/**
 * `staple good as-received, verify: bad signature`, `staple tryLater as-received, verify: not
 * successful`, `staple unreadable bytes, verify: malformed`, `no staple (none)`: what the
 * stapler serves, from which staple source, and the OcspVerifyError reason verifyOcspResponse
 * gives for it (`passes` when none).
 */
export function describeUnverified(snap: StapleSnapshot): string {
  if (snap.staple === "none") return `no staple (${snap.stapleSource})`;
  const reason = snap.verifyError === undefined ? "passes" : (/\(([^)]+)\)/.exec(snap.verifyError)?.[1] ?? snap.verifyError);
  return `staple ${snap.staple} ${snap.stapleSource}, verify: ${reason}`;
}

/** The names a scenario file may give as `stapler_check`. */
export const STAPLER_CHECK_NAMES = Object.keys(STAPLER_CHECKS) as [
  keyof typeof STAPLER_CHECKS,
  ...Array<keyof typeof STAPLER_CHECKS>,
];

/** One stapler check name. */
export type StaplerCheckName = keyof typeof STAPLER_CHECKS;
