import { CERT_STATUS_NAMES, UNSUCCESSFUL_STATUS_NAMES } from "@ocsp-lab/ocsp";
import type { StapleSnapshot, StapleState, StartedStaplingServer } from "@ocsp-lab/stapler";
import { LabStateError, StapleTimeoutError, UsageError } from "./errors.js";

/**
 * Every staple state a handshake can get (StapleState): a certificate status (RFC 6960 §2.2),
 * an unsuccessful responseStatus stapled as such (RFC 6960 §2.3: tryLater…), `unreadable`
 * bytes, or `none`.
 */
export const STAPLE_STATES: readonly StapleState[] = [...CERT_STATUS_NAMES, ...UNSUCCESSFUL_STATUS_NAMES, "unreadable", "none"];

/** Default deadline of StapleWatch.becomes, in real milliseconds. */
export const BECOMES_TIMEOUT_MS = 10_000;

/** How many states a StapleTimeoutError lists (the latest ones). */
const SEEN_KEPT = 10;

/** Options of StapleWatch.becomes. */
export interface BecomesOptions {
  /**
   * Deadline in real milliseconds (the test runner's time, not the lab's clock: with a
   * ManualClock the stapler's own schedule moves only when the test advances it); default 10,000.
   */
  timeoutMs?: number;
  /**
   * Whether to make the stapler query now (default true). false: only watch what the stapler
   * does on its own schedule (the policy's query_frequency, recovery_frequency, a clock you
   * advance), for tests of that schedule.
   */
  query?: boolean;
}

/** Made by StartedOcspLab.staple(); what it needs of the server serving the certificate. */
export interface StapleWatchTarget {
  stapler: StartedStaplingServer;
  /** Canonical serial of the certificate. */
  serial: string;
  /** For messages: `serial 0a1b… at 127.0.0.1:41234`. */
  where: string;
  /** Callbacks run whenever the lab changes what the responder or the CA says (revoke, responder.set). */
  wakers: Set<() => void>;
  /** Aborted when the server (or the lab) stops. */
  stopped: AbortSignal;
}

/**
 * What one stapler serves for one certificate, and a wait for it to change: no sleeps, only
 * the stapler's events (`staple:updated`, `staple:invalidated`, `fetch:failed`) and a deadline.
 */
export class StapleWatch {
  private readonly t: StapleWatchTarget;

  /** See StartedOcspLab.staple(). */
  constructor(target: StapleWatchTarget) {
    this.t = target;
  }

  /** Canonical serial of the certificate watched. */
  get serial(): string {
    return this.t.serial;
  }

  /**
   * The stapler's snapshot for the certificate now (what the next handshake is stapled with,
   * its times, the last query).
   * @throws LabStateError when the server no longer serves it.
   */
  snapshot(): StapleSnapshot {
    const s = this.t.stapler.status().find((x) => x.serial === this.t.serial);
    if (!s) throw new LabStateError(`${this.t.where}: the stapler no longer serves this certificate`);
    return s;
  }

  /** What the next handshake is stapled with now (`snapshot().staple`). */
  get state(): StapleState {
    return this.snapshot().staple;
  }

