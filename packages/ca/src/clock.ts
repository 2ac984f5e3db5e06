/**
 * Time source. Everything whose result depends on "now" (validity windows, thisUpdate,
 * revocation times, staple freshness) takes a Clock so tests and scenarios can control it.
 */
export interface Clock {
  /** Current time. */
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };
