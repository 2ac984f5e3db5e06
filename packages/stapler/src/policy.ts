import { z } from "zod";
import { InvalidPolicyError } from "./errors.js";

/**
 * Longest period accepted, in seconds: Node timers hold at most 2^31 − 1 ms (about 24.8 days)
 * and fire at once beyond that, which would turn a long period into a tight loop.
 */
export const MAX_SECONDS = 2_147_483;

/**
 * The polling policy, in seconds (fractions allowed), named as operators know it from
 * Redis Enterprise and similar stapling proxies:
 * - `query_frequency`: seconds between regular queries while the responder answers (3600);
 * - `response_timeout`: seconds a query may take before it counts as a failure (1);
 * - `recovery_frequency`: seconds between retries after a failed query (60);
 * - `recovery_max_tries`: consecutive failed queries (the first failure included) after which
 *   the cached staple is invalidated and nothing is stapled (5).
 */
export const pollingPolicySchema = z
  .object({
    query_frequency: z.number().positive().max(MAX_SECONDS).default(3600),
    response_timeout: z.number().positive().max(MAX_SECONDS).default(1),
    recovery_frequency: z.number().positive().max(MAX_SECONDS).default(60),
    recovery_max_tries: z.number().int().positive().default(5),
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
}

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
        ? `unknown field(s) ${issue.keys.join(", ")}: use query_frequency, response_timeout, recovery_frequency, recovery_max_tries`
        : field === "recovery_max_tries"
          ? "give a whole number ≥ 1"
          : `give a positive number of seconds, at most ${MAX_SECONDS}`;
    throw new InvalidPolicyError(issue.code === "unrecognized_keys" ? "policy" : field, issue.code === "unrecognized_keys" ? issue.keys : value, fix);
  }
  const p = result.data;
  return {
    queryFrequencyMs: p.query_frequency * 1000,
    responseTimeoutMs: p.response_timeout * 1000,
    recoveryFrequencyMs: p.recovery_frequency * 1000,
    recoveryMaxTries: p.recovery_max_tries,
  };
}
