import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, ManualClock, systemClock, timerDelay } from "@ocsp-lab/ocsp";

describe("ManualClock", () => {
  it("runs timers in time order, each at its own instant, and only when advanced past them", async () => {
    const clock = new ManualClock(1_000);
    const seen: [string, number][] = [];
    clock.setTimeout(() => seen.push(["b", clock.now().getTime()]), 200);
    clock.setTimeout(() => seen.push(["a", clock.now().getTime()]), 100);
    clock.setTimeout(() => seen.push(["c", clock.now().getTime()]), 200);
    await clock.advance(99);
    expect(seen).toEqual([]);
    expect(clock.nextTimerAt).toBe(1_100);
    await clock.advance(150);
    expect(seen).toEqual([
      ["a", 1_100],
      ["b", 1_200],
      ["c", 1_200],
    ]);
    expect(clock.now().getTime()).toBe(1_249);
    expect(clock.pendingTimers).toBe(0);
  });

  it("runs a timer scheduled by a timer within the same advance, and lets its promises settle", async () => {
    const clock = new ManualClock(0);
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now().getTime());
      void Promise.resolve().then(() => clock.setTimeout(() => seen.push(clock.now().getTime()), 50));
    }, 10);
    await clock.advance(100);
    expect(seen).toEqual([10, 60]);
  });

  it("cancels timers, and runNext jumps to the next one", async () => {
    const clock = new ManualClock(0);
    let fired = 0;
    const t = clock.setTimeout(() => fired++, 10);
    clock.setTimeout(() => fired++, 5_000);
    t.cancel();
    t.cancel();
    expect(await clock.runNext()).toBe(true);
    expect(fired).toBe(1);
    expect(clock.now().getTime()).toBe(5_000);
    expect(await clock.runNext()).toBe(false);
  });

  it("set() moves to an absolute time; backwards only changes now", async () => {
    const clock = new ManualClock(new Date("2026-01-01T00:00:00Z"));
    let fired = false;
    clock.setTimeout(() => (fired = true), 1_000);
    await clock.set(new Date("2025-12-31T00:00:00Z"));
    expect(fired).toBe(false);
    expect(clock.now().toISOString()).toBe("2025-12-31T00:00:00.000Z");
  });
});

describe("timerDelay", () => {
  it("waits as node does for odd delays, and never less than asked up to 2^31−1 ms", async () => {
    expect([timerDelay(-5), timerDelay(Number.NaN), timerDelay(10), timerDelay(Number.POSITIVE_INFINITY)]).toEqual([
      0,
      1,
      10,
      MAX_TIMER_MS,
    ]);
    const clock = new ManualClock(0);
    let fired = 0;
    clock.setTimeout(() => fired++, Number.NaN);
    clock.setTimeout(() => fired++, Number.POSITIVE_INFINITY);
    await clock.advance(1);
    expect(fired).toBe(1);
    expect(clock.nextTimerAt).toBe(1 + MAX_TIMER_MS - 1);
  });
});

describe("systemClock", () => {
  it("fires a real timer and can cancel one", async () => {
    let cancelledFired = false;
    const cancelled = systemClock.setTimeout(() => (cancelledFired = true), 1);
    cancelled.cancel();
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 5));
    expect(cancelledFired).toBe(false);
    expect(Math.abs(systemClock.now().getTime() - Date.now())).toBeLessThan(1_000);
  });
});
