import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { formatHtml, type RunReport } from "@ocsp-lab/harness";
import { itWithPeer, run, tempDir } from "../../../test-support/index.js";
import { reportRow } from "./report-rows.js";

const row = reportRow;

const report: RunReport = {
  rows: [
    row("good", "stapler", "staple good", "staple good"),
    row("good", "node", "connected", "connected"),
    row("good", "curl", "connected", "connected"),
    row("revoked-mid-run", "stapler", "staple good, revoked", "staple good, revoked"),
    row("revoked-mid-run", "node @0s", "connected", "connected"),
    row("revoked-mid-run", "node @1.5s", "refused: revoked", "refused: revoked"),
    row("revoked-mid-run", "node", "refused: revoked", "refused: revoked"),
    { ...row("revoked-mid-run", "curl", "refused: revoked", "connected"), detail: "<script>alert(1)</script> & more" },
    row("revoked-mid-run", "openssl", "staple: revoked", "-", "skipped"),
  ],
  ok: false,
  startedAt: new Date("2026-12-03T07:30:05.123Z"),
  durationMs: 4210,
  jobs: 2,
  scenarios: [
    { name: "good", durationMs: 800, verdict: "ok" },
    { name: "revoked-mid-run", durationMs: 2600, verdict: "MISMATCH" },
  ],
};

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(async () => cleanup());

/** Where the screenshot is kept for CI to pick up: outside the test's temp folder, which is removed. */
const ARTIFACTS = process.env.OCSP_LAB_ARTIFACTS ?? join(tmpdir(), "ocsp-lab-artifacts");
const CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"];

describe("formatHtml", () => {
  const html = formatHtml(report);

  it("is one page with no script and no external resource, every text from the run escaped", () => {
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script|<link|src=|@import/);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more");
  });

  it("has a matrix cell per scenario and client, MISMATCH over all of a client's rows", () => {
    const cell = (scenario: string, client: string) =>
      new RegExp(`<tr data-scenario="${scenario}">.*?<td class="(\\w+)" data-client="${client}"`, "s").exec(html)?.[1];
    expect(cell("good", "node")).toBe("ok");
    expect(cell("revoked-mid-run", "node")).toBe("ok");
    expect(cell("revoked-mid-run", "curl")).toBe("MISMATCH");
    expect(cell("revoked-mid-run", "openssl")).toBe("skipped");
    // Its checkpoints on the timeline: at 0 s, 1.5 s, and the end (2.6 s).
    const marks = [...html.matchAll(/<circle class="ok-mark" data-client="(node[^"]*)" data-verdict="ok" cx="([\d.]+)"/g)];
    const xs = marks.map((m) => Number(m[2]));
    expect(marks.map((m) => m[1])).toEqual(["node", "node @0s", "node @1.5s", "node"]);
    expect(xs[1]).toBeLessThan(xs[2]!);
    expect(xs[2]).toBeLessThan(xs[3]!);
  });

  itWithPeer("chromium")("renders in headless Chromium: the matrix and the summary in the DOM, a screenshot saved", async () => {
    const file = join(dir, "report.html");
    await writeFile(file, html);
    const dom = await run("chromium", [...CHROMIUM, "--dump-dom", pathToFileURL(file).href], { timeoutMs: 60_000 });
    expect(dom.code, dom.stderr).toBe(0);
    expect(dom.stdout).toContain('<p id="summary" data-ok="false">9 rows: 7 as expected, 1 mismatched, 1 skipped (4.2 s)');
    expect(dom.stdout.match(/<tr data-scenario=/g)).toHaveLength(2);
    expect(dom.stdout).toMatch(/<td class="MISMATCH" data-client="curl" data-verdict="MISMATCH"[^>]*>MISMATCH<\/td>/);
    // The detail's markup is text in the DOM, never an element.
    expect(dom.stdout).not.toContain("<script>alert(1)");
    expect(dom.stdout.match(/<svg class="timeline"/g)).toHaveLength(2);

    await mkdir(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, "html-report.png");
    const r = await run("chromium", [...CHROMIUM, `--screenshot=${shot}`, "--window-size=1280,1400", pathToFileURL(file).href], {
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const png = await readFile(shot);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.length).toBeGreaterThan(10_000);
    console.log(`html report screenshot: ${shot}`);
  });
});
