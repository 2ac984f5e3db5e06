import express, { type Express, type Request, type Response } from "express";
import { setTimeout as delay } from "node:timers/promises";
import { OCSPResponseStatus, responseStatusName, type Clock } from "@ocsp-lab/ca";
import type { Logger } from "pino";
import type { Behaviour, FaultKind } from "./behaviour.js";
import type { OcspService, ServiceAnswer } from "./ocsp-service.js";
import { OcspResponseGenerator } from "./response-generator.js";
import type { RequestLog } from "./request-log.js";

/** Largest request body accepted, in bytes. A real OCSP request is a few hundred bytes. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * Where CRLs come from: the DER of the full (or delta) CRL of the CA with this serial, or
 * undefined when there is none.
 */
export interface CrlSource {
  crl(issuerSerial: string, delta: boolean): Promise<Uint8Array | undefined>;
}

/** What the HTTP layer needs. */
export interface ResponderAppDeps {
  service: OcspService;
  /** Serves `GET /crl/<issuer serial>.crl` and `/crl/<issuer serial>-delta.crl` when given. */
  crls?: CrlSource;
  behaviour: Behaviour;
  log: RequestLog;
  clock: Clock;
  logger: Logger;
}

const OCSP_RESPONSE_TYPE = "application/ocsp-response";

/**
 * The express app that serves OCSP over HTTP (RFC 6960 Appendix A.1, RFC 5019 §5):
 * - `POST <any path>` with the DER request as body (`application/ocsp-request`);
 * - `GET /{url-encoded base64 of the DER request}` (a doubled slash and base64url are accepted).
 * Protocol failures (bad URL encoding, bad base64, bad DER, oversized body) are answered with an
 * OCSP `malformedRequest` response, never a bare 404 or a 500. Every request is logged.
 */
export function createResponderApp(deps: ResponderAppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  // CRL distribution points (RFC 5280 §4.2.1.13): DER over HTTP, `application/pkix-crl` (RFC 2585).
  // An OCSP GET path is base64 of a DER SEQUENCE and starts with "M", so "/crl/" never collides.
  app.get(/^\/crl\/([0-9a-f]+)(-delta)?\.crl$/, (req, res, next) => {
    const [, serial, delta] = /^\/crl\/([0-9a-f]+)(-delta)?\.crl$/.exec(req.path)!;
    if (!deps.crls) {
      next();
      return;
    }
    deps.crls
      .crl(serial!, delta !== undefined)
      .then((der) => {
        if (!der) {
          res.status(404).type("text/plain").send(`no CRL for issuer ${serial}\n`);
          return;
        }
        res.status(200).set({ "Content-Type": "application/pkix-crl", "Cache-Control": "no-cache" }).end(Buffer.from(der));
      })
      .catch(next);
  });
  app.use((req, res, next) => {
    if (req.method !== "GET" && req.method !== "POST") {
      next();
      return;
    }
    handle(deps, req, res).catch((err: unknown) => {
      deps.logger.error({ err }, "OCSP handler failed");
      if (!res.headersSent) sendOcsp(res, OcspResponseGenerator.error(OCSPResponseStatus.internalError), false);
    });
  });
  app.use((req, res) => {
    res.set("Allow", "GET, POST").status(405).type("text/plain").send(`OCSP is served over GET and POST, not ${req.method}\n`);
  });
  return app;
}

async function handle(deps: ResponderAppDeps, req: Request, res: Response): Promise<void> {
  const arrived = deps.clock.now();
  const t0 = performance.now();
  const body = req.method === "POST" ? await readBody(req) : decodeGetPath(req.url);

  if (deps.behaviour.delayMs > 0) await delay(deps.behaviour.delayMs);
  const fault = deps.behaviour.takeFault();
  let answer: Pick<ServiceAnswer, "serials" | "hashes" | "nonceLength"> | undefined;
  let outcome: string;
  let httpStatus = 200;
  if (fault) {
    outcome = `fault:${fault}`;
    // Log what was asked even when the answer is a fault (parsing again only on this path).
    if (body !== undefined) answer = deps.service.describe(body);
    httpStatus = applyFault(fault, res);
  } else if (body === undefined) {
    outcome = responseStatusName(OCSPResponseStatus.malformedRequest);
    sendOcsp(res, OcspResponseGenerator.error(OCSPResponseStatus.malformedRequest), false);
  } else {
    const answered = await deps.service.answer(body);
    answer = answered;
    outcome = answered.outcome;
    sendOcsp(res, answered.der, req.method === "GET" && answered.nonceLength === 0, answered);
  }
  const entry = {
    time: arrived,
    method: req.method,
    serials: answer?.serials ?? [],
    hashes: answer?.hashes ?? [],
    nonceLength: answer?.nonceLength ?? 0,
    outcome,
    httpStatus,
    latencyMs: Math.round((performance.now() - t0) * 100) / 100,
  };
  deps.log.add(entry);
  // Client-caused errors are the client's business: info, never error.
  deps.logger.info(entry, "ocsp request");
}

function applyFault(fault: FaultKind, res: Response): number {
  switch (fault) {
    case "tryLater":
    case "internalError":
    case "malformedRequest":
    case "sigRequired":
    case "unauthorized":
      sendOcsp(res, OcspResponseGenerator.error(OCSPResponseStatus[fault]), false);
      return 200;
    case "http-500":
      res.status(500).type("text/plain").send("injected fault: HTTP 500\n");
      return 500;
    case "http-503":
      res.status(503).set("Retry-After", "1").type("text/plain").send("injected fault: HTTP 503\n");
      return 503;
    case "close":
      res.socket?.destroy();
      return 0;
    case "hang":
      // Never answer; the socket is destroyed when the responder stops.
      return 0;
  }
}

function sendOcsp(res: Response, der: Uint8Array, cacheable: boolean, answer?: ServiceAnswer): void {
  res.status(200).set("Content-Type", OCSP_RESPONSE_TYPE);
  if (cacheable && answer?.nextUpdate && answer.thisUpdate) {
    // RFC 5019 §6.2: let HTTP caches keep a GET answer until nextUpdate.
    const maxAge = Math.max(0, Math.floor((answer.nextUpdate.getTime() - answer.thisUpdate.getTime()) / 1000));
    res.set({
      "Cache-Control": `max-age=${maxAge}, public, no-transform, must-revalidate`,
      "Last-Modified": answer.thisUpdate.toUTCString(),
      Expires: answer.nextUpdate.toUTCString(),
    });
  } else {
    res.set("Cache-Control", "no-cache, no-store");
  }
  res.end(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
}

/** The POST body, or undefined when it is larger than MAX_REQUEST_BYTES or the stream fails. */
async function readBody(req: Request): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) return undefined;
      chunks.push(chunk);
    }
  } catch {
    return undefined;
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * The DER request from a GET path: strip leading slashes (a doubled slash happens when the
 * AIA URL ends in `/`), percent-decode, base64-decode (standard or url alphabet). Undefined when
 * any step fails.
 */
export function decodeGetPath(url: string): Uint8Array | undefined {
  const path = url.split("?")[0]!.replace(/^\/+/, "");
  if (path === "") return undefined;
  let b64: string;
  try {
    b64 = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  // Some clients leave `+` unescaped and proxies turn it into a space.
  b64 = b64.replace(/ /g, "+").replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.replace(/=+$/, "").length % 4 === 1) return undefined;
  const der = Buffer.from(b64, "base64");
  return der.length === 0 ? undefined : new Uint8Array(der);
}
