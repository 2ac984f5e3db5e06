import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatJunit, type ReportRow, type RunReport } from "@ocsp-lab/harness";
import { itWithPeer, run, tempDir } from "../../../test-support/index.js";
import { reportRow } from "./report-rows.js";

const XSD = fileURLToPath(new URL("./fixtures/JUnit.xsd", import.meta.url));

const row = (scenario: string, client: string, expected: string, observed: string, verdict?: ReportRow["verdict"]) =>
  reportRow(scenario, client, expected, observed, verdict, `${client} said <${observed}> & "more"`);

const report: RunReport = {
  rows: [
    row("good", "stapler", "staple good", "staple good"),
    row("good", "node", "connected", "connected"),
    row("revoked", "stapler", "staple revoked", "staple revoked"),
    row("revoked", "curl", "refused: revoked", "connected"),
    row("revoked", "openssl", "staple: revoked", "-", "skipped"),
    row("revoked", "node @1.5s", "refused: revoked", "refused: revoked"),
  ],
  ok: false,
  startedAt: new Date("2026-12-03T07:30:05.123Z"),
  durationMs: 4210,
  jobs: 2,
  scenarios: [
    { name: "good", durationMs: 1234, verdict: "ok" },
    { name: "revoked", durationMs: 2500, verdict: "MISMATCH" },
  ],
};

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(async () => cleanup());

describe("formatJunit", () => {
  const xml = formatJunit(report, { hostname: "ci-runner" });

  itWithPeer("xmllint", "libxml2-utils")("is valid against the JUnit XML schema (xmllint --schema JUnit.xsd)", async () => {
    const file = join(dir, "report.xml");
    await writeFile(file, xml);
    const r = await run("xmllint", ["--noout", "--schema", XSD, file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("validates");
    // The schema is not a formality: a testsuite without its hostname is refused.
    const broken = join(dir, "broken.xml");
    await writeFile(broken, xml.replace(' hostname="ci-runner"', ""));
    const refused = await run("xmllint", ["--noout", "--schema", XSD, broken]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/hostname/);
  });

  it("has one testsuite per scenario and one testcase per row, with counts, times and the run's start", () => {
    const suites = [...xml.matchAll(/<testsuite ([^>]*)>/g)].map((m) => m[1]!);
    expect(suites).toHaveLength(2);
    expect(suites[0]).toMatch(/name="good"/);
    expect(suites[0]).toMatch(/tests="2" failures="0" errors="0" skipped="0" time="1.234"/);
    expect(suites[1]).toMatch(/name="revoked"/);
    expect(suites[1]).toMatch(/tests="4" failures="1" errors="0" skipped="1" time="2.500"/);
    expect(suites[1]).toMatch(/timestamp="2026-12-03T07:30:05"/);
    expect(suites[1]).toMatch(/hostname="ci-runner"/);
    expect([...xml.matchAll(/<testcase name="([^"]*)" classname="([^"]*)"/g)].map((m) => `${m[2]}/${m[1]}`)).toEqual([
      "ocsp-lab.good/stapler",
      "ocsp-lab.good/node",
      "ocsp-lab.revoked/stapler",
      "ocsp-lab.revoked/curl",
      "ocsp-lab.revoked/openssl",
      "ocsp-lab.revoked/node @1.5s",
    ]);
  });

  it("writes a mismatch as a failure with expected and observed, a skipped row as skipped, the evidence escaped", () => {
    expect(xml).toContain(
      '<failure type="MISMATCH" message="expected &quot;refused: revoked&quot;, observed &quot;connected&quot;">curl said &lt;connected&gt; &amp; "more"</failure>',
    );
    expect(xml).toMatch(
      /<testcase name="openssl" classname="ocsp-lab.revoked" time="0">\s*<skipped message="openssl said &lt;-&gt; &amp; &quot;more&quot;"\/>/,
    );
    expect(xml.match(/<failure /g)).toHaveLength(1);
  });
});
