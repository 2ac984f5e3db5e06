import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { ManualClock } from "@ocsp-lab/ocsp";
import { parsePolicy } from "@ocsp-lab/stapler";
import {
  InvalidStepError,
  NodeStrictClient,
  applyStep,
  SCALED_POLICY,
  TurnClock,
  builtInScenarios,
  loadScenarioFile,
  playTimeline,
  startLab,
  timelineStepSchema,
  type Scenario,
  type StaplerCheck,
} from "@ocsp-lab/harness";
import { eventually, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

/**
 * Run a scenario as `ocsp-lab run` does (a TurnClock lab, its before-start steps given to
 * startLab), optionally with a stapler on another policy; returns the stapler check and the
 * responder's outcomes for the lab's certificate, oldest first.
 */
async function act(
  scenario: Scenario,
  options: { beforeStapler?: boolean } = {},
): Promise<{ check: StaplerCheck; outcomes: string[] }> {
  const lab = await startLab({
    stateDir: join(dir, scenario.name),
    policy: scenario.policy,
    clock: new TurnClock(),
    ...(options.beforeStapler === false ? {} : { beforeStapler: (parts) => scenario.beforeStapler(parts) }),
  });
  try {
    const check = await scenario.act({ lab, policy: parsePolicy(scenario.policy), nodeClient: new NodeStrictClient() });
    return { check, outcomes: lab.responder.requests({ serial: lab.leaf.serial }).map((e) => e.outcome) };
  } finally {
    await lab.stop();
  }
}

const builtIn = async (name: string): Promise<Scenario> => (await builtInScenarios()).find((s) => s.name === name)!;

async function write(name: string, lines: string[]): Promise<string> {
  const file = join(dir, name);
  await fs.writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

describe("a timeline played through the library", () => {
  it("applies a count: 1 status to exactly one answer, and a later step no earlier than its at", async () => {
    const clock = new ManualClock();
    const lab = await startLab({ stateDir: join(dir, "lab"), policy: SCALED_POLICY, clock });
    try {
      const serial = lab.leaf.serial;
      const start = clock.now().getTime();
      const steps = timelineStepSchema.array().parse([
        { at: "0s", status: "unknown", count: 1 },
        { at: "2500ms", revoke: "keyCompromise" },
      ]);
      const playing = playTimeline(lab, steps);
      // The stapler's next query (1 s) and the timeline's revoke step (2.5 s) are both waiting.
      await eventually(
        () => clock.pendingTimers,
        (n) => n >= 2,
        5_000,
        "the timeline's timer",
      );
      const query = async (ms: number): Promise<void> => {
        const updated = once(lab.stapler.manager, "staple:updated");
        await clock.advance(ms);
        await updated;
      };
      await query(1000); // 1 s: the counted unknown
      await query(1000); // 2 s: the count is used up, the CA's good again
      await clock.advance(500); // 2.5 s: the revoke step
      await playing;
      await query(500); // 3 s: revoked

      const log = lab.responder.requests({ serial });
      expect(log.map((e) => e.outcome)).toEqual(["good", "unknown", "good", "revoked"]);
      // count: 1 — exactly one answer came from the counted behaviour.
      expect(log.filter((e) => e.outcome === "unknown")).toHaveLength(1);
      expect(log.filter((e) => e.behaviour === `serial:${serial}`)).toHaveLength(1);
      // at: 2500ms — no answer before that instant (lab clock) says revoked; a lower bound only.
      for (const e of log) {
        if (e.outcome === "revoked") expect(e.time.getTime() - start).toBeGreaterThanOrEqual(2500);
        else expect(e.time.getTime() - start).toBeLessThan(2500);
      }
      expect(lab.ca.get(serial)!.revocation!.time).toBe(new Date(start + 2500).toISOString());
    } finally {
      await lab.stop();
    }
  });
});

describe("playTimeline's afterStep", () => {
  it("runs right after each step is applied, in order, with its index, before the next step is waited for", async () => {
    const lab = await startLab({ stateDir: join(dir, "after-step"), policy: SCALED_POLICY, clock: new TurnClock() });
    try {
      const steps = [
        timelineStepSchema.parse({ at: "0s", expect: { node: "connected" } }),
        timelineStepSchema.parse({ at: "0s", revoke: "keyCompromise" }),
        timelineStepSchema.parse({ at: "100ms", responder: "down" }),
      ];
      const start = lab.clock.now().getTime();
      const seen: string[] = [];
      await playTimeline(lab, steps, async (_step, index) => {
        seen.push(`${index}:${lab.ca.status(lab.leaf.serial).status}:${lab.clock.now().getTime() - start >= steps[index]!.at}`);
      });
      expect(seen).toEqual(["0:good:true", "1:revoked:true", "2:revoked:true"]);
    } finally {
      await lab.stop();
    }
  });
});

describe("revoke_issuer", () => {
  it("revokes the intermediate that issued the certificate, which stays good itself", async () => {
    // Scaled retries: the responder picks the new intermediate up a moment after it is created.
    const lab = await startLab({ stateDir: join(dir, "mid"), policy: SCALED_POLICY, leaf: { issuer: "intermediate" } });
    try {
      const issuer = lab.ca.issuerOf(lab.leaf.serial)!;
      expect(issuer).not.toBe(lab.ca.rootSerial);
      await applyStep(lab, timelineStepSchema.parse({ at: "0s", revoke_issuer: "cACompromise" }));
      expect(lab.ca.status(issuer)).toMatchObject({ status: "revoked", revocationReason: 2 });
      expect(lab.ca.status(lab.leaf.serial).status).toBe("good");
    } finally {
      await lab.stop();
    }
  });

  it("refuses a certificate the root issued, saying what to give", async () => {
    const lab = await startLab({ stateDir: join(dir, "root"), policy: SCALED_POLICY });
    try {
      const step = timelineStepSchema.parse({ at: "0s", revoke_issuer: "cACompromise" });
      await expect(applyStep(lab, step)).rejects.toThrow(InvalidStepError);
      await expect(applyStep(lab, step)).rejects.toThrow(
        "timeline step revoke_issuer: the certificate is issued by the root: give certificate: { issuer: intermediate }",
      );
    } finally {
      await lab.stop();
    }
  });
});

describe("before_start steps", () => {
  it("are applied before the stapler's first query: unknown after issuance really starts unknown", async () => {
    const { check, outcomes } = await act(await builtIn("unknown-after-issuance"));
    expect(outcomes[0]).toBe("unknown");
    expect(check.expected).toBe("staple unknown, good");
    expect(check.observed).toBe(check.expected);
  });

  it("make act() refuse a lab started without them, naming the file and the step", async () => {
    await expect(act(await builtIn("unknown-after-issuance"), { beforeStapler: false })).rejects.toThrow(
      /26-unknown-after-issuance\.yaml: timeline\.0\.before_start: the lab was started without this step/,
    );
  });
});

describe("the staple-sequence check", () => {
  it("on hold, then released: the staples go good, revoked, good and the hold is seen within one query_frequency", async () => {
    const { check, outcomes } = await act(await builtIn("on-hold-released"));
    expect(check.expected).toBe("staple good, revoked, good; seen within 1 s of the revocation");
    expect(check.observed).toBe(check.expected);
    expect(outcomes).toContain("revoked");
    expect(outcomes[outcomes.length - 1]).toBe("good");
  });

  it("revoked mid-run: good, then revoked within one query_frequency", async () => {
    const { check } = await act(await builtIn("revoked-mid-run"));
    expect(check.observed).toBe("staple good, revoked; seen within 1 s of the revocation");
  });

  it("reports a revocation the stapler only saw a query late, from its own schedule", async () => {
    // The responder answers good once more after the revocation (a lagging responder): the
    // query scheduled within 1 s misses it, the next one (more than 1 s after) staples revoked.
    const file = await write("late.yaml", [
      "name: late",
      "description: a responder one answer behind the CA's revocation",
      "timeline:",
      "  - { at: 1500ms, status: good, count: 1 }",
      "  - { at: 1500ms, revoke: keyCompromise }",
      "stapler_check: staple-sequence",
      'expect: { stapler: "staple good, revoked; seen within 1 s of the revocation" }',
    ]);
    const { check, outcomes } = await act(await loadScenarioFile(file));
    expect(outcomes.slice(-2)).toEqual(["good", "revoked"]);
    expect(check.observed).toMatch(/^staple good, revoked; seen by the query scheduled 1\.\d+ s after the revocation$/);
  });

  it("describes the states it saw when the expected last one never comes", async () => {
    const file = await write("never.yaml", [
      "name: never",
      "description: expects a revoked staple that never comes",
      "policy: { query_frequency: 0.2, response_timeout: 1, recovery_frequency: 0.1, recovery_max_tries: 1 }",
      "stapler_check: staple-sequence",
      'expect: { stapler: "staple good, revoked" }',
    ]);
    const { check } = await act(await loadScenarioFile(file));
    expect(check.observed).toBe("staple good");
  });
});

describe("the staple-status check with a reason", () => {
  it("names the staple's revocation reason when the file's expectation does", async () => {
    const { check } = await act(await builtIn("revoked-superseded"));
    expect(check.expected).toBe("staple revoked (superseded)");
    expect(check.observed).toBe("staple revoked (superseded)");
  });

  it("reports the reason stapled, not the one expected", async () => {
    const file = await write("reason.yaml", [
      "name: reason",
      "description: expects keyCompromise, the CA says superseded",
      "timeline: [{ at: 0s, revoke: superseded }]",
      'expect: { stapler: "staple revoked (keyCompromise)" }',
    ]);
    const { check } = await act(await loadScenarioFile(file));
    expect(check.observed).toBe("staple revoked (superseded)");
  });

  it("without a reason in the expectation keeps the plain text", async () => {
    const { check } = await act(await builtIn("revoked"));
    expect(check.observed).toBe("staple revoked");
  });
});
