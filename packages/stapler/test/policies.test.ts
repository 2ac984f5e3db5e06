/**
 * The stapling policies over time (on_failure, emulation modes, start-up, stop, persistence),
 * on a ManualClock shared by the CA, the responder (thisUpdate/nextUpdate) and the stapler
 * (refresh, retries, expiry, response_timeout): every moment is one the test chose.
 */
import { afterEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { connect, type ConnectionOptions } from "node:tls";
import { join } from "node:path";
import { OcspResponse, type ManualClock } from "@ocsp-lab/ocsp";
import {
  StapleManager,
  StapleStore,
  StaplingServer,
  parsePolicy,
  type PollingPolicyInput,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import { POLICIES, eventually, sClient, startTestLab, type TestLab } from "../../../test-support/index.js";
import { advanceFor, advanceWhenDue, labClock, nextEvent, timerDueAt } from "./manual-time.js";

const { QUICK_RETRIES } = POLICIES;

type Lab = TestLab<ManualClock>;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A CA and a responder whose answers are valid `validitySeconds`, on one ManualClock, and a leaf pointing at it. */
async function lab(validitySeconds = 3600): Promise<Lab> {
  const l = await startTestLab({ clock: labClock(), validitySeconds });
  cleanups.push(() => l.stop());
  return l;
}

/** A stapler for the lab's leaf on the lab's clock; stopped after the test. */
async function stapler(
  l: Lab,
  policy: PollingPolicyInput,
  configure: (s: StaplingServer) => StaplingServer = (s) => s,
): Promise<StartedStaplingServer> {
  const s = await configure(
    (await StaplingServer.fromFiles(l.leaf)).withAdmin(false).withPolicy(policy).withClock(l.clock),
  ).start();
  cleanups.push(() => s.stop());
  return s;
}

/** One full handshake asking for a staple; resolves with the staple's DER (undefined: none sent). */
async function handshake(l: Lab, port: number): Promise<Buffer | undefined> {
  const options = { host: "127.0.0.1", port, servername: "localhost", ca: await fs.readFile(l.ca.rootFile), requestOCSP: true };
  const socket = connect(options as ConnectionOptions);
  let staple: Buffer | undefined;
  socket.on("OCSPResponse", (r: Buffer | null) => (staple = r && r.length > 0 ? r : undefined));
  await once(socket, "secureConnect");
  socket.destroy();
  return staple;
}

describe("on_failure", () => {
  it("invalidate: staples nothing after recovery_max_tries failures", async () => {
    const l = await lab();
    const s = await stapler(l, { ...QUICK_RETRIES, on_failure: "invalidate" });
    l.responder.setFault({ kind: "http-500" });
    const invalidated = nextEvent<StapleSnapshot>(s, "staple:invalidated");
    await Promise.all([nextEvent(s, "fetch:failed"), s.queryNow()]);
    // The next tries come every recovery_frequency; the staple stays until the last one fails.
    expect((await advanceFor<{ snapshot: StapleSnapshot }>(l.clock, 150, s, "fetch:failed")).snapshot.staple).toBe("good");
    await l.clock.advance(150);
    expect((await invalidated).consecutiveFailures).toBe(3);
    expect(await handshake(l, s.port)).toBeUndefined();
  });

  it("serve-until-expiry: keeps the last good staple through failures until nextUpdate minus expiry_margin", async () => {
    // Answers valid 4 s; the margin of 1 s ends serving at nextUpdate − 1 s.
    const l = await lab(4);
    const s = await stapler(l, { ...QUICK_RETRIES, on_failure: "serve-until-expiry", expiry_margin: 1 });
    const good = s.status()[0]!;
    expect(good.staple).toBe("good");
    const limit = good.nextUpdate!.getTime() - 1000;
    l.responder.setFault({ kind: "http-500" });
    // The refresh at half the window fails, then three retries every recovery_frequency: well
    // past recovery_max_tries failures, the staple is still served.
    await advanceFor(l.clock, good.nextFetch!.getTime() - l.clock.now().getTime(), s, "fetch:failed");
    for (let i = 0; i < 3; i++) await advanceFor(l.clock, 150, s, "fetch:failed");
    const during = s.status()[0]!;
    expect(during.consecutiveFailures).toBe(4);
    expect(l.clock.now().getTime()).toBeLessThan(limit);
    expect(during.staple).toBe("good");
    expect(await handshake(l, s.port)).toBeDefined();
    // Served until the last millisecond before nextUpdate − margin, then nothing.
    await l.clock.set(limit - 1);
    expect(s.status()[0]!.staple).toBe("good");
    expect(await handshake(l, s.port)).toBeDefined();
    await l.clock.advance(1);
    const none = s.status()[0]!;
    expect(none.staple).toBe("none");
    expect(none.consecutiveFailures).toBeGreaterThanOrEqual(4);
    expect(await handshake(l, s.port)).toBeUndefined();
  });

  it("staple-errors: staples a tryLater as received, and a made-up tryLater when the responder is unreachable", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "tryLater" });
    const s = await stapler(l, { ...QUICK_RETRIES, on_failure: "staple-errors", startup: "ready-after-timeout" });
    expect(s.status()[0]).toMatchObject({ staple: "tryLater", source: "fetched" });
    expect((await sClient({ port: s.port, caFile: l.ca.rootFile })).stdout).toMatch(/OCSP Response Status: trylater \(0x3\)/);

    l.responder.setFault({ kind: "close" });
    await s.queryNow();
    expect(s.status()[0]).toMatchObject({ staple: "tryLater", source: "made-up" });
    expect((await sClient({ port: s.port, caFile: l.ca.rootFile })).stdout).toMatch(/OCSP Response Status: trylater \(0x3\)/);

    l.responder.setFault(undefined);
    await s.queryNow();
    expect(s.status()[0]).toMatchObject({ staple: "good", source: "fetched" });
  });

  it("staple-errors never staples a response that fails verification", async () => {
    const l = await lab();
    l.responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "content", flaw: "bad-signature" }] }] });
    const s = await stapler(l, { ...QUICK_RETRIES, on_failure: "staple-errors", startup: "ready-after-timeout" });
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/bad signature/);
    expect(await handshake(l, s.port)).toBeUndefined();
  });
});

