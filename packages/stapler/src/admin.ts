import express from "express";
import { bearerAuth } from "@ocsp-lab/cli-support";
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
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
}

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
}

/**
 * The stapler's admin HTTP endpoint (JSON) as an express app:
 * - `GET /admin/ocsp`: `{certificates: StapleSnapshot[], policy}`;
 * - `POST /admin/ocsp/query[?serial=S]`: query now (Redis Enterprise's `POST /v1/ocsp/test`),
 *   `{results: [{serial, stapled}], certificates}`; S in any form normalizeSerial accepts
 *   (leading zeros, uppercase, `0x`, colons); 404 when no served certificate has it, 400 when
 *   it is not hexadecimal;
 * - `POST /admin/reload`: re-read the certificates, `{certificates}`, or 400 `{error}`;
 * - `GET /metrics`: Prometheus text format.
 * Anything else is 404 `{error}` listing these; a wrong or missing bearer token is 401.
 */
export function createAdminApp(deps: AdminDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.use(bearerAuth(deps.token));
  app.get("/admin/ocsp", (_req, res) => {
    res.json({ certificates: deps.status(), policy: deps.policy });
  });
  app.post("/admin/ocsp/query", (req, res, next) => {
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
  app.post("/admin/reload", (_req, res) => {
    deps.reload().then(
      () => res.json({ certificates: deps.status() }),
      (err: Error) => res.status(400).json({ error: err.message }),
    );
  });
  app.get("/metrics", (_req, res, next) => {
    deps.metrics.registry
      .metrics()
      .then((text) => res.set("Content-Type", deps.metrics.registry.contentType).send(text))
      .catch(next);
  });
  app.use((req, res) => {
    res.status(404).json({
      error: `nothing at ${req.method} ${req.path}: try GET /admin/ocsp, POST /admin/ocsp/query, POST /admin/reload, GET /metrics`,
    });
  });
  return app;
}
