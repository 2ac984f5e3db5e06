/**
 * The responder's time-dependent paths on a ManualClock: the pre-signed cache's refresh at half
 * validity, the RFC 5019 caching headers, the request log's times and `since` filter, and the
 * waits of `delay`, the base delay and `drip` (which last until the clock is advanced, and end
 * on stop()). Nothing here waits in real time for time to pass: the test moves the clock.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { ManualClock, OcspResponse, buildOcspRequest, settle, toPkiCertificate } from "@ocsp-lab/ocsp";
import { OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import { eventually, tempDir } from "../../../test-support/index.js";

/** A whole second, so the per-second header rebuild and the clock agree on "now". */
const START = Date.UTC(2026, 5, 1, 12, 0, 0);
const VALIDITY_S = 3600;

let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let leaf: IssuedCertificate;
let der: Uint8Array;
const started: StartedOcspResponder[] = [];

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"), { clock: new ManualClock(START) });
  leaf = await ca.issueServer({ ocspUrl: "http://127.0.0.1:1" });
  der = (
    await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
  ).der;
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await cleanup?.();
});

/** A responder for the CA on a fresh ManualClock at START. */
async function onManualClock(): Promise<{ clock: ManualClock; responder: StartedOcspResponder }> {
  const clock = new ManualClock(START);
  const responder = await (await OcspResponder.forCa(ca)).withClock(clock).withValidity(VALIDITY_S).start();
  started.push(responder);
  return { clock, responder };
}

const getPath = (): string => `/${encodeURIComponent(Buffer.from(der).toString("base64"))}`;

function ask(responder: StartedOcspResponder, method: "GET" | "POST", headers: Record<string, string> = {}): Promise<Response> {
  return method === "GET"
    ? fetch(responder.url + getPath(), { headers })
    : fetch(responder.url, {
        method: "POST",
        body: Buffer.from(der),
        headers: { "content-type": "application/ocsp-request", ...headers },
      });
}

