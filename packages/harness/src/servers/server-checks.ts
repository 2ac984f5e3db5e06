import type { StartedServerUnderTest } from "./server.js";
import { type StapleObservation, probeStaple } from "./staple-probe.js";

/** How often a server scenario makes a handshake while it watches a server, in milliseconds. */
export const WATCH_EVERY_MS = 250;
/** How long a scenario waits for the first good staple it starts from, in milliseconds (nginx needs a handshake, then its query). */
export const FIRST_GOOD_WITHIN_MS = 10_000;
/** A handshake slower than this, in milliseconds, is `delayed` (local handshakes take a few ms; Apache waits its 2 s responder timeout). */
export const DELAYED_MS = 1000;

/**
 * What a server check is given: the responder of the certificate the server serves, and how to
 * start the server and renew its certificate.
 */
export interface ServerCheckContext {
  /**
   * Make the responder drop every connection (`down`) or never answer (`hang`) for the served
   * certificate, until clear().
   */
  setResponder(state: "down" | "hang"): Promise<void>;
  /** The responder answers what the CA says again. */
  clearResponder(): Promise<void>;
  /** Revoke the served certificate (keyCompromise): in the CA for a lab of the harness's own, as a status override for an `ocsp-lab up` the user runs. */
  revoke(): Promise<void>;
  /** Start the server under test (once). */
  start(): Promise<StartedServerUnderTest>;
  /** Issue a new certificate for the same names and overwrite the server's files with it (a renewal on disk); returns its serial. */
  renew(): Promise<string>;
  /** The scenario's watch window (its `within`), in milliseconds. */
  withinMs: number;
}

/** What a check saw: the words compared with the scenario's expectation, and the evidence. */
export interface ServerCheckResult {
  observed: string;
  detail: string;
}

/** A named piece of code that drives one server through a scenario and says what it did. */
export type ServerCheck = (ctx: ServerCheckContext) => Promise<ServerCheckResult>;

/**
 * A handshake's staple in one word: `good`, `revoked`, `unknown`, `tryLater`... or `none`;
 * `(expired)` when its nextUpdate has passed, `(other certificate)` when its CertID names
 * another serial than the certificate served.
 */
export function stapleWord(o: StapleObservation): string {
  if (o.stapleSerial === undefined) return o.staple;
  return `${o.staple}${o.expired ? " (expired)" : ""}${o.forServed ? "" : " (other certificate)"}`;
}

interface Seen {
  /** Seconds since the watch began. */
  t: number;
  o: StapleObservation;
}

/**
 * Handshake every WATCH_EVERY_MS for `ms` milliseconds, or until `until` holds for one
 * handshake; returns every observation with its time.
 */
async function watch(server: StartedServerUnderTest, ms: number, until?: (o: StapleObservation) => boolean): Promise<Seen[]> {
  const began = performance.now();
  const seen: Seen[] = [];
  for (;;) {
    const o = await probeStaple(server.target);
    seen.push({ t: (performance.now() - began) / 1000, o });
    if (until?.(o) || performance.now() - began >= ms) return seen;
    await new Promise((r) => setTimeout(r, WATCH_EVERY_MS));
  }
}

/** The distinct staple words in order (`good → tryLater`). */
function sequence(seen: Seen[]): string {
  const words: string[] = [];
  for (const s of seen) if (words.at(-1) !== stapleWord(s.o)) words.push(stapleWord(s.o));
  return words.join(" → ");
}

/** When each word first appeared, for the detail: `good at 0.0 s, tryLater at 5.6 s (21 handshakes, slowest 54 ms)`. */
function timeline(seen: Seen[]): string {
  const parts: string[] = [];
  let last: string | undefined;
  for (const s of seen) {
    const w = stapleWord(s.o);
    if (w !== last) parts.push(`${w} at ${s.t.toFixed(1)} s`);
    last = w;
  }
  const slowest = Math.max(...seen.map((s) => s.o.handshakeMs));
  return `${parts.join(", ")} (${seen.length} handshakes, slowest ${slowest} ms)`;
}

const isGood = (o: StapleObservation): boolean => o.staple === "good" && o.forServed && !o.expired;
const secs = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/** Start the server and wait for a good staple; the observations, or a result saying there was none. */
async function startGood(ctx: ServerCheckContext): Promise<{ server: StartedServerUnderTest } | ServerCheckResult> {
  const server = await ctx.start();
  const seen = await watch(server, FIRST_GOOD_WITHIN_MS, isGood);
  if (isGood(seen.at(-1)!.o)) return { server };
  return { observed: `no good staple to start from (${sequence(seen)})`, detail: timeline(seen) };
}

