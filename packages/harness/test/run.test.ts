import { describe, expect, it } from "vitest";
import { defaultJobs, runScenarios } from "@ocsp-lab/harness";
import { availableParallelism } from "node:os";

const NAMES = ["good", "revoked", "unknown"];

/** Run NAMES with the node client, recording when each scenario starts and finishes. */
async function traced(jobs: number) {
  const events: string[] = [];
  const report = await runScenarios({
    scenarios: NAMES,
    clients: ["node"],
    jobs,
    onScenarioStart: (s) => events.push(`start ${s.index} ${s.name} ${s.total}`),
    onScenarioDone: (r) => events.push(`done ${r.index} ${r.name} ${r.rows.length}`),
  });
  return { events, report };
}

describe("runScenarios, jobs", () => {
  it("defaults to the number of cores", () => {
    expect(defaultJobs()).toBe(availableParallelism());
  });

  it("runs up to `jobs` scenarios at once and reports them in the catalogue's order", async () => {
    const { events, report } = await traced(2);
    // Two labs start before either scenario finishes; the third starts only once one is done.
    expect(events.slice(0, 2)).toEqual(["start 0 good 3", "start 1 revoked 3"]);
    expect(events.indexOf("start 2 unknown 3")).toBeGreaterThan(events.findIndex((e) => e.startsWith("done ")));
    expect(events.filter((e) => e.startsWith("done ")).sort()).toEqual(["done 0 good 2", "done 1 revoked 2", "done 2 unknown 2"]);
    expect(report.jobs).toBe(2);
    expect(report.ok).toBe(true);
    expect(report.rows.map((r) => `${r.scenario}/${r.client}/${r.verdict}`)).toEqual([
      "good/stapler/ok",
      "good/node/ok",
      "revoked/stapler/ok",
      "revoked/node/ok",
      "unknown/stapler/ok",
      "unknown/node/ok",
    ]);
    expect(report.scenarios.map((s) => `${s.name}/${s.verdict}`)).toEqual(["good/ok", "revoked/ok", "unknown/ok"]);
    for (const s of report.scenarios) expect(s.durationMs).toBeGreaterThan(0);
  });

  it("with jobs 1 runs one scenario at a time", async () => {
    const { events, report } = await traced(1);
    expect(events).toEqual([
      "start 0 good 3",
      "done 0 good 2",
      "start 1 revoked 3",
      "done 1 revoked 2",
      "start 2 unknown 3",
      "done 2 unknown 2",
    ]);
    expect(report.jobs).toBe(1);
  });

  it("rejects a jobs count that is not a whole number ≥ 1", async () => {
    await expect(runScenarios({ scenarios: ["good"], jobs: 0 })).rejects.toThrow("jobs must be a whole number ≥ 1, got 0");
    await expect(runScenarios({ scenarios: ["good"], jobs: 1.5 })).rejects.toThrow(RangeError);
  });
});
