import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { join } from "node:path";
import { ManualClock } from "@ocsp-lab/ocsp";
import { parsePolicy, type PollingPolicyInput } from "@ocsp-lab/stapler";
import { NodeStrictClient, SCALED_POLICY, TurnClock, builtInScenarios, startLab, type StaplerCheck } from "@ocsp-lab/harness";
import { eventually, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

describe("TurnClock", () => {
  it("stands still within one synchronous run and moves on across turns", async () => {
    const clock = new TurnClock();
    const first = clock.now();
    // Real time passes inside this synchronous run...
    while (Date.now() <= first.getTime() + 2) {
      // spin
    }
    // ...but not for the clock.
    expect(clock.now().getTime()).toBe(first.getTime());
    // In a later turn it reads real time again.
    const later = await eventually(
      () => clock.now().getTime(),
      (t) => t > first.getTime(),
      5_000,
      "the clock to move",
    );
    expect(later).toBeGreaterThan(first.getTime());
  });

  it("reads and schedules on the clock it wraps", async () => {
    const base = new ManualClock(Date.UTC(2026, 0, 1));
    const clock = new TurnClock(base);
    expect(clock.now().toISOString()).toBe("2026-01-01T00:00:00.000Z");
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(base.now().getTime()), 200);
    await base.advance(199);
    expect(fired).toEqual([]);
    await base.advance(1);
    expect(fired).toEqual([Date.UTC(2026, 0, 1) + 200]);
    expect(clock.now().toISOString()).toBe("2026-01-01T00:00:00.200Z");
  });
});

/** Run one scenario's act() on a fresh lab whose stapler follows `staplerPolicy`, judged against `judgedPolicy`. */
async function act(name: string, staplerPolicy: PollingPolicyInput, judgedPolicy: PollingPolicyInput): Promise<StaplerCheck> {
  const scenario = (await builtInScenarios()).find((s) => s.name === name)!;
  const lab = await startLab({ stateDir: join(dir, name), policy: staplerPolicy, clock: new TurnClock() });
  try {
    return await scenario.act({ lab, policy: parsePolicy(judgedPolicy), nodeClient: new NodeStrictClient() });
  } finally {
    await lab.stop();
  }
}

describe("retry cadence, judged from the stapler's own schedule", () => {
  it("responder-down: every failure scheduled the next query recovery_frequency later", async () => {
    const check = await act("responder-down", SCALED_POLICY, SCALED_POLICY);
    expect(check.expected).toBe("invalidated after 3 failed queries, retried every 0.2 s");
    expect(check.observed).toBe(check.expected);
  });

  it("a stapler retrying at another cadence is reported with the delays it scheduled", async () => {
    // The stapler retries every 0.3 s; the scenario expects 0.2 s. No timing tolerance can
    // blur the two: the delays are read from the stapler's nextFetch, not from a stopwatch.
    const check = await act("responder-down", { ...SCALED_POLICY, recovery_frequency: 0.3 }, SCALED_POLICY);
    expect(check.expected).toBe("invalidated after 3 failed queries, retried every 0.2 s");
    expect(check.observed).toBe("invalidated after 3 failed queries, retries scheduled 0.3 s, 0.3 s, 0.3 s after each failure");
  });

  it("a stapler retrying sooner than recovery_frequency is caught by when its retries really began", async () => {
    // Timers never fire early, so a retry that began before recovery_frequency had passed is
    // the stapler's doing: reported with its real delay, however fast or slow the machine is.
    const check = await act("responder-down", { ...SCALED_POLICY, recovery_frequency: 0.05 }, SCALED_POLICY);
    expect(check.expected).toBe("invalidated after 3 failed queries, retried every 0.2 s");
    expect(check.observed).toMatch(/^invalidated after 3 failed queries, a retry began 0\.\d+ s after the failure before it$/);
  });
});

/** Run a built-in scenario's act() as `ocsp-lab run` does (its response_validity too), with the stapler on `staplerPolicy`. */
async function actAs(name: string, staplerPolicy?: PollingPolicyInput): Promise<StaplerCheck> {
  const scenario = (await builtInScenarios()).find((s) => s.name === name)!;
  const lab = await startLab({
    stateDir: join(dir, name),
    policy: staplerPolicy ?? scenario.policy,
    clock: new TurnClock(),
    ...(scenario.responseValiditySeconds !== undefined ? { responseValiditySeconds: scenario.responseValiditySeconds } : {}),
  });
  try {
    const check = await scenario.act({ lab, policy: parsePolicy(scenario.policy), nodeClient: new NodeStrictClient() });
    await check.stop?.();
    return check;
  } finally {
    await lab.stop();
  }
}

describe("checks that judge a staple's lifetime and CertID", () => {
  it("served-until-expiry: a stapler that drops the staple after recovery_max_tries is caught before nextUpdate", async () => {
    const scenario = (await builtInScenarios()).find((s) => s.name === "served-until-expiry")!;
    const check = await actAs("served-until-expiry", { ...scenario.policy, on_failure: "invalidate" });
    expect(check.expected).toBe("staple kept through the failed queries before nextUpdate, none after");
    expect(check.observed).toMatch(/^staple dropped \d+(\.\d+)? s before nextUpdate$/);
  });

  it("cert-id-hash: a stapler asking with SHA-1 is reported with the hash of its staple", async () => {
    const check = await actAs("staple-cert-id-sha256", SCALED_POLICY);
    expect(check.expected).toBe("staple good, CertID SHA-256");
    expect(check.observed).toBe("staple good, CertID SHA-1");
  });

  it("restart-persisted: the restarted stapler serves the persisted staple on a port of its own", async () => {
    const check = await actAs("restart-persisted-staple");
    expect(check.observed).toBe(check.expected);
    expect(check.target?.port).toBeGreaterThan(0);
    expect(JSON.parse(check.detail!)).toMatchObject({ staple: "good", source: "persisted" });
  });

  it("renewed-certificate: the renewed certificate is served with the old staple", async () => {
    const check = await actAs("renewed-certificate-old-staple");
    expect(check.observed).toBe("staple good bytes, verify: wrong certificate");
    expect(JSON.parse(check.detail!)).toMatchObject({ stapleSource: "bytes", staple: "good" });
  });
});
