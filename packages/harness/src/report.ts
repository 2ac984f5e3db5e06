import type { ReportRow, RunReport } from "./run.js";

const COLUMNS: Array<[keyof ReportRow, string]> = [
  ["scenario", "scenario"],
  ["client", "client"],
  ["expected", "expected"],
  ["observed", "observed"],
  ["verdict", "result"],
];

/**
 * The report as a plain-text table (scenario × client: expected, observed, result), followed by
 * one summary line. Column widths fit the content; no colour, so it pastes into issues and CI logs.
 */
export function formatTable(report: RunReport): string {
  const widths = COLUMNS.map(([key, title]) => Math.max(title.length, ...report.rows.map((r) => String(r[key]).length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const out = [line(COLUMNS.map(([, t]) => t)), line(widths.map((w) => "-".repeat(w)))];
  let previous = "";
  for (const r of report.rows) {
    out.push(line(COLUMNS.map(([key]) => (key === "scenario" && r.scenario === previous ? "" : String(r[key])))));
    previous = r.scenario;
  }
  out.push("");
  out.push(summaryLine(report));
  return `${out.join("\n")}\n`;
}

/** `18 rows: 18 as expected, 0 mismatched, 0 skipped (4.2 s)`. */
export function summaryLine(report: RunReport): string {
  const count = (v: ReportRow["verdict"]): number => report.rows.filter((r) => r.verdict === v).length;
  return `${report.rows.length} rows: ${count("ok")} as expected, ${count("MISMATCH")} mismatched, ${count("skipped")} skipped (${(report.durationMs / 1000).toFixed(1)} s)`;
}

/** Details of the mismatched rows (client's own words), for the lines after the table. */
export function formatMismatches(report: RunReport): string {
  return report.rows
    .filter((r) => r.verdict === "MISMATCH")
    .map((r) => `MISMATCH ${r.scenario}/${r.client}: expected "${r.expected}", observed "${r.observed}" — ${r.detail}`)
    .join("\n");
}
