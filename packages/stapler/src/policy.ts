import { z } from "zod";
import { InvalidPolicyError } from "./errors.js";

/**
 * Longest period accepted, in seconds: Node timers hold at most 2^31 − 1 ms (about 24.8 days)
 * and fire at once beyond that, which would turn a long period into a tight loop.
 */
export const MAX_SECONDS = 2_147_483;

/**
 * When a staple is fetched (`mode`). `eager` is this stapler's own behaviour; the others
 * reproduce known failure modes of other servers so the harness can test clients against them:
 * - `eager`: fetch at start-up before the listener is ready, refresh ahead of expiry on a timer;
 * - `lazy` (nginx): no fetch until a handshake asks; that handshake and every one until the
 *   answer arrives get no staple; refreshes are triggered by handshakes only;
 * - `expire-then-fetch` (a CDN): fetch at start-up, then serve the staple until its nextUpdate
 *   with no refresh ahead; the first handshake after expiry gets none and triggers the fetch;
 * - `in-handshake` (Apache): a handshake that finds no staple, or one due for refresh, waits
 *   for the fetch, up to `response_timeout`.
 */
export const STAPLING_MODES = ["eager", "lazy", "expire-then-fetch", "in-handshake"] as const;
export type StaplingMode = (typeof STAPLING_MODES)[number];

/**
 * What to staple while the responder fails (`on_failure`):
 * - `invalidate` (Redis Enterprise): after `recovery_max_tries` failed queries in a row, staple
 *   nothing;
 * - `serve-until-expiry`: keep the last good response until its nextUpdate minus
 *   `expiry_margin`, then staple nothing;
 * - `staple-errors` (Apache): staple an unsuccessful answer (tryLater, internalError...) as
 *   received, and a made-up tryLater when the responder cannot be reached (Apache's
 *   SSLStaplingFakeTryLater). Responses that fail verification are never stapled.
 */
export const ON_FAILURE_POLICIES = ["invalidate", "serve-until-expiry", "staple-errors"] as const;
export type OnFailurePolicy = (typeof ON_FAILURE_POLICIES)[number];

/**
 * When the listener reports ready (`startup`), in the modes that fetch at start-up:
 * - `wait-for-staple`: once the first staple is in (a persisted one counts), retrying every
 *   `recovery_frequency`; after `recovery_max_tries` failed queries it is ready without one
 *   (and says so in the log), so a dead responder cannot keep a server down for ever;
 * - `ready-after-timeout`: after the first query, successful or not (at most `response_timeout`).
 */
export const STARTUP_POLICIES = ["wait-for-staple", "ready-after-timeout"] as const;
export type StartupPolicy = (typeof STARTUP_POLICIES)[number];

/**
 * The hash of the CertID the stapler sends (`cert_id_hash`, RFC 6960 §4.1.1 hashAlgorithm):
 * `sha1`, what RFC 5019 §2.1.1 profiles and nginx, Apache and OpenSSL clients send, or
 * `sha256`, for responders (and clients) that want SHA-2 CertIDs. The response's CertID is
 * matched under whatever hash it uses.
 */
export const CERT_ID_HASHES = ["sha1", "sha256"] as const;
export type CertIdHashName = (typeof CERT_ID_HASHES)[number];

const seconds = z.number().positive().max(MAX_SECONDS);

/**
 * The stapling policy, in seconds (fractions allowed), named as operators know it from
 * Redis Enterprise and similar stapling proxies:
 * - `query_frequency`: seconds between regular queries while the responder answers (3600);
 *   a staple is refreshed earlier, at half its thisUpdate→nextUpdate window, when that comes first;
 * - `response_timeout`: seconds a query may take before it counts as a failure (1);
 * - `recovery_frequency`: seconds between retries after a failed query (60);
 * - `recovery_max_tries`: consecutive failed queries (the first failure included) after which
 *   the `invalidate` policy drops the staple (5);
 * - `on_failure`: `invalidate` | `serve-until-expiry` | `staple-errors` (invalidate);
 * - `expiry_margin`: seconds before nextUpdate at which `serve-until-expiry` stops serving (60);
 * - `mode`: `eager` | `lazy` | `expire-then-fetch` | `in-handshake` (eager);
 * - `startup`: `wait-for-staple` | `ready-after-timeout` (wait-for-staple);
 * - `max_skew`: seconds a thisUpdate may lie in the future (300);
 * - `cert_id_hash`: `sha1` | `sha256`, the hash of the CertID in each query (sha1, RFC 5019 §2.1.1).
 */
