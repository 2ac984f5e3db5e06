import { z } from "zod";
import {
  CERT_STATUS_NAMES,
  CRLReason,
  UNSUCCESSFUL_STATUS_NAMES,
  normalizeSerial,
  type CertStatus,
  type RevokedInfo,
} from "@ocsp-lab/ocsp";
import { InvalidBehaviourError } from "./errors.js";

/**
 * Deliberate defects in the content of a signed response, for client and stapler tests
 * (each names the RFC 6960 check a careful client makes):
 * - `bad-signature`: the signature bits are flipped after signing;
 * - `unauthorized-key`: signed by a key with a self-signed certificate the issuer never saw;
 * - `signer-no-eku` / `signer-expired` / `signer-other-ca`: a delegated signer certificate
 *   without id-kp-OCSPSigning / past its notAfter / issued by an unrelated CA (§4.2.2.2);
 * - `signer-not-included`: a delegated signer left out of `certs`;
 * - `stale`: nextUpdate in the past; `not-yet-valid`: thisUpdate in the future;
 *   `no-next-update`: nextUpdate absent; `long-validity`: nextUpdate ten years ahead (§4.2.2.1);
 * - `wrong-serial`: the SingleResponse names another serial;
 * - `extra-single-response`: a SingleResponse (good) for another serial comes before the one
 *   asked for, so the response answers for two certificates (RFC 6960 §4.2.2.3: a client
 *   finds its own by CertID; a stapler that asked for one may refuse more);
 * - `critical-extension`: an unknown critical response extension (§4.4);
 * - `nonce-omitted` / `nonce-wrong` / `nonce-overlong`: the request's nonce not echoed / echoed
 *   with other bytes / echoed with 64 bytes (RFC 8954 §2.1 allows 32).
 */
export const CONTENT_FLAWS = [
  "bad-signature",
  "unauthorized-key",
  "signer-no-eku",
  "signer-expired",
  "signer-other-ca",
  "signer-not-included",
  "stale",
  "not-yet-valid",
  "no-next-update",
  "long-validity",
  "wrong-serial",
  "extra-single-response",
  "critical-extension",
  "nonce-omitted",
  "nonce-wrong",
  "nonce-overlong",
] as const;

/** One content flaw. */
export type ContentFlaw = (typeof CONTENT_FLAWS)[number];

/** Unsigned error answers (RFC 6960 §4.2.1 OCSPResponseStatus other than successful). */
export const ERROR_STATUSES = UNSUCCESSFUL_STATUS_NAMES;

const isoDate = z.union([
  z.date(),
  z
    .string()
    .datetime({ offset: true })
    .transform((s) => new Date(s)),
]);
const reason = z.union([
  z.nativeEnum(CRLReason),
  z.string().transform((s, ctx) => {
    const key = Object.keys(CRLReason).find((k) => k.toLowerCase() === s.replace(/[-_\s]/g, "").toLowerCase());
    if (key === undefined || !Number.isNaN(Number(key))) {
      ctx.addIssue({ code: "custom", message: `unknown CRLReason "${s}"` });
      return z.NEVER;
    }
    return CRLReason[key as keyof typeof CRLReason];
  }),
]);

/**
 * One thing the responder does to a request, as JSON (admin API, config file) or objects
 * (library). Several actions combine (a delay and a content flaw, say).
 */
