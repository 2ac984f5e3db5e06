import { systemClock, type Clock, type Timer } from "@ocsp-lab/ocsp";

/**
 * A Clock on real time whose `now()` stands still within one synchronous run of JavaScript:
 * the first call reads the underlying clock, and every call until the current job (and the
 * microtasks queued before the first call) has finished returns that same instant. So code that
 * reads the time and, in the same synchronous run, emits an event carries to its listener the
 * exact instant it computed with: a stapler that schedules its next query `delay` after "now"
 * and then emits `fetch:failed` lets the listener check `snapshot.nextFetch − now() === delay`
 * exactly, whatever the machine's speed. Timers are the underlying clock's, unchanged.
 */
export class TurnClock implements Clock {
  private readonly base: Clock;
  private frozen: number | undefined;

  /** @param base the clock read and scheduled on; default the system clock. */
  constructor(base: Clock = systemClock) {
    this.base = base;
  }

  /** The instant of the current synchronous run (read from the underlying clock on its first call). */
  now(): Date {
    if (this.frozen === undefined) {
      this.frozen = this.base.now().getTime();
      queueMicrotask(() => {
        this.frozen = undefined;
      });
    }
    return new Date(this.frozen);
  }

  /** The underlying clock's timer: `callback` after `delayMs` milliseconds. */
  setTimeout(callback: () => void, delayMs: number): Timer {
    return this.base.setTimeout(callback, delayMs);
  }
}