async function body(res: Response): Promise<Uint8Array> {
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

/** A promise and whether it has settled yet (read after `await settle()`). */
function track<T>(p: Promise<T>): { promise: Promise<T>; done: () => boolean } {
  let done = false;
  const promise = p.finally(() => (done = true));
  promise.catch(() => {});
  return { promise, done: () => done };
}

describe("pre-signed answers on the responder's clock", () => {
  it.each(["GET", "POST"] as const)(
    "%s: a cached nonce-less answer is reused until half its validity, then re-signed",
    async (method) => {
      const { clock, responder } = await onManualClock();
      const first = await body(await ask(responder, method));
      expect(OcspResponse.fromDer(first).producedAt?.getTime()).toBe(START);
      expect(responder.requests().at(-1)?.cached).toBe(false);

      await clock.advance((VALIDITY_S / 2) * 1000 - 1);
      expect(await body(await ask(responder, method))).toEqual(first);
      expect(responder.requests().at(-1)?.cached).toBe(true);

      await clock.advance(1);
      const resigned = await body(await ask(responder, method));
      expect(resigned).not.toEqual(first);
      const view = OcspResponse.fromDer(resigned);
      expect(view.producedAt?.getTime()).toBe(START + (VALIDITY_S / 2) * 1000);
      expect(view.responses[0]!.thisUpdate.getTime()).toBe(START + (VALIDITY_S / 2) * 1000);
      expect(view.responses[0]!.nextUpdate?.getTime()).toBe(START + (VALIDITY_S / 2 + VALIDITY_S) * 1000);
      expect(responder.requests().at(-1)?.cached).toBe(false);
      expect(await body(await ask(responder, method))).toEqual(resigned);
      expect(responder.requests().at(-1)?.cached).toBe(true);
    },
  );

  it("never answers a clock set back before thisUpdate from the cache (an answer from its future)", async () => {
    const { clock, responder } = await onManualClock();
    const first = await body(await ask(responder, "GET"));
    expect(await body(await ask(responder, "GET"))).toEqual(first);
    await clock.set(START - 60_000);
    const earlier = OcspResponse.fromDer(await body(await ask(responder, "GET")));
    expect(earlier.producedAt?.getTime()).toBe(START - 60_000);
    expect(earlier.responses[0]!.thisUpdate.getTime()).toBe(START - 60_000);
    expect(responder.requests().at(-1)?.cached).toBe(false);
  });

  it("computes Date, max-age, Expires and Last-Modified from the clock, on the cached and the decoding path", async () => {
    const { clock, responder } = await onManualClock();
    const expires = new Date(START + VALIDITY_S * 1000).toUTCString();
    const lastModified = new Date(START).toUTCString();
    const headers = (res: Response) => ({
      date: res.headers.get("date"),
      cacheControl: res.headers.get("cache-control"),
      expires: res.headers.get("expires"),
      lastModified: res.headers.get("last-modified"),
    });
    const at = (offsetS: number) => ({
      date: new Date(START + offsetS * 1000).toUTCString(),
      cacheControl: `max-age=${VALIDITY_S - offsetS}, public, no-transform, must-revalidate`,
      expires,
      lastModified,
    });
    const fresh = await ask(responder, "GET");
    expect(headers(fresh)).toEqual(at(0));
    await clock.advance(1000);
    expect(headers(await ask(responder, "GET"))).toEqual(at(1));
    expect(responder.requests().at(-1)?.cached).toBe(true);
    await clock.advance(600_000);
    expect(headers(await ask(responder, "GET"))).toEqual(at(601));
    // Another spelling of the same request: answered from the cache through the decoding path.
    const other = await fetch(`${responder.url}/${getPath()}`);
    expect(headers(other)).toEqual(at(601));
    expect(responder.requests().at(-1)?.cached).toBe(true);
  });
});

describe("the request log on the responder's clock", () => {
  it("records arrival times from the clock and filters `since` by them (library and admin API)", async () => {
    const { clock, responder } = await onManualClock();
    await body(await ask(responder, "POST"));
    await clock.advance(60_000);
    const since = clock.now();
    await body(await ask(responder, "POST"));
    expect(responder.requests().map((e) => e.time.getTime())).toEqual([START, START + 60_000]);
    expect(responder.requests({ since }).map((e) => e.time.getTime())).toEqual([START + 60_000]);
    const listed = (await (
      await fetch(`${responder.adminUrl}/requests?since=${encodeURIComponent(since.toISOString())}`)
    ).json()) as Array<{ time: string }>;
    expect(listed.map((e) => e.time)).toEqual([new Date(START + 60_000).toISOString()]);
  });
});

describe("waits on the responder's clock", () => {
  it.each([
    [
      "a `delay` action",
      5000,
      (r: StartedOcspResponder) =>
        r.setBehaviour({ kind: "serial", serial: leaf.serial }, { steps: [{ actions: [{ kind: "delay", ms: 5000 }] }] }),
    ],
    ["the base delay (setDelay)", 300, (r: StartedOcspResponder) => r.setDelay(300)],
  ])("%s of %i ms: the answer arrives only once the clock has advanced that far", async (_name, ms, apply) => {
    const { clock, responder } = await onManualClock();
    apply(responder);
    const answer = track(ask(responder, "POST"));
    // The responder has the request and waits on the clock: one timer, due `ms` from now.
    await eventually(
      () => clock.nextTimerAt,
      (at) => at !== undefined,
      10_000,
      "the responder to start waiting",
    );
    expect(clock.nextTimerAt).toBe(START + ms);

    await clock.advance(ms - 1);
    await settle();
    expect(answer.done()).toBe(false);
    expect(clock.pendingTimers).toBe(1);
    expect(responder.requests()).toHaveLength(0);

    await clock.advance(1);
    expect(OcspResponse.fromDer(await body(await answer.promise)).responses[0]!.status).toBe("good");
    const [entry] = await responder.waitForRequests({ serial: leaf.serial });
    expect(entry!.latencyMs).toBeGreaterThanOrEqual(ms);
    expect(entry!.time.getTime()).toBe(START);
    expect(clock.pendingTimers).toBe(0);
  });

  it("drips the body one chunk per chunkDelayMs of the clock", async () => {
    const { clock, responder } = await onManualClock();
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "drip", chunkBytes: 64, chunkDelayMs: 1000 }] }] },
    );
    const chunks: Buffer[] = [];
    const received = (): number => chunks.reduce((n, c) => n + c.length, 0);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        {
          host: responder.host,
          port: responder.port,
          method: "POST",
          path: "/",
          headers: { "content-type": "application/ocsp-request" },
        },
        resolve,
      );
      req.on("error", reject);
      req.end(Buffer.from(der));
    });
    res.on("data", (c: Buffer) => chunks.push(c));
    const ended = track(new Promise<void>((resolve, reject) => res.on("end", resolve).on("error", reject)));
    const length = Number(res.headers["content-length"]);
    expect(length).toBeGreaterThan(3 * 64);
    const chunkCount = Math.ceil(length / 64);

    for (let k = 1; k <= chunkCount; k++) {
      await eventually(received, (n) => n === Math.min(k * 64, length), 10_000, `chunk ${k} of ${chunkCount}`);
      await eventually(
        () => clock.pendingTimers,
        (n) => n === 1,
        10_000,
        "the responder to wait for the next chunk",
      );
      await clock.advance(999);
      await settle();
      expect(received()).toBe(Math.min(k * 64, length));
      // After the last chunk the client has Content-Length bytes; the responder still waits one pause before ending.
      if (k < chunkCount) expect(ended.done()).toBe(false);
      expect(responder.requests()).toHaveLength(0);
      await clock.advance(1);
    }
    await ended.promise;
    expect(OcspResponse.fromDer(new Uint8Array(Buffer.concat(chunks))).responses[0]!.status).toBe("good");
    const [entry] = await responder.waitForRequests({ serial: leaf.serial });
    expect(entry!.outcome).toBe("fault:drip");
    expect(entry!.latencyMs).toBeGreaterThanOrEqual(chunkCount * 1000);
  });

  it("hangs until stop(), however far the clock moves", async () => {
    const { clock, responder } = await onManualClock();
    responder.setFault({ kind: "hang" });
    const answer = track(ask(responder, "POST"));
    const [entry] = await responder.waitForRequests({ serial: leaf.serial });
    expect(entry!.outcome).toBe("fault:hang");
    await clock.advance(86_400_000);
    await settle();
    expect(answer.done()).toBe(false);
    await responder.stop();
    await expect(answer.promise).rejects.toThrow();
  });

  it("ends pending delays and drips on stop(), their clock timers cancelled", async () => {
    const { clock, responder } = await onManualClock();
    responder.setDelay(5000);
    const delayed = track(ask(responder, "POST"));
    await eventually(
      () => clock.pendingTimers,
      (n) => n === 1,
      10_000,
      "the responder to start waiting",
    );
    await responder.stop();
    expect(clock.pendingTimers).toBe(0);
    await expect(delayed.promise).rejects.toThrow();

    const second = await onManualClock();
    second.responder.setBehaviour(
      { kind: "global" },
      { steps: [{ actions: [{ kind: "drip", chunkBytes: 64, chunkDelayMs: 1000 }] }] },
    );
    const dripped = track(ask(second.responder, "POST").then((r) => r.arrayBuffer()));
    await eventually(
      () => second.clock.pendingTimers,
      (n) => n === 1,
      10_000,
      "the drip to wait for its next chunk",
    );
    await second.responder.stop();
    expect(second.clock.pendingTimers).toBe(0);
    // The drip ends: the client sees a body shorter than Content-Length (an error) or the cut connection.
    await expect(dripped.promise).rejects.toThrow();
  });
});
