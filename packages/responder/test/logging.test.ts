/**
 * The responder's pino lines, read from a stream the test owns: per-request lines only at
 * `debug` (the request log and metrics keep everything), the arrival time as `receivedAt` so no
 * line carries `time` twice, and `log_level` in the config choosing the level.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { join } from "node:path";
import { pino } from "pino";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { ManualClock, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import { OcspResponder, responderConfigSchema, startFromConfig, type StartedOcspResponder } from "@ocsp-lab/responder";
import { tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let leaf: IssuedCertificate;
const started: StartedOcspResponder[] = [];

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  leaf = await ca.issueServer({ ocspUrl: "http://127.0.0.1:1" });
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await cleanup?.();
});

/** A stream collecting the raw lines written to it (pino writes synchronously to a plain Writable). */
function lineSink(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  let partial = "";
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      const parts = (partial + String(chunk)).split("\n");
      partial = parts.pop()!;
      lines.push(...parts.filter((l) => l !== ""));
      callback();
    },
  });
  return { stream, lines };
}

async function askOnce(responder: StartedOcspResponder): Promise<void> {
  const before = responder.requests().length;
  const der = (
    await buildOcspRequest({
      certificate: toPkiCertificate(leaf.certificate),
      issuer: toPkiCertificate(ca.root.certificate),
      nonce: true,
    })
  ).der;
  const res = await fetch(responder.url, {
    method: "POST",
    body: Buffer.from(der),
    headers: { "content-type": "application/ocsp-request" },
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  await responder.waitForRequests({ count: before + 1 });
}

const requestLines = (lines: string[]): string[] =>
  lines.filter((l) => (JSON.parse(l) as { msg?: string }).msg === "ocsp request");
/** How many times a raw JSON line names `key` at any depth (JSON.parse would keep only the last). */
const keyCount = (line: string, key: string): number => line.split(`"${key}":`).length - 1;

describe("responder log lines", () => {
  it("logs no per-request line at info, one at debug, with the arrival as receivedAt and one `time`", async () => {
    const { stream, lines } = lineSink();
    const logger = pino({ level: "info" }, stream);
    const clock = new ManualClock(Date.UTC(2026, 2, 3, 4, 5, 6));
    const responder = await (await OcspResponder.forCa(ca)).withClock(clock).withLogger(logger).start();
    started.push(responder);

    await askOnce(responder);
    expect(requestLines(lines)).toEqual([]);
    expect(responder.requests()).toHaveLength(1);
    const scraped = await (await fetch(`${responder.url}/metrics`)).text();
    expect(scraped).toMatch(/ocsp_requests_total\{method="POST",outcome="good"\} 1/);

    logger.level = "debug";
    await askOnce(responder);
    const logged = requestLines(lines);
    expect(logged).toHaveLength(1);
    const line = logged[0]!;
    expect(keyCount(line, "time")).toBe(1);
    const fields = JSON.parse(line) as Record<string, unknown>;
    expect(fields).toMatchObject({
      level: 20,
      receivedAt: "2026-03-03T04:05:06.000Z",
      method: "POST",
      serials: [leaf.serial],
      outcome: "good",
      httpStatus: 200,
    });
    expect(typeof fields.time).toBe("number");
    for (const l of lines) expect(keyCount(l, "time"), l).toBe(1);
    // The library's request log keeps its own field name.
    expect(responder.requests().map((e) => e.time.toISOString())).toEqual([
      "2026-03-03T04:05:06.000Z",
      "2026-03-03T04:05:06.000Z",
    ]);
  });

  it.each([
    [{}, 0],
    [{ log_level: "debug" }, 1],
  ])("startFromConfig with %j writes %i per-request line(s) for one request", async (extra, expected) => {
    const { stream, lines } = lineSink();
    const config = { ...responderConfigSchema.parse({ cas: [join(dir, "ca")], ...extra }), file: "inline" };
    const responder = await startFromConfig(config, { destination: stream, env: {} });
    started.push(responder);
    await askOnce(responder);
    expect(requestLines(lines)).toHaveLength(expected);
    for (const l of lines) expect(keyCount(l, "time"), l).toBe(1);
  });
});