describe("emulation modes", () => {
  it("lazy (nginx): nothing fetched at start; the first handshake gets no staple and triggers the fetch", async () => {
    const l = await lab();
    const s = await stapler(l, { ...QUICK_RETRIES, mode: "lazy" });
    expect(l.responder.requests()).toHaveLength(0);
    expect(s.status()[0]!.staple).toBe("none");
    const updated = nextEvent<StapleSnapshot>(s, "staple:updated");
    expect(await handshake(l, s.port)).toBeUndefined();
    expect((await updated).staple).toBe("good");
    expect(await handshake(l, s.port)).toBeDefined();
    expect(l.responder.requests()).toHaveLength(1);
  });

  it("expire-then-fetch (CDN): serves until nextUpdate without refreshing; the first handshake after gets none and fetches", async () => {
    const l = await lab(3);
    const s = await stapler(l, { ...QUICK_RETRIES, mode: "expire-then-fetch" });
    const first = s.status()[0]!;
    expect(first.staple).toBe("good");
    await l.clock.set(first.nextUpdate!.getTime() - 1);
    expect(s.status()[0]!.staple).toBe("good");
    await l.clock.advance(1);
    expect(s.status()[0]!.staple).toBe("none");
    // No refresh ahead of expiry: still the one request made at start.
    expect(l.responder.requests()).toHaveLength(1);
    const updated = nextEvent<StapleSnapshot>(s, "staple:updated");
    expect(await handshake(l, s.port)).toBeUndefined();
    expect((await updated).staple).toBe("good");
    expect(await handshake(l, s.port)).toBeDefined();
  });

  it("in-handshake (Apache): the handshake waits for the fetch, and for a hung responder up to response_timeout", async () => {
    const l = await lab();
    const s = await stapler(l, { ...QUICK_RETRIES, mode: "in-handshake", response_timeout: 0.5, on_failure: "invalidate" });
    expect(l.responder.requests()).toHaveLength(0);
    expect(await handshake(l, s.port)).toBeDefined();
    expect(l.responder.requests()).toHaveLength(1);

    // A fresh staple is served from memory.
    expect(await handshake(l, s.port)).toBeDefined();
    expect(l.responder.requests()).toHaveLength(1);
  });

  it("in-handshake with a hung responder: the handshake completes after response_timeout without a staple", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "hang" });
    const s = await stapler(l, { ...QUICK_RETRIES, mode: "in-handshake", response_timeout: 0.5 });
    let done = false;
    const staple = handshake(l, s.port).finally(() => (done = true));
    // The handshake's query reached the responder, which holds it; the handshake waits on it,
    // and the query's response_timeout is a timer on the stapler's clock.
    await l.responder.waitForRequests({ count: 1 });
    await timerDueAt(l.clock, l.clock.now().getTime() + 500, "the query's response_timeout timer");
    await l.clock.advance(499);
    expect(done).toBe(false);
    expect(s.status()[0]!.lastFetch).toBeUndefined();
    // At response_timeout the query fails and the handshake goes on without a staple.
    await l.clock.advance(1);
    expect(await staple).toBeUndefined();
    expect(s.status()[0]!.lastFetch?.error).toMatch(/no answer .* within 500 ms/);
  });
});