/**
 * The server checks by name. Each starts the server itself (some put the responder in a state
 * first) and watches it with handshakes every WATCH_EVERY_MS:
 * - `first-handshake`: what the first handshake after the start gets, then whether a good staple
 *   comes within the window: `good at the first handshake` or `first handshake: none, then good`;
 * - `revocation`: from a good staple, the certificate is revoked in the CA: `revoked within N s`
 *   or `still good after N s`;
 * - `responder-down`: from a good staple, the responder drops every connection for the window:
 *   the staples seen, `over N s: good` (kept), `good → none` (dropped), `good → tryLater` (an error stapled);
 * - `responder-hang`: the responder never answers from before the start: whether the first
 *   handshake is delayed (over DELAYED_MS) and what it staples;
 * - `responder-recovers`: the responder is down from before the start and back after 2 s:
 *   `good within N s of recovery` or `no good staple within N s of recovery (<staples seen>)`;
 * - `renewal`: from a good staple, a new certificate is written over the server's files and the
 *   server reloaded: `staple follows the new certificate within N s`, or what it stapled instead.
 */
export const SERVER_CHECKS: Record<string, ServerCheck> = {
  "first-handshake": async (ctx) => {
    const server = await ctx.start();
    const first = await probeStaple(server.target);
    if (isGood(first))
      return { observed: "good at the first handshake", detail: `first handshake ${first.handshakeMs} ms: good` };
    const seen = await watch(server, ctx.withinMs, isGood);
    const got = isGood(seen.at(-1)!.o);
    return {
      observed: `first handshake: ${stapleWord(first)}, ${got ? "then good" : `no good staple within ${secs(ctx.withinMs)}`}`,
      detail: `first handshake ${first.handshakeMs} ms: ${stapleWord(first)}; then ${timeline(seen)}`,
    };
  },

  revocation: async (ctx) => {
    const started = await startGood(ctx);
    if (!("server" in started)) return started;
    await ctx.revoke();
    const seen = await watch(started.server, ctx.withinMs, (o) => o.staple === "revoked");
    const last = seen.at(-1)!.o;
    return {
      observed:
        last.staple === "revoked"
          ? `revoked within ${secs(ctx.withinMs)}`
          : `still ${sequence(seen)} after ${secs(ctx.withinMs)}`,
      detail: `after the revocation: ${timeline(seen)}`,
    };
  },

  "responder-down": async (ctx) => {
    const started = await startGood(ctx);
    if (!("server" in started)) return started;
    await ctx.setResponder("down");
    const seen = await watch(started.server, ctx.withinMs);
    return { observed: `over ${secs(ctx.withinMs)}: ${sequence(seen)}`, detail: `responder down: ${timeline(seen)}` };
  },

  "responder-hang": async (ctx) => {
    await ctx.setResponder("hang");
    const server = await ctx.start();
    const first = await probeStaple(server.target);
    const delayed = first.handshakeMs > DELAYED_MS;
    return {
      observed: `first handshake ${delayed ? "delayed" : "not delayed"}, staple ${stapleWord(first)}`,
      detail: `first handshake ${first.handshakeMs} ms (delayed above ${DELAYED_MS} ms): ${stapleWord(first)}${first.error ? `: ${first.error}` : ""}`,
    };
  },

  "responder-recovers": async (ctx) => {
    await ctx.setResponder("down");
    const server = await ctx.start();
    const before = await watch(server, 2000);
    await ctx.clearResponder();
    const seen = await watch(server, ctx.withinMs, isGood);
    const got = isGood(seen.at(-1)!.o);
    return {
      observed: got
        ? `good within ${secs(ctx.withinMs)} of recovery`
        : `no good staple within ${secs(ctx.withinMs)} of recovery (${sequence(seen)})`,
      detail: `responder down: ${timeline(before)}; back: ${timeline(seen)}`,
    };
  },

  renewal: async (ctx) => {
    const started = await startGood(ctx);
    if (!("server" in started)) return started;
    const renewed = await ctx.renew();
    await started.server.reload();
    const seen = await watch(started.server, ctx.withinMs, isGood);
    const last = seen.at(-1)!.o;
    return {
      observed: isGood(last)
        ? `staple follows the new certificate within ${secs(ctx.withinMs)}`
        : `new certificate served, ${sequence(seen)} after ${secs(ctx.withinMs)}`,
      detail: `renewed to serial ${renewed}, reloaded: ${timeline(seen)}`,
    };
  },
};

/**
 * The checks that start the server themselves (the responder's state before the start matters,
 * or they reload it): not run against a server the harness did not start (`--server host:port`).
 */
export const CHECKS_THAT_START = ["first-handshake", "responder-hang", "responder-recovers", "renewal"] as const;

/** The names of SERVER_CHECKS, for the scenario file schema. */
export const SERVER_CHECK_NAMES = Object.keys(SERVER_CHECKS) as [string, ...string[]];
