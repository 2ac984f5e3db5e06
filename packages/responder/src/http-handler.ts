import type { IncomingMessage, ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { unsuccessfulResponse, type Clock } from "@ocsp-lab/ocsp";
import { DEFAULT_RETRY_AFTER_SECONDS, type Action } from "./behaviour.js";
import { waitOnClock } from "./clock-wait.js";
import type { ResponderMetrics } from "./metrics.js";
import type { Answer, OcspService } from "./ocsp-service.js";
import type { RequestLog } from "./request-log.js";
import { decodeGetPath, getRequestKey, postRequestKey } from "./request-key.js";

/**
 * Largest request body accepted, in bytes. A real OCSP request is a few hundred bytes (one
 * SHA-1 CertID and a nonce: about 120). A larger body is answered 413 at once (see
 * refuseTooLarge), with a `Content-Length` before a byte of it is read.
 */
export const MAX_REQUEST_BYTES = 64 * 1024;
const OCSP_RESPONSE_TYPE = "application/ocsp-response";

/** What the OCSP handler needs. */
export interface OcspHandlerDeps {
  service: OcspService;
  log: RequestLog;
  /** The responder's time: arrival times, caching headers, and every wait (delay, drip). */
  clock: Clock;
  logger: Logger;
  metrics: ResponderMetrics;
  /** Responses held open by `hang`, ended when the responder stops. */
  hung: Set<ServerResponse>;
  /** Aborted when the responder stops: pending delays and drips end at once, their clock timers cancelled. */
  stopping: AbortSignal;
}

/**
 * The OCSP hot path as a bare node:http handler (no middleware): `POST <any path>` with the DER
 * request as body, `GET /{url-encoded base64 DER}` (RFC 6960 Appendix A.1, RFC 5019 §5; a
 * doubled slash and base64url are accepted). Protocol failures are answered with an OCSP
 * `malformedRequest`, never a bare 404 or a 500; a body over MAX_REQUEST_BYTES is the one HTTP
 * refusal (413, see refuseTooLarge). GET answers carry RFC 5019 §6 caching headers
 * and honour If-None-Match with 304. Transport behaviours are applied here; their waits (`delay`,
 * the base delay, `drip`'s chunkDelayMs) run on `deps.clock`, so on a ManualClock they last until
 * the test advances it. Every request goes to the request log and the metrics; its pino line
 * ("ocsp request") is `debug` (under load, thousands of lines a second), never `error` (what a
 * client got wrong is not the responder's error), with the arrival time as `receivedAt` (pino's
 * own `time` is when the line was written).
 */
export function createOcspHandler(deps: OcspHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const fail = (res: ServerResponse) => (err: unknown) => {
    deps.logger.error({ err }, "OCSP handler failed");
    if (!res.headersSent && !res.destroyed) {
      // internalError (RFC 6960 §2.3), unsigned: 30 03 0a 01 02.
      res.writeHead(200, { "Content-Type": OCSP_RESPONSE_TYPE }).end(unsuccessfulResponse("internalError"));
    }
  };
  return (req, res) => {
    const arrived = deps.clock.now();
    const t0 = performance.now();
    if (req.method === "GET") {
      const key = getRequestKey(req.url ?? "/");
      // Hot path, synchronous end to end: a cached answer for these exact bytes.
      const hit = deps.service.lookup(key);
      if (hit) {
        finish(deps, req, arrived, t0, hit, sendCached(deps, req, res, hit));
        return;
      }
      answerAndSend(deps, req, res, arrived, t0, decodeGetPath(req.url ?? "/"), key).catch(fail(res));
      return;
    }
    // Declared too large: answered before a byte of the body is read.
    if (Number(req.headers["content-length"]) > MAX_REQUEST_BYTES) {
      refuseTooLarge(deps, req, res, arrived, t0);
      return;
    }
    readBody(
      req,
      () => refuseTooLarge(deps, req, res, arrived, t0),
      (body) => {
        const key = body ? postRequestKey(body) : undefined;
        const hit = key !== undefined ? deps.service.lookup(key) : undefined;
        if (hit) {
          finish(deps, req, arrived, t0, hit, sendCached(deps, req, res, hit));
          return;
        }
        answerAndSend(deps, req, res, arrived, t0, body, key).catch(fail(res));
      },
    );
  };
}

async function answerAndSend(
  deps: OcspHandlerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  arrived: Date,
  t0: number,
  der: Uint8Array | undefined,
  key: string | undefined,
): Promise<void> {
  const answer = await deps.service.answer(der, key);
  const timing: Timing = { skewMs: 0 };
  const httpStatus = await send(deps, req, res, answer, timing);
  finish(deps, req, arrived, t0, answer, httpStatus, timing.skewMs);
}

/**
 * What is sent for one answer in the current second of the clock: its body (a cached answer's
 * DER joined once, not per request), its 200 headers when HTTP caches must not keep it, and, when
 * they may, its RFC 5019 headers (max-age and Date change by the second). Kept only for the
 * cached answers served in the current second, at most PREPARED_PER_SECOND of them: a hot answer's
 * headers are built once a second, and a cache of 100,000 answers carries nothing of this.
 */
interface Prepared {
  body: Buffer;
  noStore?: Record<string, string | number>;
  /** RFC 5019 headers (what a 304 carries). */
  caching?: Record<string, string>;
  /** `caching` plus Content-Type and Content-Length (a 200 with the answer's own body). */
  ok?: Record<string, string | number>;
}
/** Why 4,096: far more distinct answers per second than one responder process serves. */
const PREPARED_PER_SECOND = 4096;
const preparedThisSecond = new Map<Answer, Prepared>();
let preparedSecond = Number.NaN;

function preparedFor(answer: Answer, second: number): Prepared {
  if (second !== preparedSecond) {
    preparedThisSecond.clear();
    preparedSecond = second;
  }
  let p = preparedThisSecond.get(answer);
  if (!p) {
    const der = answer.der;
    p = { body: Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength) };
    // Only cached answers come back: a signed one (a nonce) is served once.
    if (answer.cached && preparedThisSecond.size < PREPARED_PER_SECOND) preparedThisSecond.set(answer, p);
  }
  return p;
}

