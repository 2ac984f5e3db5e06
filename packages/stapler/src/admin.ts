import express from "express";
import { adminGuard, bearerAuth } from "@ocsp-lab/cli-support";
import { normalizeSerial } from "@ocsp-lab/ocsp";
import type { StaplerMetrics } from "./metrics.js";
import type { PollingPolicy } from "./policy.js";
import type { StapleSnapshot } from "./staple-manager.js";

/** The admin endpoint: `GET /admin/ocsp`, `POST /admin/ocsp/query`, `POST /admin/reload`, `GET /metrics`. */
export interface AdminOptions {
  /** Interface, default 127.0.0.1 whatever the listener binds (the endpoint can reload and query). */
  host?: string;
  /** TCP port, default 0 (ephemeral). */
  port?: number;
  /** Require `Authorization: Bearer <token>` (on `/metrics` too). */
  token?: string;
  /**
   * Serve the endpoint without a token on a `host` that is not loopback (default false: start()
   * refuses, AdminExposedError).
   */
  allowUnauthenticated?: boolean;
}

/** Largest admin request body, in bytes (the endpoints take none); larger is 413 before it is read. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/** What the admin endpoint needs from the running server. */
export interface AdminDeps {
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token: string | undefined;
  /** Per-certificate snapshots, in the order served. */
  status: () => StapleSnapshot[];
  /** The policy in force (milliseconds). */
  policy: PollingPolicy;
  /** Query now, every certificate or the one with this (canonical or not) serial. */
  queryNow: (serial?: string) => Promise<{ serial: string; stapled: boolean }[]>;
  /** Re-read the certificates; rejects with the reason when they cannot be served. */
  reload: () => Promise<void>;
  metrics: StaplerMetrics;
  /** Address and port the endpoint is bound to, read per request (adminGuard's Host and Origin checks). */
  listener: () => { address: string; port: number } | undefined;
}

/** 400 naming the first query parameter or body key not in `allowed`; true when it answered. */
function refusedUnknown(req: express.Request, res: express.Response, allowed: readonly string[]): boolean {
  const query = Object.keys(req.query as Record<string, unknown>).find((k) => !allowed.includes(k));
  const body = req.body as unknown;
  const key = body !== null && typeof body === "object" && !Array.isArray(body) ? Object.keys(body as object)[0] : undefined;
  if (query !== undefined) {
    res.status(400).json({
      error: `unknown query parameter ${JSON.stringify(query)}: ${req.path} takes ${allowed.length ? allowed.join(", ") : "none"}`,
      field: query,
    });
    return true;
  }
  if (key !== undefined || Array.isArray(body)) {
    res.status(400).json({
      error: `unknown key ${JSON.stringify(key ?? "[]")} in the body: ${req.path} takes no body${allowed.includes("serial") ? " (give the serial as ?serial=)" : ""}`,
      field: key ?? "body",
    });
    return true;
  }
  return false;
}

/**
 * The stapler's admin HTTP endpoint (JSON) as an express app:
 * - `GET /admin/ocsp`: `{certificates: StapleSnapshot[], policy}`;
 * - `POST /admin/ocsp/query[?serial=S]`: query now (Redis Enterprise's `POST /v1/ocsp/test`),
 *   `{results: [{serial, stapled}], certificates}`; S in any form normalizeSerial accepts
 *   (leading zeros, uppercase, `0x`, colons); 404 when no served certificate has it, 400 when
 *   it is not hexadecimal;
 * - `POST /admin/reload`: re-read the certificates, `{certificates}`, or 400 `{error}`;
 * - `GET /metrics`: Prometheus text format (behind the token when there is one, no Host check:
 *   scrapers reach it under any name).
 * `/admin/*` requests pass adminGuard first (a body over MAX_ADMIN_BODY_BYTES is 413 unread; a
 * Host not this listener's is 421 without a token; a wrong or missing bearer token is 401; a
 * POST from another Origin is 403). An unknown query parameter, or a JSON body (these endpoints
 * take none), is 400 `{error, field}` naming it. Anything else is 404 `{error}` listing these.
 */
export function createAdminApp(deps: AdminDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.get("/metrics", bearerAuth(deps.token), (_req, res, next) => {
    deps.metrics.registry
      .metrics()
      .then((text) => res.set("Content-Type", deps.metrics.registry.contentType).send(text))
      .catch(next);
  });
  app.use(adminGuard({ token: deps.token, listener: deps.listener, maxBodyBytes: MAX_ADMIN_BODY_BYTES }));
  app.use(express.json({ limit: MAX_ADMIN_BODY_BYTES }));
  app.get("/admin/ocsp", (req, res) => {
    if (refusedUnknown(req, res, [])) return;
    res.json({ certificates: deps.status(), policy: deps.policy });
  });
  app.post("/admin/ocsp/query", (req, res, next) => {
    if (refusedUnknown(req, res, ["serial"])) return;
    const serial = typeof req.query.serial === "string" ? req.query.serial : undefined;
    if (serial !== undefined) {
      try {
        normalizeSerial(serial);
      } catch (err) {
        res.status(400).json({ error: (err as Error).message });
        return;
      }
    }
    deps
      .queryNow(serial)
      .then((results) => {
        if (serial !== undefined && results.length === 0) {
          res.status(404).json({ error: `no served certificate has serial ${serial}: see GET /admin/ocsp` });
          return;
        }
        res.json({ results, certificates: deps.status() });
      })
      .catch(next);
  });
  app.post("/admin/reload", (req, res) => {
    if (refusedUnknown(req, res, [])) return;
    deps.reload().then(
      () => res.json({ certificates: deps.status() }),
      (err: Error) => res.status(400).json({ error: err.message }),
    );
  });
  app.use((req, res) => {
    res.status(404).json({
      error: `nothing at ${req.method} ${req.path}: try GET /admin/ocsp, POST /admin/ocsp/query, POST /admin/reload, GET /metrics`,
    });
  });
  // A body that is not JSON, or over the limit when chunked: its 4xx as JSON, like every answer here.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = (err as { status?: number }).status;
    if (status !== undefined && status >= 400 && status < 500) res.status(status).json({ error: (err as Error).message });
    else res.status(500).json({ error: "internal error" });
  });
  return app;
}
