import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { RunProgress, progressLine, type ReportRow, type ScenarioResult } from "@ocsp-lab/harness";

const row = (client: string, verdict: ReportRow["verdict"]): ReportRow => ({
  scenario: "staple-stale",
  client,
  expected: "x",
  observed: "x",
  verdict,
  detail: "",
});

const result = (index: number, name: string, rows: ReportRow[] = [row("stapler", "ok")]): ScenarioResult => ({
  index,
  total: 37,
  name,
  rows,
  durationMs: 1234,
});

/** A stream that keeps what is written; a terminal when `tty`. */
function sink(tty: boolean): { stream: Writable & { isTTY?: boolean; columns?: number }; text: () => string } {
  let text = "";
  const stream = new Writable({
    write: (chunk, _encoding, done) => {
      text += String(chunk);
      done();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  if (tty) {
    stream.isTTY = true;
    stream.columns = 60;
  }
  return { stream, text: () => text };
}

describe("progressLine", () => {
  it("names the scenario, its place, verdict and time", () => {
    expect(progressLine(12, result(3, "staple-stale"))).toBe("ocsp-lab run: [12/37] staple-stale ok (1.2 s)");
    expect(progressLine(1, result(0, "good", [row("stapler", "ok"), row("node", "MISMATCH"), row("curl", "MISMATCH")]))).toBe(
      "ocsp-lab run: [1/37] good MISMATCH (node, curl) (1.2 s)",
    );
    expect(progressLine(2, result(0, "good", [row("stapler", "ok"), row("openssl", "skipped")]))).toBe(
      "ocsp-lab run: [2/37] good ok, openssl skipped (1.2 s)",
    );
  });
});

describe("RunProgress", () => {
  it("writes only the finished lines when the stream is not a terminal", () => {
    const out = sink(false);
    const p = new RunProgress(out.stream);
    p.started({ index: 0, total: 37, name: "good" });
    p.started({ index: 1, total: 37, name: "revoked" });
    p.finished(result(1, "revoked"));
    p.finished(result(0, "good"));
    p.stop();
    expect(out.text()).toBe("ocsp-lab run: [1/37] revoked ok (1.2 s)\nocsp-lab run: [2/37] good ok (1.2 s)\n");
  });

  it("on a terminal, draws a spinner line of what runs, erased before each finished line and at the end", () => {
    const out = sink(true);
    // Carriage return + erase line (ECMA-48 EL) shown as <CL>.
    const shown = (): string => out.text().replaceAll("\r\u001b[K", "<CL>");
    const p = new RunProgress(out.stream);
    p.started({ index: 0, total: 37, name: "good" });
    p.started({ index: 1, total: 37, name: "revoked" });
    expect(shown()).toMatch(/<CL>. ocsp-lab run: 0\/37 done, running good, revoked$/);
    p.finished(result(0, "good"));
    expect(shown()).toMatch(/<CL>ocsp-lab run: \[1\/37\] good ok \(1\.2 s\)\n<CL>. ocsp-lab run: 1\/37 done, running revoked$/);
    p.stop();
    expect(shown().endsWith("<CL>")).toBe(true);
    // Every spinner line fits the terminal's width.
    for (const drawn of shown().split(/<CL>|\n/)) expect(drawn.length).toBeLessThan(60);
  });
});