describe("start-up", () => {
  it("wait-for-staple: start() resolves once the first staple is in, retrying at recovery_frequency", async () => {
    const l = await lab();
    l.responder.setBehaviour(
      { kind: "global" },
      { steps: [{ actions: [{ kind: "http", status: 503 }], count: 2 }, { actions: [{ kind: "normal" }] }] },
    );
    const t0 = l.clock.now().getTime();
    const starting = stapler(l, { ...QUICK_RETRIES, startup: "wait-for-staple" });
    // Each failure schedules the next try recovery_frequency later.
    await advanceWhenDue(l.clock, 150, "the first retry");
    await advanceWhenDue(l.clock, 150, "the second retry");
    const s = await starting;
    expect(s.status()[0]).toMatchObject({ staple: "good", consecutiveFailures: 0 });
    expect(l.responder.requests().map((r) => [r.httpStatus, r.time.getTime() - t0])).toEqual([
      [503, 0],
      [503, 150],
      [200, 300],
    ]);
  });

  it("wait-for-staple gives up after recovery_max_tries and is ready without a staple", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "http-500" });
    const starting = stapler(l, { ...QUICK_RETRIES, startup: "wait-for-staple" });
    await advanceWhenDue(l.clock, 150, "the first retry");
    await advanceWhenDue(l.clock, 150, "the second retry");
    const s = await starting;
    expect(s.status()[0]).toMatchObject({ staple: "none", consecutiveFailures: 3 });
    expect(l.responder.requests()).toHaveLength(3);
  });
});

describe("query now", () => {
  it("with fresh, waits for a query sent before the call, then asks again: the answer is from after the change", async () => {
    const l = await lab();
    const s = await stapler(l, { ...QUICK_RETRIES, response_timeout: 30 });
    l.responder.setFault({ kind: "hang" });
    const shared = s.manager.queryNow();
    await l.responder.waitForRequests({ count: 2 });
    // The responder is set right while that query hangs; a plain query now shares the hung one,
    // a fresh one is answered from after the change.
    l.responder.setFault(undefined);
    await l.ca.revoke(l.leaf.serial, { reason: 1 });
    const plain = s.manager.queryNow();
    expect(plain).toBe(shared);
    const fresh = s.manager.queryNow({ fresh: true });
    const again = s.manager.queryNow({ fresh: true });
    expect(again).toBe(fresh);
    await advanceWhenDue(l.clock, 30_000, "the hung query's response_timeout");
    expect(await shared).toBe(false);
    expect(await fresh).toBe(true);
    expect(s.manager.snapshot()).toMatchObject({ staple: "revoked" });
    expect(l.responder.requests({ serial: l.leaf.serial }).at(-1)?.outcome).toBe("revoked");
  });
});

describe("stop", () => {
  it("ends a query under way at once, and it changes and announces nothing", async () => {
    const l = await lab();
    const s = await stapler(l, { ...QUICK_RETRIES, response_timeout: 30 });
    l.responder.setFault({ kind: "hang" });
    const events: string[] = [];
    for (const e of ["staple:updated", "staple:invalidated", "fetch:failed"] as const) s.on(e, () => events.push(e));
    const pending = s.manager.queryNow();
    await l.responder.waitForRequests({ count: 2 });
    await s.stop();
    // The clock never moved, so no response_timeout ended the query: stop() did.
    expect(await pending).toBe(false);
    expect(events).toEqual([]);
    expect(s.manager.snapshot()).toMatchObject({ staple: "good", consecutiveFailures: 0 });
    // Nothing left scheduled: no refresh, no timeout of the aborted query.
    expect(l.clock.pendingTimers).toBe(0);
  });
});

