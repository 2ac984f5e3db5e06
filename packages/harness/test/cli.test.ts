import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { CertificateAuthority } from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import { builtInScenarios, formatScenarioList, main, type LabEndpoints } from "@ocsp-lab/harness";
import { curlCertStatus, inProcess, OCSP_LAB_BIN, eventually, run, startUp, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

const ocspLab = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [OCSP_LAB_BIN, ...args], { env: { ...process.env, OCSP_LAB_HOME: dir, ...env }, cwd: dir });

/** Run main() in-process with captured streams. */
async function mainCaptured(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(main, argv, { env: { OCSP_LAB_HOME: dir }, stopSignal: () => new Promise<string>(() => undefined) });
}

describe("ocsp-lab --version", () => {
  it("prints its package's version", async () => {
    const { version } = JSON.parse(await fs.readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await mainCaptured(["--version"])).toEqual({ code: 0, out: `${version}\n`, err: "" });
  });
});

describe("ocsp-lab run", () => {
  it("prints every scenario × client as expected and exits 0", async () => {
    const r = await ocspLab(["run"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const scenario of [
      "good",
      "revoked",
      "unknown",
      "responder-down",
      "recovers-within-max-tries",
      "slow-responder",
      "nginx-lazy",
      "apache-fake-trylater",
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^${scenario} +stapler`, "m"));
    }
    // The default table says `same` where the observation is the expectation, and fits 100 columns.
    expect(r.stdout).toMatch(/^ +node +refused: revoked +same +ok$/m);
    expect(r.stdout).toMatch(/^ +curl +refused: no staple +same +ok$/m);
    expect(r.stdout).toMatch(/^ +openssl +staple: trylater +same +ok$/m);
    for (const line of r.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100);
    // The eight scenarios above and every other file of the catalogue: a stapler row and three clients each.
    const scenarios = await builtInScenarios();
    // (plus, for steps with their own `expect`, one more row per client judged at that step).
    const summary = /(\d+) rows: (\d+) as expected, 0 mismatched, 0 skipped/.exec(r.stdout);
    expect(summary, r.stdout).not.toBeNull();
    expect(summary![2]).toBe(summary![1]);
    expect(Number(summary![1])).toBeGreaterThanOrEqual(scenarios.length * 4);
    expect(r.stdout).not.toContain("MISMATCH");
    // Progress on stderr: one line per scenario as it finished, each place 1..N once.
    const progress = r.stderr.split("\n").filter((l) => /^ocsp-lab run: \[\d+\//.test(l));
    expect(progress).toHaveLength(scenarios.length);
    for (const [i, l] of progress.entries())
      expect(l).toMatch(new RegExp(`^ocsp-lab run: \\[${i + 1}/${scenarios.length}\\] [a-z0-9-]+ ok \\(\\d+\\.\\d s\\)$`));
    expect(progress.map((l) => l.split(" ")[3]).sort()).toEqual(scenarios.map((s) => s.name).sort());
  });

  it("--wide prints the full text of every cell, one line per row", async () => {
    const r = await ocspLab(["run", "--wide", "--scenario", "revoked", "responder-down", "apache-fake-trylater", "nginx-lazy"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ +node +refused: revoked +refused: revoked +ok$/m);
    expect(r.stdout).toMatch(/^ +curl +refused: no staple +refused: no staple +ok$/m);
    expect(r.stdout).toMatch(/^ +openssl +staple: trylater +staple: trylater +ok$/m);
    const lazy = "no staple at start, first handshake refused: no staple, then staple good";
    expect(r.stdout).toMatch(new RegExp(`^nginx-lazy +stapler +${lazy} +${lazy} +ok$`, "m"));
    // Header, rule, 4 × 4 rows, blank line, summary.
    expect(r.stdout.trimEnd().split("\n")).toHaveLength(2 + 16 + 2);
    expect(r.stdout).toMatch(/16 rows: 16 as expected, 0 mismatched, 0 skipped/);
  });

  it("--jobs N runs N scenarios at a time; the JSON report keeps the order asked for", async () => {
    const r = await mainCaptured([
      "run",
      "--jobs",
      "3",
      "--scenario",
      "unknown",
      "good",
      "revoked",
      "--client",
      "node",
      "--json",
    ]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as { jobs: number; rows: Array<{ scenario: string }>; scenarios: Array<{ name: string }> };
    expect(report.jobs).toBe(3);
    expect(report.scenarios.map((s) => s.name)).toEqual(["unknown", "good", "revoked"]);
    expect(report.rows.map((x) => x.scenario)).toEqual(["unknown", "unknown", "good", "good", "revoked", "revoked"]);
    // Progress went to stderr, so stdout was the JSON alone.
    expect(r.err).toMatch(/^ocsp-lab run: 3 scenarios × 1 client, 3 at a time/);
    expect(r.err.split("\n").filter((l) => /^ocsp-lab run: \[\d\/3\] /.test(l))).toHaveLength(3);
  });

  it("--list aligns every description one column after the longest name", async () => {
    const r = await mainCaptured(["run", "--list"]);
    expect(r.code, r.err).toBe(0);
    const scenarios = await builtInScenarios();
    const width = Math.max(...scenarios.map((s) => s.name.length));
    const lines = r.out.trimEnd().split("\n");
    expect(lines).toHaveLength(scenarios.length);
    for (const [i, s] of scenarios.entries()) expect(lines[i]).toBe(`${s.name.padEnd(width)}  ${s.description}`);
    // Names of 28 characters and more (the catalogue's longest is under that today) push the column out.
    const long = "a-scenario-name-of-32-characters";
    expect(
      formatScenarioList([
        { name: "good", description: "d1" },
        { name: long, description: "d2" },
      ]),
    ).toBe(`good${" ".repeat(long.length - 4)}  d1\n${long}  d2\n`);
  });

  it("rejects --jobs 0 in one line and exits 2", async () => {
    const r = await mainCaptured(["run", "--jobs", "0"]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^ocsp-lab: option '--jobs <n>' argument '0' is invalid\. jobs must be a whole number ≥ 1, got "0"/);
  });

  it("runs a subset and reports JSON", async () => {
    const r = await mainCaptured(["run", "--scenario", "good", "--client", "node", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { ok: boolean; rows: Array<{ scenario: string; client: string; verdict: string }> };
    expect(report.ok).toBe(true);
    expect(report.rows.map((x) => `${x.scenario}/${x.client}/${x.verdict}`)).toEqual(["good/stapler/ok", "good/node/ok"]);
  });

  it("--reporter table junit --output DIR: the table on stdout, JUnit XML in DIR/junit.xml", async () => {
    const out = `${dir}/reports`;
    const r = await mainCaptured([
      "run",
      "--scenario",
      "good",
      "revoked",
      "--client",
      "node",
      "--reporter",
      "table",
      "junit",
      "--output",
      out,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^revoked +stapler/m);
    expect(r.out).toMatch(/4 rows: 4 as expected/);
    expect(r.err).toContain(`ocsp-lab run: wrote the junit report to ${out}/junit.xml\n`);
    const xml = await fs.readFile(`${out}/junit.xml`, "utf8");
    expect([...xml.matchAll(/<testsuite name="([^"]+)"/g)].map((m) => m[1])).toEqual(["good", "revoked"]);
    expect(xml.match(/<testcase /g)).toHaveLength(4);
    expect(xml).not.toContain("<failure");
  });

  it("exits 1 on a mismatch whatever the reporter: JUnit on stdout with the failure", async () => {
    // The good scenario, with an expectation it cannot meet.
    const file = `${dir}/wrong.yaml`;
    await fs.writeFile(
      file,
      [
        "name: wrong-expectation",
        'description: "good, but node is expected to refuse it"',
        "expect:",
        "  stapler: staple good",
        '  node: "refused: revoked"',
        "",
      ].join("\n"),
    );
    const r = await mainCaptured(["run", file, "--client", "node", "--reporter", "junit"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>/);
    expect(r.out).toContain('<testsuite name="wrong-expectation"');
    expect(r.out).toContain(
      '<failure type="MISMATCH" message="expected &quot;refused: revoked&quot;, observed &quot;connected&quot;">',
    );
  });

  it("refuses two reports on stdout in one line, exit 2, before running anything", async () => {
    const r = await mainCaptured(["run", "--reporter", "json", "junit"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "ocsp-lab: reporters json and junit cannot share standard output: give --output <dir> to write each to its own file, or one of them alone\n",
    );
    const unknown = await mainCaptured(["run", "--reporter", "html5"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/argument 'html5' is invalid\. Allowed choices are table, json, junit, html/);
  });

  it("names the bad scenario in one line and exits 2", async () => {
    const r = await mainCaptured(["run", "--scenario", "nope"]);
    expect(r.code).toBe(2);
    const names = (await builtInScenarios()).map((s) => s.name);
    expect(names.slice(0, 8).join(", ")).toBe(
      "good, revoked, unknown, responder-down, recovers-within-max-tries, slow-responder, nginx-lazy, apache-fake-trylater",
    );
    expect(r.err).toBe(`ocsp-lab: unknown scenario "nope": use one of ${names.join(", ")}\n`);
  });
});

describe("ocsp-lab revoke", () => {
  it("prints one clear line, no stack trace, for a state folder without a CA", async () => {
    const r = await ocspLab(["revoke", "abcd"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^ocsp-lab: no CA in state folder .*OCSP_LAB_HOME/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("rejects a bad reason before touching anything", async () => {
    const r = await ocspLab(["revoke", "abcd", "--reason", "sorry"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ocsp-lab: unknown CRLReason "sorry": use one of unspecified, keyCompromise/);
  });

  it("keeps the first reason of a certificate revoked twice, unless --force", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer({});
    ca.close();
    expect((await ocspLab(["revoke", leaf.serial, "--reason", "keyCompromise"])).code).toBe(0);
    const again = await ocspLab(["revoke", leaf.serial, "--reason", "superseded"]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(again.stderr).toMatch(new RegExp(`^ocsp-lab: .*${leaf.serial}.*keyCompromise.*--force`, "i"));
    expect((await CertificateAuthority.open(dir)).status(leaf.serial)).toMatchObject({
      revocationReason: CRLReason.keyCompromise,
    });
    const forced = await ocspLab(["revoke", leaf.serial, "--reason", "superseded", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/reason superseded/);
  });
});

describe("ocsp-lab up", () => {
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
  });

  /** Start `ocsp-lab up --json` and read its endpoints line. */
  async function up(): Promise<LabEndpoints> {
    const started = await startUp(dir, ["--query-frequency", "0.3"]);
    child = started.child;
    return started.endpoints;
  }

  it("prints its endpoints as JSON, serves a staple, picks up a revocation, and stops on SIGTERM", async () => {
    const e = await up();
    for (const key of ["caFile", "certFile", "keyFile", "responderUrl", "staplerHost", "staplerPort", "stateDir"])
      expect(e).toHaveProperty(key);
    expect(e.stateDir).toBe(dir);
    expect(e.staplerHost).toBe("127.0.0.1");

    const curl = () => curlCertStatus({ port: e.staplerPort, caFile: e.caFile });
    const ok = await curl();
    expect(ok.code, ok.stderr).toBe(0);
    const ocsp = await run("openssl", [
      "ocsp",
      "-issuer",
      e.caFile,
      "-cert",
      e.certFile,
      "-url",
      e.responderUrl,
      "-CAfile",
      e.caFile,
    ]);
    expect(ocsp.stdout).toContain(": good");

    const revoked = await ocspLab(["revoke", e.certFile, "--reason", "keyCompromise"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`revoked serial ${e.serial} .*keyCompromise`));
    const refused = await eventually(curl, (r) => r.code !== 0, 10_000, "curl to refuse the revoked staple");
    expect(refused.stderr).toContain("SSL certificate revocation reason: keyCompromise");

    child!.kill("SIGTERM");
    const [code] = (await once(child!, "exit")) as [number | null];
    expect(code).toBe(0);

    // A second start keeps the CA; with its old responder port free it keeps the certificate too.
    const again = await up();
    expect(again.caFile).toBe(e.caFile);
    expect(await fs.readFile(again.caFile, "utf8")).toContain("BEGIN CERTIFICATE");
    if (again.responderUrl === e.responderUrl) expect(again.serial).toBe(e.serial);
    else expect(again.serial).not.toBe(e.serial);
    child!.kill("SIGTERM");
    expect(((await once(child!, "exit")) as [number | null])[0]).toBe(0);
  });
});
