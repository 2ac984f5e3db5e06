import { CRLReason } from "@ocsp-lab/ocsp";
import type { FetchError, PollingPolicy, PollingPolicyInput, StapleManager, StapleSnapshot } from "@ocsp-lab/stapler";
import { ScenarioTimeoutError } from "./errors.js";
import type { Lab } from "./lab.js";
import type { ClientDriver, ClientObservation } from "./clients/client.js";

/**
 * The stapler's polling policy, time-scaled so a whole run takes seconds: one hour of
 * query_frequency becomes one second, a minute of recovery_frequency a fifth of a second.
 * response_timeout keeps its real-world 1 s: a query takes 50–100 ms here, and a busy CI
 * machine must not turn a healthy query into a timeout. Retries stay five times faster than
 * regular queries, so the report can tell one from the other.
 */
export const SCALED_POLICY = {
  query_frequency: 1,
  response_timeout: 1,
  recovery_frequency: 0.2,
  recovery_max_tries: 3,
} as const satisfies PollingPolicyInput;

/** What a scenario hands the report about the stapler itself. */
export interface StaplerCheck {
  expected: string;
  observed: string;
}

/** Everything a scenario may act on. */
export interface ScenarioContext {
  /**
   * The lab, on a TurnClock (as runScenarios starts it): the retry cadence is judged from the
   * stapler's schedule against the instant of each failure, which only a TurnClock makes exact.
   */
  lab: Lab;
  /** The policy in force, in milliseconds. */
  policy: PollingPolicy;
  /** The strict Node client, for probes during an outage. */
  nodeClient: ClientDriver;
}

/** One revocation/timeout/recovery case and what each client must do in it. */
export interface Scenario {
  name: string;
  /** One line for `ocsp-lab run --list` and the report. */
  summary: string;
  policy: PollingPolicyInput;
  /** Expected outcome per client name (see ClientObservation.outcome). */
  expect: Record<string, string>;
  /** Drive the lab into the state to probe; resolves once the stapler is there. */
  act(ctx: ScenarioContext): Promise<StaplerCheck>;
}