describe("stop during start-up", () => {
  it("start() resolves when stop() comes during its first query", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "hang" });
    const manager = new StapleManager({
      certificate: l.leaf.certificate,
      issuer: l.ca.root.certificate,
      responderUrl: l.responder.url,
      policy: parsePolicy({ ...QUICK_RETRIES, response_timeout: 30 }),
      clock: l.clock,
    });
    const started = manager.start();
    await l.responder.waitForRequests({ count: 1 });
    manager.stop();
    // On a clock that never moved, only stop() can have ended the query.
    await started;
    expect(manager.listenerCount("fetch:failed")).toBe(0);
    expect(manager.snapshot()).toMatchObject({ staple: "none", consecutiveFailures: 0 });
    expect(l.clock.pendingTimers).toBe(0);
  });
});

describe("persistence", () => {
  it("restores a persisted staple (re-verified) at start, so a restart with the responder down still staples", async () => {
    const l = await lab();
    const stateDir = join(l.dir, "state");
    const first = await stapler(l, QUICK_RETRIES, (b) => b.withStateDir(stateDir));
    expect(first.status()[0]!.staple).toBe("good");
    const file = new StapleStore(stateDir).pathOf(l.leaf.certificate.rawData);
    await eventually(
      () =>
        fs.stat(file).then(
          () => true,
          () => false,
        ),
      Boolean,
      5000,
      "staple persisted",
    );
    await first.stop();

    l.responder.setFault({ kind: "hang" });
    const asked = l.responder.requests().length;
    const second = await stapler(l, QUICK_RETRIES, (b) => b.withStateDir(stateDir));
    // wait-for-staple is satisfied by the persisted staple: start() asked nothing of the hung
    // responder (whose query, on a clock that does not move, would never have ended).
    expect(l.responder.requests()).toHaveLength(asked);
    expect(second.status()[0]).toMatchObject({ staple: "good", source: "persisted" });
    expect(await handshake(l, second.port)).toEqual(Buffer.from(await fs.readFile(file)));
  });

  it("does not serve a persisted staple that no longer verifies", async () => {
    const l = await lab();
    const stateDir = join(l.dir, "state");
    const store = new StapleStore(stateDir);
    await store.save(l.leaf.certificate.rawData, new Uint8Array([0x30, 0x03, 0x0a, 0x01, 0x03]));
    l.responder.setFault({ kind: "http-500" });
    const s = await stapler(l, { ...QUICK_RETRIES, startup: "ready-after-timeout" }, (b) => b.withStateDir(stateDir));
    expect(s.status()[0]!.staple).toBe("none");
  });
});

describe("stricter verification", () => {
  it("never staples an answer sent with a Content-Type other than application/ocsp-response", async () => {
    const l = await lab();
    l.responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "wrong-content-type" }] }] });
    const s = await stapler(l, { ...QUICK_RETRIES, startup: "ready-after-timeout" });
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/Content-Type "text\/html; charset=utf-8", not application\/ocsp-response/);
  });

  it("never staples a response whose nextUpdate is after the certificate's notAfter", async () => {
    const l = await lab(3600);
    const shortLived = await l.issue({ dnsNames: ["localhost"], notAfter: new Date(l.clock.now().getTime() + 600_000) });
    const s = await (await StaplingServer.fromFiles(shortLived))
      .withAdmin(false)
      .withClock(l.clock)
      .withPolicy({ ...QUICK_RETRIES, startup: "ready-after-timeout" })
      .start();
    cleanups.push(() => s.stop());
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/outlives certificate/);
  });
});

describe("cert_id_hash", () => {
  it.each([
    ["sha1", "SHA-1"],
    ["sha256", "SHA-256"],
  ] as const)(
    "%s: queries with a CertID of that hash, and staples the answer (its CertID has the same hash)",
    async (name, hash) => {
      const l = await lab();
      const s = await stapler(l, { ...QUICK_RETRIES, cert_id_hash: name });
      expect(l.responder.requests().map((r) => r.hashes)).toEqual([[hash]]);
      const staple = await handshake(l, s.port);
      expect(staple).toBeDefined();
      expect(OcspResponse.fromDer(staple!).responses.map((r) => [r.certId.hashOid, r.status])).toEqual([
        [name === "sha1" ? "1.3.14.3.2.26" : "2.16.840.1.101.3.4.2.1", "good"],
      ]);
    },
  );
});