export const actionSchema = z.discriminatedUnion("kind", [
  /** Answer normally (a step in a sequence). */
  z.object({ kind: z.literal("normal") }).strict(),
  /**
   * Answer this certificate status whatever the CA says; for revoked, RFC 6960 RevokedInfo's
   * `revocationTime` (default: the time of the answer) and `revocationReason` (`reason` is
   * accepted as a shorter alias).
   */
  z
    .object({
      kind: z.literal("status"),
      status: z.enum(CERT_STATUS_NAMES),
      revocationReason: reason.optional(),
      reason: reason.optional(),
      revocationTime: isoDate.optional(),
    })
    .strict()
    .transform(({ reason: alias, ...rest }) => ({
      ...rest,
      ...(rest.revocationReason === undefined && alias !== undefined ? { revocationReason: alias } : {}),
    })),
  /** Answer an unsigned error response with this responseStatus. */
  z.object({ kind: z.literal("responseStatus"), responseStatus: z.enum(ERROR_STATUSES) }).strict(),
  /** Wait before answering, in milliseconds. */
  z.object({ kind: z.literal("delay"), ms: z.number().int().min(0).max(600_000) }).strict(),
  /** Read the request and never answer (until the responder stops). */
  z.object({ kind: z.literal("hang") }).strict(),
  /** Close the connection without answering (FIN). */
  z.object({ kind: z.literal("close") }).strict(),
  /** Reset the connection (TCP RST). */
  z.object({ kind: z.literal("reset") }).strict(),
  /** Send the body a few bytes at a time, `chunkDelayMs` apart. */
  z
    .object({
      kind: z.literal("drip"),
      chunkBytes: z.number().int().min(1).default(16),
      chunkDelayMs: z.number().int().min(1).max(60_000).default(100),
    })
    .strict(),
  /** Announce the full Content-Length, send half the body, close. */
  z.object({ kind: z.literal("truncate") }).strict(),
  /** Answer an HTTP error with no OCSP body; `retryAfter` in seconds (a 503 without it gets DEFAULT_RETRY_AFTER_SECONDS). */
  z
    .object({
      kind: z.literal("http"),
      status: z.number().int().min(300).max(599),
      retryAfter: z.number().int().min(0).optional(),
    })
    .strict(),
  /** Send the OCSP body as `text/html`. */
  z.object({ kind: z.literal("wrong-content-type") }).strict(),
  /** HTTP 200 with `application/ocsp-response` and no body. */
  z.object({ kind: z.literal("empty-body") }).strict(),
  /** HTTP 200 with `application/ocsp-response` and random bytes. */
  z.object({ kind: z.literal("garbage-body") }).strict(),
  /** Sign a response with a deliberate defect (see CONTENT_FLAWS). */
  z.object({ kind: z.literal("content"), flaw: z.enum(CONTENT_FLAWS) }).strict(),
]);

/** One action (see actionSchema). */
export type Action = z.output<typeof actionSchema>;
/** One action as written in JSON (dates as strings, reasons as names). */
export type ActionInput = z.input<typeof actionSchema>;

/** A step of a sequence: these actions for the next `count` requests (all of them when absent). */
export const stepSchema = z
  .object({
    actions: z.array(actionSchema).min(1),
    count: z.number().int().positive().optional(),
  })
  .strict();

/**
 * A behaviour: steps applied in order to the requests in its scope; with `repeat` the steps
 * cycle ("alternate": `[{actions:[X], count:1}, {actions:[{kind:"normal"}], count:1}]`),
 * otherwise the behaviour ends after the last counted step ("X for the next N requests, then Y":
 * `[{actions:[X], count:N}, {actions:[Y]}]`).
 */
export const behaviourSchema = z
  .object({
    steps: z.array(stepSchema).min(1),
    repeat: z.boolean().default(false),
  })
  .strict();

/** A behaviour (see behaviourSchema). */
export type BehaviourSpec = z.output<typeof behaviourSchema>;
/** A behaviour as written in JSON. */
export type BehaviourInput = z.input<typeof behaviourSchema>;

/** Where a behaviour applies: every request, the CertIDs of one issuer, or one serial. */
export type Scope = { kind: "global" } | { kind: "issuer"; issuer: string } | { kind: "serial"; serial: string };

/**
 * A request fault (`setFault`), a shorthand for a one-action global behaviour: tryLater,
 * internalError, malformedRequest, sigRequired, unauthorized (OCSP responseStatus), http-500,
 * http-503 (Retry-After: 1), close, reset, hang.
 */
export type FaultKind =
  | "tryLater"
  | "internalError"
  | "malformedRequest"
  | "sigRequired"
  | "unauthorized"
  | "http-500"
  | "http-503"
  | "close"
  | "reset"
  | "hang";

/**
 * The Retry-After (RFC 9110 §10.2.3, delay-seconds) of an HTTP 503 answer whose behaviour gives
 * none (`{ kind: "http", status: 503 }`, the harness' `http: 503`): 1 second, the `http-503`
 * fault's. A 503 "indicates that the server is currently unable to handle the request due to a
 * temporary overload or scheduled maintenance" and "the server MAY send a Retry-After header
 * field" (RFC 9110 §15.6.4); other statuses get one only when the behaviour sets `retryAfter`.
 */
export const DEFAULT_RETRY_AFTER_SECONDS = 1;

/** Every fault kind, for validation and help texts. */
export const FAULT_KINDS: readonly FaultKind[] = [
  "tryLater",
  "internalError",
  "malformedRequest",
  "sigRequired",
  "unauthorized",
  "http-500",
  "http-503",
  "close",
  "reset",
  "hang",
];

