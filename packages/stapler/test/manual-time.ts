/**
 * Helpers for the stapler's tests on a ManualClock. The clock decides when a refresh, a retry
 * or a response_timeout falls due; what a timer starts (a real HTTP query over 127.0.0.1,
 * WebCrypto signing and verification) still takes real time, so a test awaits the manager's
 * events after advancing the clock instead of assuming the outcome is already in.
 */
import { once, type EventEmitter } from "node:events";
import { ManualClock, systemClock } from "@ocsp-lab/ocsp";
import { eventually } from "../../../test-support/index.js";

/**
 * A ManualClock at the current whole second of the system clock. Real clients (curl, gnutls-cli)
 * check the certificates and staples against real time, so the lab's time starts there; a whole
 * second because OCSP times are encoded to the second (GeneralizedTime without fraction).
 */
export function labClock(): ManualClock {
  return new ManualClock(Math.floor(systemClock.now().getTime() / 1000) * 1000);
}

/** The first argument of the next `event` of `emitter`; rejects after `timeoutMs` (real time). */
export function nextEvent<T>(emitter: EventEmitter, event: string, timeoutMs = 15_000): Promise<T> {
  return once(emitter, event, { signal: AbortSignal.timeout(timeoutMs) }).then(([v]) => v as T);
}

/** Advance `clock` by `ms`, then resolve with the next `event` of `emitter` (listened to before advancing). */
export async function advanceFor<T>(clock: ManualClock, ms: number, emitter: EventEmitter, event: string): Promise<T> {
  const next = nextEvent<T>(emitter, event);
  await clock.advance(ms);
  return next;
}

/**
 * Wait (real time, polled with a deadline) until the earliest pending timer of `clock` is due at
 * `at` (ms since the epoch): e.g. a query's response_timeout timer, set once its request is sent.
 */
export async function timerDueAt(clock: ManualClock, at: number, what: string): Promise<void> {
  await eventually(
    () => clock.nextTimerAt,
    (t) => t === at,
    10_000,
    what,
  );
}

/**
 * Wait until a timer of `clock` is due exactly `ms` from now, as the retry a failed query
 * schedules (recovery_frequency later), then advance by `ms`, which runs it. Waiting for that
 * due time, not for any timer, tells the retry from the response_timeout timer of a query still
 * in flight (due response_timeout after the query began, on a clock that has not moved).
 */
export async function advanceWhenDue(clock: ManualClock, ms: number, what: string): Promise<void> {
  await timerDueAt(clock, clock.now().getTime() + ms, what);
  await clock.advance(ms);
}