  /**
   * Resolve with the stapler's snapshot once it serves a `wanted` staple (see STAPLE_STATES;
   * `good`, `revoked`, `unknown`, `none` are the usual ones). With `query` (the default) it
   * first makes the stapler query now (StartedStaplingServer.queryNow, so no waiting for
   * query_frequency) and judges only what the stapler serves from then on: a staple already
   * in place counts after that query, never before. As the stapler shares a query already
   * under way, an answer that is not `wanted` is followed by one more query, surely begun
   * after this call. When `wanted` is what failed
   * queries lead to (`none` under on_failure `invalidate`, an error answer such as `tryLater`
   * under `staple-errors`), it queries again at once while queries fail and the stapler is
   * below the policy's recovery_max_tries, instead of waiting recovery_frequency between
   * them; for any other state one failed query is left to the stapler's own retries (so
   * waiting for `good` never drops a staple). Then it waits for the stapler's own queries,
   * and queries again whenever the lab changes the responder or the CA (`lab.revoke`,
   * `lab.responder.set`) meanwhile.
   * @throws UsageError (rejects) for a state not in STAPLE_STATES; StapleTimeoutError (code
   * OCSP_LAB_STAPLE_TIMEOUT, listing what the stapler served meanwhile) at the deadline;
   * LabStateError when the server or the lab stops first.
   */
  becomes(wanted: StapleState, options: BecomesOptions = {}): Promise<StapleSnapshot> {
    if (!STAPLE_STATES.includes(wanted)) return Promise.reject(new UsageError("staple state", wanted, STAPLE_STATES));
    const timeoutMs = options.timeoutMs ?? BECOMES_TIMEOUT_MS;
    const query = options.query ?? true;
    const { stapler, serial, where, wakers, stopped } = this.t;
    const seen: string[] = [];
    // States that failed queries lead to: worth querying again at once after a failure.
    const byFailures = wanted === "none" || (UNSUCCESSFUL_STATUS_NAMES as readonly string[]).includes(wanted);
    return new Promise<StapleSnapshot>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | undefined, snap?: StapleSnapshot): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        stapler.off("staple:updated", onSnapshot);
        stapler.off("staple:invalidated", onSnapshot);
        stapler.off("fetch:failed", onFailed);
        stopped.removeEventListener("abort", onStop);
        wakers.delete(wake);
        if (err) reject(err);
        else resolve(snap!);
      };
      /** Record what is served now; finish when it is `wanted`. */
      const check = (): boolean => {
        if (done) return true;
        let snap: StapleSnapshot;
        try {
          snap = this.snapshot();
        } catch (err) {
          finish(err as Error);
          return true;
        }
        const line = describe(snap);
        if (seen.at(-1) !== line) seen.push(line);
        if (snap.staple !== wanted) return false;
        finish(undefined, snap);
        return true;
      };
      const onSnapshot = (s: StapleSnapshot): void => {
        if (s.serial === serial) check();
      };
      const onFailed = (e: { snapshot: StapleSnapshot }): void => onSnapshot(e.snapshot);
      const onStop = (): void => finish(new LabStateError(`${where}: the server stopped while waiting for a "${wanted}" staple`));
      /** Query now; again at once while queries fail and the stapler is still retrying. */
      const drive = async (): Promise<void> => {
        for (let tries = 1; !done; tries += 1) {
          const [result] = await stapler.queryNow(serial);
          if (check()) return;
          // The first may have joined a query already under way, begun before the change waited
          // for (StapleManager.queryNow shares one query): one more, surely begun after this call.
          if (tries === 1 && result?.stapled) continue;
          const failures = this.snapshot().consecutiveFailures;
          if (!byFailures || !result || result.stapled || failures === 0 || tries >= stapler.policy.recoveryMaxTries) return;
        }
      };
      const wake = (): void => {
        if (query && !done) drive().catch((err: unknown) => finish(err as Error));
      };
      const timer = setTimeout(
        () =>
          finish(
            new StapleTimeoutError(where, wanted, timeoutMs, seen.length > SEEN_KEPT ? ["…", ...seen.slice(-SEEN_KEPT)] : seen),
          ),
        timeoutMs,
      );
      if (stopped.aborted) return onStop();
      stapler.on("staple:updated", onSnapshot);
      stapler.on("staple:invalidated", onSnapshot);
      stapler.on("fetch:failed", onFailed);
      stopped.addEventListener("abort", onStop);
      wakers.add(wake);
      if (query) wake();
      else check();
    });
  }
}

/** One line of what a snapshot serves: `good`, `none after 2 failed queries (timeout …)`, `good, unverified (…)`. */
function describe(s: StapleSnapshot): string {
  let line: string = s.staple;
  if (s.verifyError !== undefined) line += `, unverified (${s.verifyError})`;
  if (s.consecutiveFailures > 0)
    line += ` after ${s.consecutiveFailures} failed quer${s.consecutiveFailures === 1 ? "y" : "ies"} (${s.lastFetch?.error ?? "?"})`;
  return line;
}