/** A fault and how many requests it applies to (absent: until cleared). */
export interface Fault {
  kind: FaultKind;
  count?: number;
}

/**
 * A per-serial status override (shorthand for a serial-scoped `status` action): a CertStatus
 * whose RevokedInfo fields may be left out (revocationTime then defaults to the time of the answer).
 */
export type StatusOverride = Exclude<CertStatus, { status: "revoked" }> | ({ status: "revoked" } & Partial<RevokedInfo>);

/** The actions that apply to one request, and which behaviour they came from. */
export interface Resolved {
  actions: Action[];
  /** `global`, `issuer:<serial>`, `serial:<serial>`, or undefined when none applied. */
  from: string | undefined;
}

interface Active {
  spec: BehaviourSpec;
  step: number;
  usedInStep: number;
}

function scopeKey(scope: Scope): string {
  return scope.kind === "global"
    ? "global"
    : scope.kind === "issuer"
      ? `issuer:${normalizeSerial(scope.issuer)}`
      : `serial:${normalizeSerial(scope.serial)}`;
}

/**
 * Validate a behaviour written as JSON or objects; every object is strict (an unknown key is an error).
 * @throws InvalidBehaviourError naming the first bad field (`steps.0.actions.0.kind`) and why;
 * for an unknown key, the key itself (`steps.0.actions.0.colour`).
 */
export function parseBehaviour(input: unknown): BehaviourSpec {
  const result = behaviourSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      // Named itself: `{"steps":[…],"reapet":true}` must not quietly mean "repeat: false".
      const path = [...issue.path, issue.keys[0]!];
      throw new InvalidBehaviourError(path.join("."), valueAt(input, path), `unknown key ${JSON.stringify(issue.keys[0])}`);
    }
    throw new InvalidBehaviourError(issue.path.join(".") || "behaviour", valueAt(input, issue.path), issue.message);
  }
  return result.data;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k], input);
}

/**
 * The run-time behaviour of a responder: behaviours scoped globally, per issuer or per serial
 * (the most specific scope wins), each a sequence of steps, plus a base delay. Changed through
 * the library API or the admin API while the responder serves; every request resolves it afresh.
 */
export class Behaviour {
  private readonly active = new Map<string, Active>();
  private baseDelay = 0;
  private readonly listeners = new Set<() => void>();

  /**
   * Apply `input` to requests in `scope`, replacing what that scope had.
   * @throws InvalidBehaviourError naming the bad field; InvalidSerialError for a non-hex serial or issuer.
   */
  set(scope: Scope, input: BehaviourInput | BehaviourSpec): void {
    const spec = parseBehaviour(input);
    this.active.set(scopeKey(scope), { spec, step: 0, usedInStep: 0 });
    this.changed();
  }

  /** Remove the behaviour of `scope` (requests there are answered normally again). */
  clear(scope: Scope): void {
    if (this.active.delete(scopeKey(scope))) this.changed();
  }

  /** Every behaviour in force: scope key → spec, current step and requests used in it. */
  list(): Array<{ scope: string; spec: BehaviourSpec; step: number; usedInStep: number }> {
    return [...this.active].map(([scope, a]) => ({ scope, spec: a.spec, step: a.step, usedInStep: a.usedInStep }));
  }

  /** Whether any behaviour or delay is in force (the hot path skips resolution otherwise). */
  get idle(): boolean {
    return this.active.size === 0 && this.baseDelay === 0;
  }

  /**
   * The actions for one request about `serial` under `issuer` (canonical serials), consuming one
   * request of the chosen behaviour's current step. Serial beats issuer beats global.
   */
  resolve(serial: string | undefined, issuer: string | undefined): Resolved {
    const keys = [
      serial !== undefined ? `serial:${serial}` : undefined,
      issuer !== undefined ? `issuer:${issuer}` : undefined,
      "global",
    ];
    for (const key of keys) {
      if (key === undefined) continue;
      const a = this.active.get(key);
      if (!a) continue;
      const step = a.spec.steps[a.step]!;
      const actions = step.actions;
      a.usedInStep += 1;
      if (step.count !== undefined && a.usedInStep >= step.count) {
        a.step += 1;
        a.usedInStep = 0;
        if (a.step >= a.spec.steps.length) {
          if (a.spec.repeat) a.step = 0;
          else this.active.delete(key);
        }
      }
      return { actions: this.baseDelay > 0 ? [{ kind: "delay", ms: this.baseDelay }, ...actions] : actions, from: key };
    }
    return { actions: this.baseDelay > 0 ? [{ kind: "delay", ms: this.baseDelay }] : [], from: undefined };
  }