const NO_STORE = { "Cache-Control": "no-cache, no-store" } as const;

/**
 * RFC 5019 §6.2 for one answer to one request, for the cached and the decoding path alike. A
 * nonce-less GET answer not shaped by a behaviour, with nextUpdate and an ETag, may be kept by
 * HTTP caches until nextUpdate: `Date` (RFC 9110 §6.6.1, what a cache computes the answer's age
 * from) and `Cache-Control: max-age` counting down to nextUpdate, both on the responder's clock,
 * `Last-Modified` (thisUpdate), `Expires` (nextUpdate) and `ETag`. Such an answer is status 304
 * with those headers when the request's If-None-Match is its ETag and no transport action
 * applies (RFC 9110 §13.1.2, one entity-tag compared as sent). Anything else is status 200 with
 * `Cache-Control: no-cache, no-store`. The 200 headers describe the answer's own body
 * (application/ocsp-response, its DER length); a caller sending another body overrides them.
 */
function httpCaching(
  deps: OcspHandlerDeps,
  req: IncomingMessage,
  answer: Answer,
): { status: 200 | 304; headers: Record<string, string | number>; body: Buffer } {
  const now = deps.clock.now();
  const p = preparedFor(answer, Math.floor(now.getTime() / 1000));
  const cacheable =
    req.method === "GET" &&
    answer.nonceLength === 0 &&
    answer.behaviour === undefined &&
    answer.thisUpdate !== undefined &&
    answer.nextUpdate !== undefined &&
    answer.etag !== undefined;
  if (!cacheable) {
    p.noStore ??= { ...NO_STORE, "Content-Type": OCSP_RESPONSE_TYPE, "Content-Length": p.body.byteLength };
    return { status: 200, headers: p.noStore, body: p.body };
  }
  if (p.caching === undefined) {
    const maxAge = Math.max(0, Math.floor((answer.nextUpdate!.getTime() - now.getTime()) / 1000));
    p.caching = {
      Date: now.toUTCString(),
      "Cache-Control": `max-age=${maxAge}, public, no-transform, must-revalidate`,
      "Last-Modified": answer.lastModified ?? answer.thisUpdate!.toUTCString(),
      Expires: answer.expires ?? answer.nextUpdate!.toUTCString(),
      ETag: answer.etag!,
    };
    p.ok = { ...p.caching, "Content-Type": OCSP_RESPONSE_TYPE, "Content-Length": p.body.byteLength };
  }
  if (answer.transport.length === 0 && req.headers["if-none-match"] === answer.etag)
    return { status: 304, headers: p.caching, body: p.body };
  return { status: 200, headers: p.ok!, body: p.body };
}

