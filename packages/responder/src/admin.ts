import express, { type NextFunction, type Request, type Response, type Router } from "express";
import { adminGuard } from "@ocsp-lab/cli-support";
import { OcspLabError, normalizeSerial } from "@ocsp-lab/ocsp";
import { InvalidBehaviourError } from "./errors.js";
import { actionSchema, type Behaviour, type BehaviourInput, type Scope } from "./behaviour.js";
import type { RequestLog } from "./request-log.js";
import type { ServedIssuer } from "./status-source.js";

/** What the admin API needs. */
export interface AdminDeps {
  behaviour: Behaviour;
  log: RequestLog;
  /** The issuers served, for `GET /admin/issuers`. */
  issuers: () => ServedIssuer[];
  /** When set, every admin request needs `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * Address and port of the listener the router is served on (the OCSP port's or the admin's
   * own), read per request: the Host and Origin checks of adminGuard compare with it.
   */
  listener: () => { address: string; port: number } | undefined;
}

/** Largest admin request body, in bytes (a behaviour is a few hundred); larger is 413. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/**
 * Refuse keys of `object` not in `allowed`, naming the first one (`where` prefixes it, e.g. a
 * query parameter). A misspelt key must not be ignored: `{"actions":[…],"cuont":3}` would
 * otherwise apply for ever instead of three times.
 * @throws InvalidBehaviourError naming the key and the keys allowed.
 */
function refuseUnknownKeys(object: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const unknown = Object.keys(object).find((k) => !allowed.includes(k));
  if (unknown !== undefined)
    throw new InvalidBehaviourError(
      unknown,
      object[unknown],
      `unknown ${what} ${JSON.stringify(unknown)}: use ${allowed.join(", ")}`,
    );
}

/**
 * The admin REST API (JSON), mounted at `/admin`:
 * - `GET /admin/behaviours` — the behaviours in force;
 * - `PUT /admin/behaviours/global`, `/admin/behaviours/issuers/:serial`,
 *   `/admin/behaviours/serials/:serial` — body a behaviour (`{steps, repeat}`) or a shorthand
 *   `{actions, count?}`; `DELETE` the same paths; `DELETE /admin/behaviours` resets everything;
 * - `PUT /admin/delay` `{ms}` — base delay;
 * - `GET /admin/requests?serial=&since=&limit=` — the request log;
 * - `GET /admin/issuers` — issuers served, with their signers.
 * Every request first passes adminGuard: a body over MAX_ADMIN_BODY_BYTES is 413 before it is
 * read, a Host that is not this listener's is 421 (without a token), a wrong or missing bearer
 * token is 401, a state-changing request from another Origin is 403. Validation errors are 400
 * `{error, field}` naming the field; an unknown key in a body (or query parameter) is one, named
 * as the field.
 */
export function createAdminRouter(deps: AdminDeps): Router {
  const router = express.Router({ caseSensitive: true });
  router.use(adminGuard({ token: deps.token, listener: deps.listener, maxBodyBytes: MAX_ADMIN_BODY_BYTES }));
  router.use(express.json({ limit: MAX_ADMIN_BODY_BYTES }));

  router.get("/behaviours", (_req, res) => {
    res.json(deps.behaviour.list());
  });
  const scopeOf = (req: Request, kind: "issuers" | "serials" | undefined): Scope => {
    const serial = (req.params as { serial?: string }).serial;
    if (kind === undefined || serial === undefined) return { kind: "global" };
    const canonical = normalizeSerial(serial);
    return kind === "issuers" ? { kind: "issuer", issuer: canonical } : { kind: "serial", serial: canonical };
  };
  const put =
    (kind: "issuers" | "serials" | undefined) =>
    (req: Request, res: Response): void => {
      const body = req.body as Record<string, unknown> | undefined;
      if (!body || typeof body !== "object" || Array.isArray(body))
        throw new InvalidBehaviourError(
          "body",
          body,
          "send a JSON behaviour {steps:[{actions:[...], count?}], repeat?} or {actions:[...], count?}",
        );
      const shorthand = "actions" in body;
      refuseUnknownKeys(body, shorthand ? ["actions", "count"] : ["steps", "repeat"], "key");
      const input = (
        shorthand ? { steps: [{ actions: body.actions, ...(body.count !== undefined ? { count: body.count } : {}) }] } : body
      ) as BehaviourInput;
      const scope = scopeOf(req, kind);
      deps.behaviour.set(scope, input);
      res.json({
        ok: true,
        scope: scope.kind === "global" ? "global" : scope.kind === "issuer" ? `issuer:${scope.issuer}` : `serial:${scope.serial}`,
      });
    };
  const del =
    (kind: "issuers" | "serials" | undefined) =>
    (req: Request, res: Response): void => {
      deps.behaviour.clear(scopeOf(req, kind));
      res.json({ ok: true });
    };
  router.put("/behaviours/global", put(undefined));
  router.delete("/behaviours/global", del(undefined));
  for (const kind of ["issuers", "serials"] as const) {
    router.put(`/behaviours/${kind}/:serial`, put(kind));
    router.delete(`/behaviours/${kind}/:serial`, del(kind));
  }
  router.delete("/behaviours", (_req, res) => {
    deps.behaviour.reset();
    res.json({ ok: true });
  });
  router.put("/delay", (req, res) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (body && typeof body === "object") refuseUnknownKeys(body, ["ms"], "key");
    deps.behaviour.setDelay(body?.ms as number);
    res.json({ ok: true, ms: deps.behaviour.delayMs });
  });
  router.get("/requests", (req, res) => {
    const q = req.query as Record<string, unknown>;
    refuseUnknownKeys(q, ["serial", "since", "limit"], "query parameter");
    for (const name of ["serial", "since", "limit"]) {
      if (q[name] !== undefined && typeof q[name] !== "string") throw new InvalidBehaviourError(name, q[name], "give it once");
    }
    const since = q.since !== undefined ? new Date(q.since as string) : undefined;
    if (since && Number.isNaN(since.getTime())) throw new InvalidBehaviourError("since", q.since, "give an ISO 8601 time");
    const limit = q.limit !== undefined ? Number(q.limit) : undefined;
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
      throw new InvalidBehaviourError("limit", q.limit, "give a positive whole number");
    res.json(
      deps.log.list({
        ...(q.serial !== undefined ? { serial: normalizeSerial(q.serial as string) } : {}),
        ...(since ? { since } : {}),
        ...(limit !== undefined ? { limit } : {}),
      }),
    );
  });
  router.get("/issuers", (_req, res) => {
    res.json(
      deps.issuers().map((i) => ({
        serial: i.id,
        subject: i.certificate.subject,
        delegatedSigner: { serial: i.delegated.certificate.serialNumber.toLowerCase(), subject: i.delegated.certificate.subject },
      })),
    );
  });
  router.get("/actions", (_req, res) => {
    res.json(actionSchema.options.map((o) => ("shape" in o ? o : o.in).shape.kind.value));
  });
  router.use((_req, res) => {
    res.status(404).json({ error: "no such admin endpoint: see GET /admin/behaviours, /admin/requests, /admin/issuers" });
  });
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof InvalidBehaviourError || err instanceof OcspLabError) {
      const field = /^invalid (\S+)/.exec(err.message)?.[1];
      res.status(400).json({ error: err.message, ...(field ? { field } : {}) });
      return;
    }
    const status = (err as { status?: number }).status;
    if (status !== undefined && status >= 400 && status < 500) {
      res.status(status).json({ error: (err as Error).message });
      return;
    }
    res.status(500).json({ error: "internal error" });
  });
  return router;
}