export const pollingPolicySchema = z
  .object({
    query_frequency: seconds.default(3600),
    response_timeout: seconds.default(1),
    recovery_frequency: seconds.default(60),
    recovery_max_tries: z.number().int().positive().default(5),
    on_failure: z.enum(ON_FAILURE_POLICIES).default("invalidate"),
    expiry_margin: z.number().min(0).max(MAX_SECONDS).default(60),
    mode: z.enum(STAPLING_MODES).default("eager"),
    startup: z.enum(STARTUP_POLICIES).default("wait-for-staple"),
    max_skew: z.number().min(0).max(MAX_SECONDS).default(300),
    cert_id_hash: z.enum(CERT_ID_HASHES).default("sha1"),
  })
  .strict();

/** The policy as users write it (seconds; every field optional). */
export type PollingPolicyInput = z.input<typeof pollingPolicySchema>;

/** The policy inside the stapler, in milliseconds. */
export interface PollingPolicy {
  queryFrequencyMs: number;
  responseTimeoutMs: number;
  recoveryFrequencyMs: number;
  recoveryMaxTries: number;
  onFailure: OnFailurePolicy;
  expiryMarginMs: number;
  mode: StaplingMode;
  startup: StartupPolicy;
  maxSkewMs: number;
  /** The CertID hash of each query, as WebCrypto names it. */
  certIdHash: "SHA-1" | "SHA-256";
}

const FIELDS = Object.keys(pollingPolicySchema.shape).join(", ");

/**
 * Validate a user policy (seconds) and convert it to milliseconds.
 * @throws InvalidPolicyError naming the first bad field and what it should be.
 */
export function parsePolicy(input: PollingPolicyInput = {}): PollingPolicy {
  const result = pollingPolicySchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join(".") || "policy";
    const value = issue.path.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k as string], input);
    const fix =
      issue.code === "unrecognized_keys"
        ? `unknown field(s) ${issue.keys.join(", ")}: use ${FIELDS}`
        : field === "recovery_max_tries"
          ? "give a whole number ≥ 1"
          : field === "on_failure"
            ? `give one of ${ON_FAILURE_POLICIES.join(", ")}`
            : field === "mode"
              ? `give one of ${STAPLING_MODES.join(", ")}`
              : field === "startup"
                ? `give one of ${STARTUP_POLICIES.join(", ")}`
                : field === "cert_id_hash"
                  ? `give one of ${CERT_ID_HASHES.join(", ")}`
                  : `give a ${field === "expiry_margin" || field === "max_skew" ? "non-negative" : "positive"} number of seconds, at most ${MAX_SECONDS}`;
    throw new InvalidPolicyError(
      issue.code === "unrecognized_keys" ? "policy" : field,
      issue.code === "unrecognized_keys" ? issue.keys : value,
      fix,
    );
  }
  const p = result.data;
  return {
    queryFrequencyMs: p.query_frequency * 1000,
    responseTimeoutMs: p.response_timeout * 1000,
    recoveryFrequencyMs: p.recovery_frequency * 1000,
    recoveryMaxTries: p.recovery_max_tries,
    onFailure: p.on_failure,
    expiryMarginMs: p.expiry_margin * 1000,
    mode: p.mode,
    startup: p.startup,
    maxSkewMs: p.max_skew * 1000,
    certIdHash: p.cert_id_hash === "sha256" ? "SHA-256" : "SHA-1",
  };
}