/** Write a cached answer (no transport actions by construction) synchronously; returns the HTTP status. */
function sendCached(deps: OcspHandlerDeps, req: IncomingMessage, res: ServerResponse, answer: Answer): number {
  const c = httpCaching(deps, req, answer);
  if (c.status === 304) res.writeHead(304, c.headers).end();
  else res.writeHead(200, c.headers).end(c.body);
  return c.status;
}

/**
 * Waits on the responder's clock during one request: clock time waited minus the real time
 * that took, in milliseconds (about 0 on the system clock; the simulated wait on a ManualClock).
 */
interface Timing {
  skewMs: number;
}

/**
 * Log and count one answered request. Its latency is the real time spent since `t0`
 * (performance.now()) corrected by `skewMs` (see Timing): processing time plus the time waited
 * on the responder's clock.
 */
function finish(
  deps: OcspHandlerDeps,
  req: IncomingMessage,
  arrived: Date,
  t0: number,
  answer: Answer,
  httpStatus: number,
  skewMs = 0,
): void {
  const latencyMs = Math.max(0, Math.round((performance.now() - t0 + skewMs) * 100) / 100);
  const outcome = httpStatus === 200 || httpStatus === 304 ? answer.outcome : `http-${httpStatus}`;
  const faults =
    answer.transport.length === 0
      ? []
      : answer.transport.filter((a) => a.kind !== "delay").map((a) => (a.kind === "http" ? `http-${a.status}` : a.kind));
  const entry = {
    time: arrived,
    method: req.method ?? "?",
    serials: answer.serials,
    hashes: answer.hashes,
    nonceLength: answer.nonceLength,
    outcome: faults.length > 0 ? `fault:${faults.join("+")}` : outcome,
    httpStatus,
    latencyMs,
    ...(answer.behaviour ? { behaviour: answer.behaviour } : {}),
    cached: answer.cached,
  };
  deps.log.add(entry);
  deps.metrics.observe(entry.method, entry.outcome, latencyMs / 1000, answer.cached);
  if (deps.logger.isLevelEnabled("debug")) {
    const { time, ...rest } = entry;
    deps.logger.debug({ receivedAt: time, ...rest }, "ocsp request");
  }
}

/** Wait `ms` on the responder's clock, recording the skew in `timing`; false when the responder stopped first. */
async function wait(deps: OcspHandlerDeps, ms: number, timing: Timing): Promise<boolean> {
  const clockStart = deps.clock.now().getTime();
  const realStart = performance.now();
  const waited = await waitOnClock(deps.clock, ms, deps.stopping);
  timing.skewMs += deps.clock.now().getTime() - clockStart - (performance.now() - realStart);
  return waited;
}

/**
 * Write the answer with its transport actions applied; resolves with the HTTP status sent (0:
 * none). Delays and drip pauses are waited on the responder's clock (see `wait`).
 */
