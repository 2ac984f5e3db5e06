import type { Clock } from "@ocsp-lab/ocsp";

/**
 * Wait `ms` milliseconds of `clock`'s time (a ManualClock's time moves only when the test
 * advances it). Resolves true once the time has passed, or false as soon as `signal` is (or
 * becomes) aborted, the clock timer then cancelled: a stopped responder leaves no timer behind.
 * Never rejects.
 */
export function waitOnClock(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => {
      timer.cancel();
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