  /**
   * The status override a serial's own or its issuer's behaviour has in its current step,
   * without consuming a request (for the second and later CertIDs of one request).
   */
  peekStatus(serial: string, issuer: string | undefined): Extract<Action, { kind: "status" }> | undefined {
    for (const key of [`serial:${serial}`, issuer !== undefined ? `issuer:${issuer}` : undefined]) {
      const a = key !== undefined ? this.active.get(key) : undefined;
      if (!a) continue;
      const found = a.spec.steps[a.step]!.actions.find((x) => x.kind === "status");
      return found?.kind === "status" ? found : undefined;
    }
    return undefined;
  }

  /** Run `listener` after every change (the response cache listens). */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /**
   * Answer `serial` with `override` whatever the CA says (shorthand for a serial-scoped
   * `status` action).
   * @throws InvalidBehaviourError for an unknown status; InvalidSerialError for a non-hex serial.
   */
  setStatus(serial: string, override: StatusOverride): void {
    if (!["good", "revoked", "unknown"].includes(override.status)) {
      throw new InvalidBehaviourError("status", override.status, "use good, revoked or unknown");
    }
    this.set({ kind: "serial", serial }, { steps: [{ actions: [{ kind: "status", ...override }] }] });
  }

  /** Drop the behaviour of `serial` (the StatusSource answers again). */
  clearStatus(serial: string): void {
    this.clear({ kind: "serial", serial });
  }

  /**
   * Wait `ms` milliseconds before answering every request (a slow responder), on top of any behaviour.
   * @throws InvalidBehaviourError when ms is negative or not finite.
   */
  setDelay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > 600_000)
      throw new InvalidBehaviourError("delay (ms)", ms, "give a number of milliseconds from 0 to 600000");
    this.baseDelay = ms;
    this.changed();
  }

  /** The base delay in milliseconds. */
  get delayMs(): number {
    return this.baseDelay;
  }

  /**
   * Fail the next `fault.count` requests (or all, until cleared) with `fault.kind` — a global
   * behaviour; `undefined` clears the global behaviour.
   * @throws InvalidBehaviourError for an unknown kind or a count that is not a positive integer.
   */
  setFault(fault: Fault | undefined): void {
    if (!fault) {
      this.clear({ kind: "global" });
      return;
    }
    if (!FAULT_KINDS.includes(fault.kind))
      throw new InvalidBehaviourError("fault", fault.kind, `use one of ${FAULT_KINDS.join(", ")}`);
    if (fault.count !== undefined && !(Number.isInteger(fault.count) && fault.count > 0)) {
      throw new InvalidBehaviourError("fault count", fault.count, "give a positive integer, or omit it for 'until cleared'");
    }
    const action: ActionInput =
      fault.kind === "http-500"
        ? { kind: "http", status: 500 }
        : fault.kind === "http-503"
          ? { kind: "http", status: 503, retryAfter: DEFAULT_RETRY_AFTER_SECONDS }
          : fault.kind === "close" || fault.kind === "reset" || fault.kind === "hang"
            ? { kind: fault.kind }
            : { kind: "responseStatus", responseStatus: fault.kind };
    this.set(
      { kind: "global" },
      { steps: [{ actions: [action], ...(fault.count !== undefined ? { count: fault.count } : {}) }] },
    );
  }

  /** The global fault in force as set by setFault, without consuming it. */
  get currentFault(): Fault | undefined {
    const a = this.active.get("global");
    if (a?.spec.steps.length !== 1) return undefined;
    const step = a.spec.steps[0]!;
    const action = step.actions[0]!;
    const kind: FaultKind | undefined =
      action.kind === "http"
        ? action.status === 500
          ? "http-500"
          : action.status === 503
            ? "http-503"
            : undefined
        : action.kind === "responseStatus"
          ? action.responseStatus
          : action.kind === "close" || action.kind === "reset" || action.kind === "hang"
            ? action.kind
            : undefined;
    if (!kind) return undefined;
    return step.count !== undefined ? { kind, count: step.count - a.usedInStep } : { kind };
  }

  /** Back to a plain responder: no behaviours, no delay. */
  reset(): void {
    this.active.clear();
    this.baseDelay = 0;
    this.changed();
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
