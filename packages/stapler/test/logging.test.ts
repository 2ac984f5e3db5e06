/**
 * What the stapler logs while it runs: a pino logger writing to a stream the test reads, on a
 * ManualClock shared by the CA, the responder and the stapler.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { CertificateAuthority, IssuedCertificate } from "@ocsp-lab/ca";
import type { ManualClock } from "@ocsp-lab/ocsp";
import type { StartedOcspResponder } from "@ocsp-lab/responder";
import { StaplingServer, type PollingPolicyInput, type StapleSnapshot, type StartedStaplingServer } from "@ocsp-lab/stapler";
import { POLICIES, startTestLab } from "../../../test-support/index.js";
import { advanceFor, labClock, nextEvent } from "./manual-time.js";

/** pino's numeric levels. */
const DEBUG = 20;
const INFO = 30;
const WARN = 40;

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

let clock: ManualClock;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The lab on a ManualClock, its answers valid `validitySeconds`, its leaf for `localhost` alone. */
async function setup(validitySeconds = 3600): Promise<void> {
  const lab = await startTestLab({ clock: labClock(), validitySeconds, leaf: { dnsNames: ["localhost"] } });
  cleanups.push(() => lab.stop());
  ({ clock, ca, responder, leaf } = lab);
}

/** A stapler logging at debug into `lines` (pino writes each line to the stream as it logs). */
async function stapler(policy: PollingPolicyInput): Promise<{ s: StartedStaplingServer; lines: Line[] }> {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split("\n")) if (text) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  const s = await (await StaplingServer.fromFiles(leaf))
    .withAdmin(false)
    .withPolicy(policy)
    .withClock(clock)
    .withLogger(pino({ level: "debug" }, stream))
    .start();
  cleanups.push(() => s.stop());
  return { s, lines };
}

/** The lines about staples (what handshakes get), without the per-query lines. */
function stapleLines(lines: Line[]): Line[] {
  return lines.filter((l) => l.msg.startsWith("staple") || l.msg.includes("staple discarded"));
}

/** Milliseconds from the clock's now to the stapler's next regular query. */
function untilNextFetch(s: StartedStaplingServer): number {
  return s.status()[0]!.nextFetch!.getTime() - clock.now().getTime();
}

describe("stapler log", () => {
  it("logs the first staple and a changed status at info, a refresh that changed nothing at debug", async () => {
    await setup();
    const { s, lines } = await stapler(POLICIES.QUICK_REFRESH);
    expect(stapleLines(lines)).toEqual([
      expect.objectContaining({ level: INFO, msg: "staple status changed", serial: leaf.serial, from: "none", to: "good" }),
    ]);

    lines.length = 0;
    await advanceFor(clock, untilNextFetch(s), s, "staple:updated");
    expect(stapleLines(lines)).toEqual([
      expect.objectContaining({ level: DEBUG, msg: "staple refreshed", serial: leaf.serial, status: "good" }),
    ]);

    lines.length = 0;
    await ca.revoke(leaf.serial);
    expect((await advanceFor<StapleSnapshot>(clock, untilNextFetch(s), s, "staple:updated")).staple).toBe("revoked");
    expect(stapleLines(lines)).toEqual([
      expect.objectContaining({ level: INFO, msg: "staple status changed", from: "good", to: "revoked" }),
    ]);
  });

  it("logs a staple dropped after recovery_max_tries failures at warn, with the reason and the failures in a row", async () => {
    await setup();
    const { s, lines } = await stapler({ ...POLICIES.QUICK_RETRIES, on_failure: "invalidate" });
    responder.setFault({ kind: "http-500" });
    lines.length = 0;
    const invalidated = nextEvent(s, "staple:invalidated");
    await Promise.all([nextEvent(s, "fetch:failed"), s.queryNow()]);
    await advanceFor(clock, 150, s, "fetch:failed");
    expect(stapleLines(lines)).toEqual([]);
    await clock.advance(150);
    await invalidated;
    expect(stapleLines(lines)).toEqual([
      expect.objectContaining({
        level: WARN,
        msg: "staple dropped",
        serial: leaf.serial,
        staple: "good",
        failures: 3,
        reason: expect.stringMatching(/^3 failed queries in a row \(recovery_max_tries 3\), the last: .*answered HTTP 500$/),
      }),
    ]);
    expect(lines.filter((l) => l.msg === "OCSP fetch failed").map((l) => [l.level, l.failures])).toEqual([
      [WARN, 1],
      [WARN, 2],
      [WARN, 3],
    ]);
  });

  it("logs a staple that reaches its serving limit (nextUpdate minus expiry_margin) at warn, when it happens", async () => {
    // Answers valid 4 s; serve-until-expiry with a margin of 1 s stops serving at nextUpdate − 1 s.
    await setup(4);
    // Retries a minute apart: the one failure before the limit is the refresh at half the window.
    const { s, lines } = await stapler({
      ...POLICIES.QUICK_RETRIES,
      recovery_frequency: 60,
      on_failure: "serve-until-expiry",
      expiry_margin: 1,
    });
    const good = s.status()[0]!;
    const limit = good.nextUpdate!.getTime() - 1000;
    responder.setFault({ kind: "http-500" });
    await advanceFor(clock, untilNextFetch(s), s, "fetch:failed");
    lines.length = 0;
    await clock.set(limit - 1);
    expect(stapleLines(lines)).toEqual([]);
    await clock.advance(1);
    expect(s.status()[0]!.staple).toBe("none");
    expect(stapleLines(lines)).toEqual([
      expect.objectContaining({
        level: WARN,
        msg: "staple dropped",
        serial: leaf.serial,
        staple: "good",
        failures: 1,
        reason: `nextUpdate ${good.nextUpdate!.toISOString()} minus expiry_margin 1 s reached`,
      }),
    ]);
  });
});