/** A recorded stapler event with the lab-clock time it arrived, in ms since the epoch. */
interface Recorded {
  event: "staple:updated" | "staple:invalidated" | "fetch:failed";
  at: number;
  snapshot: StapleSnapshot;
  error?: FetchError;
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

function staplerState(scenario: string, status: "good" | "revoked" | "unknown"): Scenario["act"] {
  return async ({ lab, policy }) => {
    const current = lab.stapler.status()[0]!.staple;
    if (current !== status) {
      await watchUntil(
        lab,
        scenario,
        `staple with status ${status}`,
        (r) => r.event === "staple:updated" && r.snapshot.staple === status,
        deadline(policy),
      );
    }
    return { expected: `staple ${status}`, observed: `staple ${lab.stapler.status()[0]!.staple}` };
  };
}

/** The scenarios of `ocsp-lab run`, in order. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: "good",
    summary: "the responder says good: every client connects and sees a good staple",
    policy: SCALED_POLICY,
    expect: { node: "connected", curl: "connected", openssl: "staple: good" },
    act: staplerState("good", "good"),
  },
  {
    name: "revoked",
    summary: "the certificate is revoked (keyCompromise) in the CA; the next query staples revoked and strict clients refuse",
    policy: SCALED_POLICY,
    expect: { node: "refused: revoked", curl: "refused: revoked", openssl: "staple: revoked" },
    async act(ctx) {
      await ctx.lab.ca.revoke(ctx.lab.leaf.serial, { reason: CRLReason.keyCompromise });
      return staplerState("revoked", "revoked")(ctx);
    },
  },
  {
    name: "unknown",
    summary: "the responder answers unknown for the certificate; strict clients refuse",
    policy: SCALED_POLICY,
    expect: { node: "refused: unknown", curl: "refused: unknown", openssl: "staple: unknown" },
    async act(ctx) {
      ctx.lab.responder.setStatus(ctx.lab.leaf.serial, { status: "unknown" });
      return staplerState("unknown", "unknown")(ctx);
    },
  },
  {
    name: "responder-down",
    summary:
      "the responder drops every connection: retries every recovery_frequency, invalidated after recovery_max_tries, strict clients refused",
    policy: SCALED_POLICY,
    expect: { node: "refused: no staple", curl: "refused: no staple", openssl: "no staple" },
    async act({ lab, policy }) {
      const waiting = watchUntil(
        lab,
        "responder-down",
        "invalidation",
        (r) => r.event === "staple:invalidated",
        deadline(policy),
      );
      lab.responder.setFault({ kind: "close" });
      const events = await waiting;
      const failures = events.filter((e) => e.event === "fetch:failed");
      return {
        expected: `invalidated after ${policy.recoveryMaxTries} failed queries, retried every ${seconds(policy.recoveryFrequencyMs)}`,
        observed: `invalidated after ${failures.length} failed queries, ${retryCadence(failures, policy)}`,
      };
    },
  },
  {
    name: "recovers-within-max-tries",
    summary:
      "the responder fails recovery_max_tries − 1 times, then answers: the staple is kept throughout and no client is refused",
    policy: SCALED_POLICY,
    expect: { node: "connected", curl: "connected", openssl: "staple: good" },
    async act({ lab, policy, nodeClient }) {
      const tries = policy.recoveryMaxTries - 1;
      const probes: Array<Promise<ClientObservation>> = [];
      const waiting = watchUntil(
        lab,
        "recovers-within-max-tries",
        "a staple after the failures",
        (r, all) => {
          // Probe a strict client during the outage: it must still get the cached staple.
          if (r.event === "fetch:failed") probes.push(nodeClient.probe(lab.target));
          return r.event === "staple:updated" && all.some((e) => e.event === "fetch:failed");
        },
        deadline(policy),
      );
      lab.responder.setFault({ kind: "http-500", count: tries });
      const events = await waiting;
      const during = await Promise.all(probes);
      const failures = events.filter((e) => e.event === "fetch:failed").length;
      const invalidated = events.some((e) => e.event === "staple:invalidated");
      const refused = during.filter((o) => o.outcome !== "connected");
      return {
        expected: `${tries} failed queries, staple kept, restored`,
        observed:
          `${failures} failed queries, ` +
          (invalidated
            ? "staple invalidated"
            : refused.length > 0
              ? `client refused during outage (${refused[0]!.outcome})`
              : "staple kept") +
          `, ${lab.stapler.status()[0]!.staple === "good" ? "restored" : "not restored"}`,
      };
    },
  },
  {
    name: "slow-responder",
    summary:
      "the responder answers after 2 × response_timeout: every query times out, the staple is invalidated, strict clients refused",
    policy: SCALED_POLICY,
    expect: { node: "refused: no staple", curl: "refused: no staple", openssl: "no staple" },
    async act({ lab, policy }) {
      const waiting = watchUntil(
        lab,
        "slow-responder",
        "invalidation",
        (r) => r.event === "staple:invalidated",
        deadline(policy),
      );
      lab.responder.setDelay(policy.responseTimeoutMs * 2);
      const events = await waiting;
      const failures = events.filter((e) => e.event === "fetch:failed");
      const timeouts = failures.filter((e) => e.error?.kind === "timeout").length;
      return {
        expected: `invalidated after ${policy.recoveryMaxTries} timeouts, retried every ${seconds(policy.recoveryFrequencyMs)}`,
        observed: `invalidated after ${timeouts} timeouts${timeouts !== failures.length ? ` (+${failures.length - timeouts} other failures)` : ""}, ${retryCadence(failures, policy)}`,
      };
    },
  },
  {
    name: "nginx-lazy",
    summary:
      "stapler mode lazy (nginx): nothing fetched at start; the first handshake gets no staple and triggers the fetch; later clients get the staple",
    policy: { ...SCALED_POLICY, mode: "lazy" },
    expect: { node: "connected", curl: "connected", openssl: "staple: good" },
    async act({ lab, policy, nodeClient }) {
      const before = lab.stapler.status()[0]!.staple;
      const waiting = watchUntil(
        lab,
        "nginx-lazy",
        "the fetch the first handshake triggered",
        (r) => r.event === "staple:updated",
        deadline(policy),
      );
      const first = await nodeClient.probe(lab.target);
      await waiting;
      return {
        expected: "no staple at start, first handshake refused: no staple, then staple good",
        observed: `${before === "none" ? "no staple at start" : `staple ${before} at start`}, first handshake ${first.outcome}, then staple ${lab.stapler.status()[0]!.staple}`,
      };
    },
  },
  {
    name: "apache-fake-trylater",
    summary:
      "stapler mode in-handshake with on_failure staple-errors (Apache): the responder is down, each handshake waits for the fetch and gets a made-up tryLater staple; strict clients refuse",
    policy: { ...SCALED_POLICY, mode: "in-handshake", on_failure: "staple-errors" },
    expect: { node: "refused: not successful", curl: "refused: not successful", openssl: "staple: trylater" },
    async act({ lab, nodeClient }) {
      lab.responder.setFault({ kind: "close" });
      await nodeClient.probe(lab.target);
      const snap = lab.stapler.status()[0]!;
      return {
        expected: "staple tryLater (made-up)",
        observed: `staple ${snap.staple}${snap.source ? ` (${snap.source})` : ""}`,
      };
    },
  },
];
