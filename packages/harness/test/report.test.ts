import { describe, expect, it } from "vitest";
import { SAME_MARKER, TABLE_WIDTH, formatMismatches, formatTable, type RunReport } from "@ocsp-lab/harness";
import { reportRow } from "./report-rows.js";

const LONG = "no staple at start, first handshake refused: no staple, then staple good";

const row = reportRow;

const report: RunReport = {
  rows: [
    row("revoked-privilege-withdrawn", "stapler", "staple revoked", "staple revoked"),
    row("revoked-privilege-withdrawn", "node", "refused: revoked", "refused: revoked"),
    row("nginx-lazy", "stapler", LONG, LONG),
    row("nginx-lazy", "node", "connected", "refused: no staple"),
    row("nginx-lazy", "openssl", "staple: good", "-", "skipped"),
    row(
      "responder-down",
      "stapler",
      "invalidated after 3 failed queries, retried every 0.2 s",
      "invalidated after 2 failed queries, retries scheduled 0.3 s, 0.3 s after each failure",
    ),
  ],
  ok: false,
  startedAt: new Date("2026-12-03T07:00:00Z"),
  durationMs: 4210,
  jobs: 2,
  scenarios: [],
};

describe("formatTable, default", () => {
  const text = formatTable(report);
  const lines = text.split("\n");

  it("fits 100 columns, long cells wrapped under their own column", () => {
    expect(TABLE_WIDTH).toBe(100);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(100);
    const header = lines[0]!;
    const expectedAt = header.indexOf("expected");
    const observedAt = header.indexOf("observed");
    // The long expectation starts on the stapler row and continues below, in the expected column only.
    const first = lines.findIndex((l) => l.startsWith("nginx-lazy "));
    expect(lines[first]).toMatch(/^nginx-lazy +stapler +no staple at start, /);
    expect(lines[first]!.indexOf("no staple at start")).toBe(expectedAt);
    const continuation = lines[first + 1]!;
    expect(continuation.slice(0, expectedAt).trim()).toBe("");
    expect(continuation.slice(expectedAt).trim().length).toBeGreaterThan(0);
    // Words are kept whole: the pieces joined again give the text.
    const pieces: string[] = [];
    for (let i = first; !lines[i]!.includes(" node "); i++) pieces.push(lines[i]!.slice(expectedAt, observedAt).trim());
    expect(pieces.join(" ")).toBe(LONG);
  });

  it("says same when observed is what was expected, the observation otherwise", () => {
    expect(SAME_MARKER).toBe("same");
    expect(text).toMatch(/^revoked-privilege-withdrawn +stapler +staple revoked +same +ok$/m);
    expect(text).toMatch(/^ +node +refused: revoked +same +ok$/m);
    expect(text).toMatch(/^ +node +connected +refused: no staple +MISMATCH$/m);
    expect(text).toMatch(/^ +openssl +staple: good +- +skipped$/m);
    // A mismatch's observation is written out in full, wrapped.
    const stapler = lines.findIndex((l) => l.startsWith("responder-down "));
    const observedAt = lines[0]!.indexOf("observed");
    const observed = lines
      .slice(stapler, lines.indexOf("", stapler))
      .map((l) =>
        l
          .slice(observedAt)
          .replace(/ +MISMATCH$/, "")
          .trim(),
      )
      .join(" ");
    expect(observed).toBe("invalidated after 2 failed queries, retries scheduled 0.3 s, 0.3 s after each failure");
    expect(lines[stapler]).toMatch(/ MISMATCH$/);
  });

  it("ends with the summary line", () => {
    expect(text.endsWith("\n6 rows: 3 as expected, 2 mismatched, 1 skipped (4.2 s)\n")).toBe(true);
  });

  it("fits a narrower width when asked", () => {
    for (const l of formatTable(report, { width: 80 }).split("\n")) expect(l.length, l).toBeLessThanOrEqual(80);
  });
});

describe("formatTable, wide", () => {
  it("writes every cell in full on one line", () => {
    const text = formatTable(report, { wide: true });
    expect(text).toMatch(new RegExp(`^nginx-lazy +stapler +${LONG} +${LONG} +ok$`, "m"));
    expect(text).toMatch(/^ +node +refused: revoked +refused: revoked +ok$/m);
    expect(text).not.toContain(` ${SAME_MARKER} `);
    expect(text.split("\n").length).toBe(report.rows.length + 2 + 3);
    expect(Math.max(...text.split("\n").map((l) => l.length))).toBeGreaterThan(100);
  });
});

describe("formatMismatches", () => {
  it("one line per mismatch, in the client's own words", () => {
    const one = formatMismatches(report);
    expect(one.split("\n")).toHaveLength(2);
    expect(one).toContain(
      'MISMATCH nginx-lazy/node: expected "connected", observed "refused: no staple" — node said refused: no staple',
    );
  });
});
