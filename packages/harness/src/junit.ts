import { hostname as osHostname } from "node:os";
import { create } from "xmlbuilder2";
import type { ReportRow, RunReport } from "./run.js";

/** Options of formatJunit. */
export interface JunitOptions {
  /** The `hostname` of every testsuite; default `os.hostname()`. */
  hostname?: string;
}

/**
 * The report as JUnit XML, the Apache Ant format CI systems read (GitLab, Jenkins, GitHub
 * test-report actions), valid against its schema (windyroad/JUnit-Schema, JUnit.xsd; a test
 * checks it with xmllint). One `<testsuite>` per scenario (`name` the scenario, its wall time,
 * the run's start as `timestamp` in UTC without a zone, as the schema's pattern has it), one
 * `<testcase>` per row of it (`classname` `ocsp-lab.<scenario>`, `name` the row's client:
 * `stapler`, `node`, `curl @1.5s`, `openssl resumed`...):
 * - a row as expected is a bare testcase;
 * - a MISMATCH is a `<failure type="MISMATCH">` whose `message` says what was expected and what
 *   was observed, and whose text is the client's own words;
 * - a skipped row (client not installed) is `<skipped>` with the reason.
 * A scenario's rows are judged in one lab run, so their time is the testsuite's; each testcase
 * reads `time="0"`. Every row counts in `tests`; `errors` is 0 (a lab that cannot start makes
 * the whole run fail before any report).
 */
export function formatJunit(report: RunReport, options: JunitOptions = {}): string {
  const host = options.hostname ?? osHostname();
  // JUnit.xsd: xs:dateTime restricted to YYYY-MM-DDTHH:MM:SS (no fraction, no zone): UTC here.
  const timestamp = report.startedAt.toISOString().slice(0, 19);
  const bySuite = new Map<string, ReportRow[]>();
  for (const row of report.rows) {
    const rows = bySuite.get(row.scenario) ?? [];
    rows.push(row);
    bySuite.set(row.scenario, rows);
  }
  const durations = new Map(report.scenarios.map((s) => [s.name, s.durationMs]));
  const root = create({ version: "1.0", encoding: "UTF-8" }).ele("testsuites");
  let id = 0;
  for (const [scenario, rows] of bySuite) {
    const suite = root.ele("testsuite", {
      name: scenario,
      package: "ocsp-lab",
      id: String(id++),
      timestamp,
      hostname: host,
      tests: String(rows.length),
      failures: String(rows.filter((r) => r.verdict === "MISMATCH").length),
      errors: "0",
      skipped: String(rows.filter((r) => r.verdict === "skipped").length),
      time: seconds(durations.get(scenario) ?? 0),
    });
    suite.ele("properties");
    for (const row of rows) {
      const testcase = suite.ele("testcase", { name: row.client, classname: `ocsp-lab.${scenario}`, time: "0" });
      if (row.verdict === "MISMATCH")
        testcase
          .ele("failure", { type: "MISMATCH", message: `expected "${row.expected}", observed "${row.observed}"` })
          .txt(row.detail);
      else if (row.verdict === "skipped") testcase.ele("skipped", { message: row.detail });
    }
    suite.ele("system-out").txt(rows.map((r) => `${r.client}: ${r.observed} (${r.verdict}) ${r.detail}`).join("\n"));
    suite.ele("system-err");
  }
  return `${root.end({ prettyPrint: true })}\n`;
}

/** Milliseconds as the schema's xs:decimal seconds, e.g. `1.234`. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}
