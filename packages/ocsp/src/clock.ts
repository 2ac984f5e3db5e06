/**
 * A timer scheduled on a Clock. `unref()` lets the process exit while the timer is pending
 * (as node's Timeout.unref), `ref()` undoes it; `cancel()` stops it (idempotent).
 */
export interface Timer {
  cancel(): void;
  ref(): void;
  unref(): void;
}

/**
 * Time source and scheduler. Everything whose result depends on "now" (validity windows,
 * thisUpdate, revocation times, staple freshness) or that acts later (refresh, retries,
 * expiry) takes a Clock, so tests and scenarios control time: `systemClock` in production,
 * `ManualClock` in tests (deterministic and instant).
 */
export interface Clock {
  /** Current time. */
  now(): Date;
  /** Call `callback` once, `delayMs` milliseconds of this clock's time from now. */
  setTimeout(callback: () => void, delayMs: number): Timer;
}

/** The wall clock and node's timers. Delays are capped at 2^31−1 ms, node's limit. */
export const systemClock: Clock = {
  now: () => new Date(),
  setTimeout(callback, delayMs) {
    const t = setTimeout(callback, timerDelay(delayMs));
    return {
      cancel: () => clearTimeout(t),
      ref: () => void t.ref(),
      unref: () => void t.unref(),
    };
  },
};

/** The longest delay node's setTimeout honours (2^31−1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The delay every Clock really waits for a requested `delayMs`: negative → 0, NaN → 1 (as
 * node), longer than MAX_TIMER_MS (Infinity included) → MAX_TIMER_MS (node would fire those at
 * once).
 */
export function timerDelay(delayMs: number): number {
  if (Number.isNaN(delayMs)) return 1;
  return Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
}

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
}

/**
 * A clock that moves only when told, for tests of behaviour over time (refresh, expiry,
 * retries) without real waiting: `advance(ms)` runs every timer that falls due, in time
 * order, each at its own instant, letting promises settle between them. Timers never keep
 * the process alive (ref/unref do nothing).
 */
export class ManualClock implements Clock {
  private ms: number;
  private seq = 0;
  private readonly pending = new Set<Pending>();

  /** @param start the initial time (a Date or ms since the epoch); default 2026-01-01T00:00:00Z. */
  constructor(start: Date | number = Date.UTC(2026, 0, 1)) {
    this.ms = typeof start === "number" ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.ms);
  }

  setTimeout(callback: () => void, delayMs: number): Timer {
    const entry: Pending = { at: this.ms + timerDelay(delayMs), seq: this.seq++, callback };
    this.pending.add(entry);
    return { cancel: () => void this.pending.delete(entry), ref: () => {}, unref: () => {} };
  }

  /** Timers not yet run. */
  get pendingTimers(): number {
    return this.pending.size;
  }

  /** When the next timer is due (ms since the epoch), or undefined when none is pending. */
  get nextTimerAt(): number | undefined {
    return this.next()?.at;
  }

  /**
   * Move time forward by `ms` (≥ 0), running each timer that falls due at its instant, with a
   * few event-loop turns (`settle`) after each, so promise chains a timer started can schedule
   * their own timers before the next one runs. Work outside JavaScript (sockets, WebCrypto in
   * the thread pool) may take longer: await its event rather than assume `advance` waited for it.
   */
  async advance(ms: number): Promise<void> {
    const end = this.ms + Math.max(0, ms);
    await settle();
    for (;;) {
      const due = this.next();
      if (!due || due.at > end) break;
      this.pending.delete(due);
      this.ms = Math.max(this.ms, due.at);
      due.callback();
      await settle();
    }
    this.ms = end;
    await settle();
  }

  /** Advance to the next pending timer and run it (and any due at the same instant); false when none is pending. */
  async runNext(): Promise<boolean> {
    const due = this.next();
    if (!due) return false;
    await this.advance(due.at - this.ms);
    return true;
  }

  /** Move to an absolute time (never backwards through timers: a time in the past only sets now). */
  async set(time: Date | number): Promise<void> {
    const t = typeof time === "number" ? time : time.getTime();
    if (t >= this.ms) await this.advance(t - this.ms);
    else this.ms = t;
  }

  private next(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending) if (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    return best;
  }
}

/**
 * Let pending promise callbacks and ready I/O callbacks run: `turns` turns of the event loop
 * (setImmediate). It guarantees nothing about work still in flight outside JavaScript (a socket
 * write, WebCrypto in the thread pool): to know that something has not happened yet, check
 * state the code under test exposes (a pending timer, a request log), not only a settle().
 */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
