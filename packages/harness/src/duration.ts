import { z } from "zod";

/** Milliseconds per unit of a written duration. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * Parse a duration written as a number and a unit, `250ms`, `2s`, `1.5s`, `5m` or `1h`, into
 * whole milliseconds (units: ms, s, m, h; no spaces, no sign).
 * @returns the duration in milliseconds, or `undefined` when `text` is not such a duration or
 * names a fraction of a millisecond; `describeDurationError` says why in one line.
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== "string") return undefined;
  const m = PATTERN.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  // 1.5s is 1500 ms; 0.5ms is not a whole millisecond. Round away binary noise (0.1h).
  const rounded = Math.round(ms);
  return Math.abs(ms - rounded) < 1e-6 && Number.isSafeInteger(rounded) ? rounded : undefined;
}

/** The one-line reason `value` is not a duration: `"3 sec" is not a duration like 250ms, 2s or 1h`. */
export function describeDurationError(value: unknown): string {
  return `${JSON.stringify(value) ?? String(value)} is not a duration like 250ms, 2s or 1h`;
}

/** A zod schema of a duration written `250ms`, `2s`, `1h` (parseDuration), as milliseconds; the issue says describeDurationError. */
export const durationSchema = z.unknown().transform((v, ctx): number => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: describeDurationError(v) });
    return z.NEVER;
  }
  return ms;
});