async function send(
  deps: OcspHandlerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  answer: Answer,
  timing: Timing,
): Promise<number> {
  const actions = answer.transport;
  const has = (kind: Action["kind"]): Action | undefined => actions.find((a) => a.kind === kind);
  const delayMs = actions.filter((a) => a.kind === "delay").reduce((sum, a) => sum + (a.kind === "delay" ? a.ms : 0), 0);
  if (delayMs > 0 && !(await wait(deps, delayMs, timing))) return 0; // the responder is stopping
  if (res.destroyed || deps.stopping.aborted) return 0;
  if (has("hang")) {
    deps.hung.add(res);
    res.on("close", () => deps.hung.delete(res));
    return 0;
  }
  if (has("close")) {
    req.socket.destroy();
    return 0;
  }
  if (has("reset")) {
    req.socket.resetAndDestroy();
    return 0;
  }
  const http = has("http");
  if (http?.kind === "http") {
    const headers: Record<string, string> = { "Content-Type": "text/plain" };
    const retryAfter = http.retryAfter ?? (http.status === 503 ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
    if (retryAfter !== undefined) headers["Retry-After"] = String(retryAfter);
    res.writeHead(http.status, headers).end(`injected fault: HTTP ${http.status}\n`);
    return http.status;
  }
  const c = httpCaching(deps, req, answer);
  if (c.status === 304) {
    res.writeHead(304, c.headers).end();
    return 304;
  }
  let body = c.body;
  let headers = c.headers;
  if (has("empty-body")) body = Buffer.alloc(0);
  if (has("garbage-body")) body = randomBytes(Math.max(16, body.length));
  if (has("wrong-content-type") || body !== c.body) {
    headers = {
      ...headers,
      "Content-Type": has("wrong-content-type") ? "text/html; charset=utf-8" : OCSP_RESPONSE_TYPE,
      "Content-Length": body.length,
    };
  }
  const drip = has("drip");
  if (drip?.kind === "drip") {
    res.writeHead(200, headers);
    for (let i = 0; i < body.length && !res.destroyed; i += drip.chunkBytes) {
      res.write(body.subarray(i, i + drip.chunkBytes));
      if (!(await wait(deps, drip.chunkDelayMs, timing))) break;
    }
    res.end();
    return 200;
  }
  if (has("truncate")) {
    res.writeHead(200, headers);
    res.write(body.subarray(0, Math.floor(body.length / 2)));
    // Flush what was written, then cut the connection short of Content-Length.
    await new Promise<void>((resolve) => res.write("", () => resolve()));
    req.socket.destroy();
    return 200;
  }
  res.writeHead(200, headers).end(body);
  return 200;
}

/** What the request log and the metrics record for a refused oversized body (outcome `http-413`). */
const TOO_LARGE: Answer = {
  der: new Uint8Array(0),
  outcome: "payloadTooLarge",
  serials: [],
  hashes: [],
  nonceLength: 0,
  transport: [],
  behaviour: undefined,
  cached: false,
};

/**
 * Answer a body over MAX_REQUEST_BYTES: `413 Content Too Large` (RFC 9110 §15.5.14) with
 * `Connection: close`, at once. 413 rather than an OCSP malformedRequest because the body is
 * not read, so nothing was parsed to be malformed: the refusal is HTTP's, and says so to any
 * client or proxy (OCSP clients count any non-200 as a failed query, as they would
 * malformedRequest: `openssl ocsp` prints `Code=413`). The connection closes because the unread
 * rest of the body would otherwise be taken for the next request on it; nothing more of it is
 * read. Logged and counted as `http-413`.
 */
function refuseTooLarge(deps: OcspHandlerDeps, req: IncomingMessage, res: ServerResponse, arrived: Date, t0: number): void {
  if (res.headersSent) return;
  const text = `OCSP request body over ${MAX_REQUEST_BYTES} bytes: refused without reading it\n`;
  res.writeHead(413, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(text), Connection: "close" }).end(text);
  finish(deps, req, arrived, t0, TOO_LARGE, 413);
}

/**
 * Read the POST body and call `done` with it, or with undefined when the stream fails. A body
 * that grows past MAX_REQUEST_BYTES without a Content-Length (chunked) calls `tooLarge` once, at
 * the chunk that crosses the limit, and nothing more is kept. Callback style: no promise on the
 * hot path.
 */
function readBody(req: IncomingMessage, tooLarge: () => void, done: (body: Uint8Array | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  let called = false;
  const once = (body: Uint8Array | undefined): void => {
    if (called || tooBig) return;
    called = true;
    done(body);
  };
  req.on("data", (chunk: Buffer) => {
    if (tooBig) return;
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) {
      tooBig = true;
      chunks.length = 0;
      tooLarge();
    } else chunks.push(chunk);
  });
  req.on("end", () => once(new Uint8Array(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))));
  req.on("error", () => once(undefined));
}
