import escapeHtml from "escape-html";
import { parseDuration } from "./duration.js";
import { summaryLine } from "./report.js";
import type { ReportRow, RunReport } from "./run.js";

/** A row's client without its checkpoint or resumption suffix: `node @1.5s` → `node`. */
function baseClient(client: string): string {
  return client.split(" ")[0]!;
}

/** When a checkpoint row (`node @1.5s`) was judged, in ms from the start of the timeline; undefined for other rows. */
function checkpointAt(client: string): number | undefined {
  const m = / @(\S+)$/.exec(client);
  return m ? parseDuration(m[1]) : undefined;
}

type Verdict = ReportRow["verdict"];

/** What a matrix cell shows for a client's rows in one scenario: MISMATCH if any, skipped if all, else ok. */
function cellVerdict(rows: ReportRow[]): Verdict {
  if (rows.some((r) => r.verdict === "MISMATCH")) return "MISMATCH";
  return rows.every((r) => r.verdict === "skipped") ? "skipped" : "ok";
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.5em 0 .3em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
td.ok { background: #dff3df; }
td.MISMATCH { background: #f8d0d0; font-weight: bold; }
td.skipped { background: #eee; color: #666; }
table.rows td.detail { font-family: ui-monospace, monospace; font-size: 12px; max-width: 60em; word-break: break-word; }
svg.timeline { display: block; margin: .3em 0; }
svg.timeline text { font: 11px system-ui, sans-serif; }
.ok-mark { fill: #2e8b2e; } .MISMATCH-mark { fill: #c62828; } .skipped-mark { fill: #999; }
`;

const TIMELINE_WIDTH = 720;
const TIMELINE_LEFT = 110;

/**
 * One scenario's timeline as inline SVG: its wall time as an axis, one lane per client, a
 * mark for each handshake judged at a timeline checkpoint (`node @1.5s`, at 1.5 s) and for the
 * handshakes judged at the end (at the scenario's wall time), coloured by verdict, each with
 * its outcome as a tooltip. Checkpoints are on the lab's clock, the end on the wall clock: on a
 * run the two advance together.
 */
function timeline(rows: ReportRow[], durationMs: number): string {
  const lanes = [...new Set(rows.map((r) => baseClient(r.client)))];
  const marks = rows.map((r) => ({ row: r, at: checkpointAt(r.client) ?? durationMs }));
  const span = Math.max(durationMs, ...marks.map((m) => m.at), 1);
  const x = (ms: number): number => TIMELINE_LEFT + (ms / span) * (TIMELINE_WIDTH - TIMELINE_LEFT - 20);
  const laneY = (client: string): number => 18 + lanes.indexOf(client) * 18;
  const height = 30 + lanes.length * 18;
  const parts = [
    `<svg class="timeline" width="${TIMELINE_WIDTH}" height="${height}" viewBox="0 0 ${TIMELINE_WIDTH} ${height}" role="img" aria-label="timeline">`,
    `<line x1="${x(0)}" y1="${height - 12}" x2="${x(span)}" y2="${height - 12}" stroke="#888"/>`,
    `<text x="${x(0)}" y="${height - 1}">0 s</text>`,
    `<text x="${x(span) - 30}" y="${height - 1}">${(span / 1000).toFixed(1)} s</text>`,
  ];
  for (const lane of lanes) parts.push(`<text x="4" y="${laneY(lane) + 4}">${escapeHtml(lane)}</text>`);
  for (const { row, at } of marks) {
    const title = `${row.client} at ${(at / 1000).toFixed(1)} s: ${row.observed} (${row.verdict}; expected ${row.expected})`;
    parts.push(
      `<circle class="${row.verdict}-mark" data-client="${escapeHtml(row.client)}" data-verdict="${row.verdict}" cx="${x(at).toFixed(1)}" cy="${laneY(baseClient(row.client))}" r="5"><title>${escapeHtml(title)}</title></circle>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}

/**
 * The report as one self-contained HTML page (no script, no external resource): the summary
 * line, a matrix of scenarios × clients (a cell per client, `ok`, `MISMATCH` or `skipped` over
 * all its rows in that scenario, its checkpoints and resumption included; the text of each in
 * its tooltip; a scenario's name links to its section), and per scenario its wall time, a
 * timeline (see `timeline`) and every row with expected, observed, verdict and the client's
 * own words. Every text from the run is HTML-escaped. Elements carry `data-scenario`,
 * `data-client` and `data-verdict` for scripts and tests that read the page.
 */
export function formatHtml(report: RunReport): string {
  const scenarios = [...new Set(report.rows.map((r) => r.scenario))];
  const clients = [...new Set(report.rows.map((r) => baseClient(r.client)))];
  const durations = new Map(report.scenarios.map((s) => [s.name, s.durationMs]));
  const rowsOf = (scenario: string): ReportRow[] => report.rows.filter((r) => r.scenario === scenario);
  const anchor = (scenario: string): string => `s-${encodeURIComponent(scenario)}`;
  const summary = `${summaryLine(report)}, started ${report.startedAt.toISOString()}, ${report.jobs} at a time`;

  const matrix = [
    `<table id="matrix"><thead><tr><th>scenario</th>${clients.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr></thead><tbody>`,
  ];
  for (const scenario of scenarios) {
    const rows = rowsOf(scenario);
    const cells = clients.map((client) => {
      const mine = rows.filter((r) => baseClient(r.client) === client);
      if (mine.length === 0) return "<td></td>";
      const verdict = cellVerdict(mine);
      const title = mine.map((r) => `${r.client}: ${r.observed} (expected ${r.expected})`).join("\n");
      return `<td class="${verdict}" data-client="${escapeHtml(client)}" data-verdict="${verdict}" title="${escapeHtml(title)}">${verdict}</td>`;
    });
    matrix.push(
      `<tr data-scenario="${escapeHtml(scenario)}"><th><a href="#${anchor(scenario)}">${escapeHtml(scenario)}</a></th>${cells.join("")}</tr>`,
    );
  }
  matrix.push("</tbody></table>");

  const sections = scenarios.map((scenario) => {
    const rows = rowsOf(scenario);
    const ms = durations.get(scenario) ?? 0;
    const lines = rows.map(
      (r) =>
        `<tr data-client="${escapeHtml(r.client)}" data-verdict="${r.verdict}"><td>${escapeHtml(r.client)}</td><td>${escapeHtml(r.expected)}</td><td>${escapeHtml(r.observed)}</td><td class="${r.verdict}">${r.verdict}</td><td class="detail">${escapeHtml(r.detail)}</td></tr>`,
    );
    return [
      `<section class="scenario" id="${anchor(scenario)}" data-scenario="${escapeHtml(scenario)}">`,
      `<h2>${escapeHtml(scenario)}</h2><p>${(ms / 1000).toFixed(1)} s</p>`,
      timeline(rows, ms),
      `<table class="rows"><thead><tr><th>client</th><th>expected</th><th>observed</th><th>result</th><th>detail</th></tr></thead><tbody>${lines.join("")}</tbody></table>`,
      "</section>",
    ].join("\n");
  });

  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>ocsp-lab run: ${escapeHtml(summaryLine(report))}</title>`,
    `<style>${STYLE}</style></head><body>`,
    "<h1>ocsp-lab run</h1>",
    `<p id="summary" data-ok="${report.ok}">${escapeHtml(summary)}</p>`,
    matrix.join("\n"),
    ...sections,
    "</body></html>",
    "",
  ].join("\n");
}
