import type { ReportRow, RunReport } from "./run.js";
import { wrapText } from "./wrap.js";

const COLUMNS: Array<[keyof ReportRow, string]> = [
  ["scenario", "scenario"],
  ["client", "client"],
  ["expected", "expected"],
  ["observed", "observed"],
  ["verdict", "result"],
];

/** Width in columns the default table keeps within (a 100-column terminal). */
export const TABLE_WIDTH = 100;

/** What the default table shows as `observed` when a row observed exactly what it expected. */
export const SAME_MARKER = "same";

/** Options of formatTable. */
export interface TableOptions {
  /**
   * Today's full text: every cell on one line, `observed` always written out, as wide as the
   * longest cell. Default false: the table fits `width` columns.
   */
  wide?: boolean;
  /** Columns the default table fits in; default TABLE_WIDTH (100). Ignored with `wide`. */
  width?: number;
}

const GAP = "  ";

/**
 * The report as a plain-text table (scenario × client: expected, observed, result), followed by
 * one summary line. No colour, so it pastes into issues and CI logs.
 *
 * By default every line fits `options.width` columns (100): `observed` reads `same` when the
 * row observed exactly what it expected (the full text otherwise), and long expectations and
 * observations wrap onto continuation lines under their own column (at spaces; a word longer than
 * its column is cut). With `options.wide` each row is one line holding the full text of every
 * cell, columns as wide as their longest cell.
 */
export function formatTable(report: RunReport, options: TableOptions = {}): string {
  return options.wide ? wideTable(report) : fittedTable(report, options.width ?? TABLE_WIDTH);
}

/** The column titles and the dashes under them, at these widths. */
function header(widths: number[]): string[] {
  return [
    line(
      COLUMNS.map(([, t]) => t),
      widths,
    ),
    line(
      widths.map((w) => "-".repeat(w)),
      widths,
    ),
  ];
}
function wideTable(report: RunReport): string {
  const widths = COLUMNS.map(([key, title]) => Math.max(title.length, ...report.rows.map((r) => String(r[key]).length)));
  const out = header(widths);
  let previous = "";
  for (const r of report.rows) {
    out.push(
      line(
        COLUMNS.map(([key]) => (key === "scenario" && r.scenario === previous ? "" : String(r[key]))),
        widths,
      ),
    );
    previous = r.scenario;
  }
  out.push("", summaryLine(report));
  return `${out.join("\n")}\n`;
}

/** The widest a scenario name column gets in the fitted table before names wrap. */
const MAX_SCENARIO_WIDTH = 30;

function fittedTable(report: RunReport, width: number): string {
  const cells = report.rows.map((r) => [
    r.scenario,
    r.client,
    r.expected,
    r.verdict !== "skipped" && r.observed === r.expected ? SAME_MARKER : r.observed,
    r.verdict,
  ]);
  const longest = (i: number): number => Math.max(COLUMNS[i]![1].length, ...cells.map((c) => c[i]!.length));
  const scenarioW = Math.min(longest(0), MAX_SCENARIO_WIDTH);
  const clientW = longest(1);
  const resultW = longest(4);
  // What is left for expected and observed; each keeps at least its title's width.
  const flexible = Math.max(width - scenarioW - clientW - resultW - GAP.length * (COLUMNS.length - 1), 16);
  const expectedMax = longest(2);
  const observedMax = longest(3);
  let observedW = Math.min(observedMax, Math.max(Math.floor(flexible / 2), flexible - expectedMax));
  observedW = Math.max(observedW, COLUMNS[3]![1].length);
  const expectedW = Math.max(Math.min(expectedMax, flexible - observedW), COLUMNS[2]![1].length);
  const widths = [scenarioW, clientW, expectedW, observedW, resultW];

  const out = header(widths);
  let previous = "";
  for (const [i, row] of cells.entries()) {
    const scenario = report.rows[i]!.scenario;
    const shown = row.map((c, col) => (col === 0 && scenario === previous ? "" : c));
    previous = scenario;
    const wrapped = shown.map((c, col) => wrapText(c, widths[col]!));
    const height = Math.max(...wrapped.map((w) => w.length));
    for (let l = 0; l < height; l++)
      out.push(
        line(
          wrapped.map((w) => w[l] ?? ""),
          widths,
        ),
      );
  }
  out.push("", summaryLine(report));
  return `${out.join("\n")}\n`;
}

/** Cells padded to their column's width, two spaces apart, trailing blanks removed. */
function line(cells: string[], widths: number[]): string {
  return cells
    .map((c, i) => c.padEnd(widths[i]!))
    .join(GAP)
    .trimEnd();
}

/** `18 rows: 18 as expected, 0 mismatched, 0 skipped (4.2 s)`. */
export function summaryLine(report: RunReport): string {
  const count = (v: ReportRow["verdict"]): number => report.rows.filter((r) => r.verdict === v).length;
  return `${report.rows.length} rows: ${count("ok")} as expected, ${count("MISMATCH")} mismatched, ${count("skipped")} skipped (${(report.durationMs / 1000).toFixed(1)} s)`;
}

/**
 * Details of the mismatched rows (client's own words), for the lines after the table: one line
 * per row, `MISMATCH scenario/client: expected "…", observed "…" — detail`, never wrapped (the
 * detail is evidence to paste or grep, often JSON).
 */
export function formatMismatches(report: RunReport): string {
  return report.rows
    .filter((r) => r.verdict === "MISMATCH")
    .map((r) => `MISMATCH ${r.scenario}/${r.client}: expected "${r.expected}", observed "${r.observed}" — ${r.detail}`)
    .join("\n");
}
