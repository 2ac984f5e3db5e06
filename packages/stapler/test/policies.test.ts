import { afterEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { connect, type ConnectionOptions } from "node:tls";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import { StapleManager, StapleStore, StaplingServer, parsePolicy, type PollingPolicyInput, type StapleSnapshot, type StartedStaplingServer } from "@ocsp-lab/stapler";
import { eventually, run, tempDir } from "../../../test-support/index.js";

/** Scaled policy: retries in a fraction of a second, so recovery cases take seconds, not minutes. */
const FAST: PollingPolicyInput = { query_frequency: 3600, response_timeout: 1, recovery_frequency: 0.15, recovery_max_tries: 3 };

interface Lab {
  dir: string;
  ca: CertificateAuthority;
  responder: StartedOcspResponder;
  leaf: IssuedCertificate;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A CA, a responder whose answers are valid `validitySeconds`, and a leaf pointing at it. */
async function lab(validitySeconds = 3600): Promise<Lab> {
  const { dir, cleanup } = await tempDir();
  cleanups.push(cleanup);
  const ca = await CertificateAuthority.init(join(dir, "ca"));
  const responder = await (await OcspResponder.forCa(ca)).withValidity(validitySeconds).start();
  cleanups.push(() => responder.stop());
  const leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: responder.url });
  return { dir, ca, responder, leaf };
}

async function stapler(l: Lab, policy: PollingPolicyInput, configure: (s: StaplingServer) => StaplingServer = (s) => s): Promise<StartedStaplingServer> {
  const s = await configure((await StaplingServer.fromFiles(l.leaf)).withAdmin(false).withPolicy(policy)).start();
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

function sClient(l: Lab, port: number) {
  return run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", "-status", "-CAfile", l.ca.rootFile], { timeoutMs: 15_000 });
}

function nextEvent<T>(s: StartedStaplingServer, event: "staple:updated" | "staple:invalidated" | "fetch:failed"): Promise<T> {
  return once(s, event, { signal: AbortSignal.timeout(15_000) }).then(([v]) => v as T);
}

describe("on_failure", () => {
  it("invalidate: staples nothing after recovery_max_tries failures", async () => {
    const l = await lab();
    const s = await stapler(l, { ...FAST, on_failure: "invalidate" });
    l.responder.setFault({ kind: "http-500" });
    const invalidated = nextEvent<StapleSnapshot>(s, "staple:invalidated");
    void s.queryNow();
    expect((await invalidated).consecutiveFailures).toBe(3);
    expect(await handshake(l, s.port)).toBeUndefined();
  });

  it("serve-until-expiry: keeps the last good staple through failures until nextUpdate minus expiry_margin", async () => {
    // Answers valid 4 s; the margin of 1 s ends serving at nextUpdate − 1 s.
    const l = await lab(4);
    const s = await stapler(l, { ...FAST, on_failure: "serve-until-expiry", expiry_margin: 1 });
    const good = s.status()[0]!;
    expect(good.staple).toBe("good");
    l.responder.setFault({ kind: "http-500" });
    // Well past recovery_max_tries failures, the staple is still served.
    await eventually(() => s.status()[0]!.consecutiveFailures, (n) => n >= 4, 10_000, "4 failures");
    const during = s.status()[0]!;
    if (Date.now() < good.nextUpdate!.getTime() - 1000) {
      expect(during.staple).toBe("good");
      expect(await handshake(l, s.port)).toBeDefined();
    }
    // Then nothing, from nextUpdate − margin on.
    const none = await eventually(() => s.status()[0]!, (snap) => snap.staple === "none", 10_000, "staple withdrawn");
    expect(Date.now()).toBeGreaterThanOrEqual(good.nextUpdate!.getTime() - 1000);
    expect(none.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(await handshake(l, s.port)).toBeUndefined();
  });

  it("staple-errors: staples a tryLater as received, and a made-up tryLater when the responder is unreachable", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "tryLater" });
    const s = await stapler(l, { ...FAST, on_failure: "staple-errors", startup: "ready-after-timeout" });
    expect(s.status()[0]).toMatchObject({ staple: "tryLater", source: "fetched" });
    expect((await sClient(l, s.port)).stdout).toMatch(/OCSP Response Status: trylater \(0x3\)/);

    l.responder.setFault({ kind: "close" });
    await s.queryNow();
    expect(s.status()[0]).toMatchObject({ staple: "tryLater", source: "made-up" });
    expect((await sClient(l, s.port)).stdout).toMatch(/OCSP Response Status: trylater \(0x3\)/);

    l.responder.setFault(undefined);
    await s.queryNow();
    expect(s.status()[0]).toMatchObject({ staple: "good", source: "fetched" });
  });

  it("staple-errors never staples a response that fails verification", async () => {
    const l = await lab();
    l.responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "content", flaw: "bad-signature" }] }] });
    const s = await stapler(l, { ...FAST, on_failure: "staple-errors", startup: "ready-after-timeout" });
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/bad signature/);
    expect(await handshake(l, s.port)).toBeUndefined();
  });
});

describe("emulation modes", () => {
  it("lazy (nginx): nothing fetched at start; the first handshake gets no staple and triggers the fetch", async () => {
    const l = await lab();
    const s = await stapler(l, { ...FAST, mode: "lazy" });
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
    const s = await stapler(l, { ...FAST, mode: "expire-then-fetch" });
    const first = s.status()[0]!;
    expect(first.staple).toBe("good");
    await eventually(() => s.status()[0]!.staple, (st) => st === "none", 10_000, "staple expired");
    // No refresh ahead of expiry: still the one request made at start.
    expect(l.responder.requests()).toHaveLength(1);
    const updated = nextEvent<StapleSnapshot>(s, "staple:updated");
    expect(await handshake(l, s.port)).toBeUndefined();
    expect((await updated).staple).toBe("good");
    expect(await handshake(l, s.port)).toBeDefined();
  });

  it("in-handshake (Apache): the handshake waits for the fetch, and for a hung responder up to response_timeout", async () => {
    const l = await lab();
    const s = await stapler(l, { ...FAST, mode: "in-handshake", response_timeout: 0.5, on_failure: "invalidate" });
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
    const s = await stapler(l, { ...FAST, mode: "in-handshake", response_timeout: 0.5 });
    const t0 = performance.now();
    expect(await handshake(l, s.port)).toBeUndefined();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    expect(s.status()[0]!.lastFetch?.error).toMatch(/no answer/);
  });
});

describe("start-up", () => {
  it("wait-for-staple: start() resolves once the first staple is in, retrying at recovery_frequency", async () => {
    const l = await lab();
    l.responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "http", status: 503 }], count: 2 }, { actions: [{ kind: "normal" }] }] });
    const s = await stapler(l, { ...FAST, startup: "wait-for-staple" });
    expect(s.status()[0]).toMatchObject({ staple: "good", consecutiveFailures: 0 });
    expect(l.responder.requests().map((r) => r.httpStatus)).toEqual([503, 503, 200]);
  });

  it("wait-for-staple gives up after recovery_max_tries and is ready without a staple", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "http-500" });
    const s = await stapler(l, { ...FAST, startup: "wait-for-staple" });
    expect(s.status()[0]).toMatchObject({ staple: "none", consecutiveFailures: 3 });
  });
});

describe("stop", () => {
  it("ends a query under way at once, and it changes and announces nothing", async () => {
    const l = await lab();
    const s = await stapler(l, { ...FAST, response_timeout: 30 });
    l.responder.setFault({ kind: "hang" });
    const events: string[] = [];
    for (const e of ["staple:updated", "staple:invalidated", "fetch:failed"] as const) s.on(e, () => events.push(e));
    const pending = s.manager.queryNow();
    await l.responder.waitForRequests({ count: 2 });
    const t0 = performance.now();
    await s.stop();
    expect(await pending).toBe(false);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(events).toEqual([]);
    expect(s.manager.snapshot()).toMatchObject({ staple: "good", consecutiveFailures: 0 });
  });
});

describe("stop during start-up", () => {
  it("start() resolves when stop() comes during its first query", async () => {
    const l = await lab();
    l.responder.setFault({ kind: "hang" });
    const manager = new StapleManager({ certificate: l.leaf.certificate, issuer: l.ca.root.certificate, responderUrl: l.responder.url, policy: parsePolicy({ ...FAST, response_timeout: 30 }) });
    const started = manager.start();
    await l.responder.waitForRequests({ count: 1 });
    manager.stop();
    await started;
    expect(manager.listenerCount("fetch:failed")).toBe(0);
    expect(manager.snapshot()).toMatchObject({ staple: "none", consecutiveFailures: 0 });
  });
});

describe("persistence", () => {
  it("restores a persisted staple (re-verified) at start, so a restart with the responder down still staples", async () => {
    const l = await lab();
    const stateDir = join(l.dir, "state");
    const first = await stapler(l, FAST, (b) => b.withStateDir(stateDir));
    expect(first.status()[0]!.staple).toBe("good");
    const file = new StapleStore(stateDir).pathOf(l.leaf.certificate.rawData);
    await eventually(() => fs.stat(file).then(() => true, () => false), Boolean, 5000, "staple persisted");
    await first.stop();

    l.responder.setFault({ kind: "hang" });
    const t0 = performance.now();
    const second = await stapler(l, FAST, (b) => b.withStateDir(stateDir));
    // wait-for-staple is satisfied by the persisted staple: no wait on the hung responder.
    expect(performance.now() - t0).toBeLessThan(900);
    expect(second.status()[0]).toMatchObject({ staple: "good", source: "persisted" });
    expect(await handshake(l, second.port)).toEqual(Buffer.from(await fs.readFile(file)));
  });

  it("does not serve a persisted staple that no longer verifies", async () => {
    const l = await lab();
    const stateDir = join(l.dir, "state");
    const store = new StapleStore(stateDir);
    await store.save(l.leaf.certificate.rawData, new Uint8Array([0x30, 0x03, 0x0a, 0x01, 0x03]));
    l.responder.setFault({ kind: "http-500" });
    const s = await stapler(l, { ...FAST, startup: "ready-after-timeout" }, (b) => b.withStateDir(stateDir));
    expect(s.status()[0]!.staple).toBe("none");
  });
});

describe("stricter verification", () => {
  it("never staples an answer sent with a Content-Type other than application/ocsp-response", async () => {
    const l = await lab();
    l.responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "wrong-content-type" }] }] });
    const s = await stapler(l, { ...FAST, startup: "ready-after-timeout" });
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/Content-Type "text\/html; charset=utf-8", not application\/ocsp-response/);
  });

  it("never staples a response whose nextUpdate is after the certificate's notAfter", async () => {
    const l = await lab(3600);
    const shortLived = await l.ca.issueServer({ dnsNames: ["localhost"], ocspUrl: l.responder.url, notAfter: new Date(Date.now() + 600_000) });
    const s = await (await StaplingServer.fromFiles(shortLived)).withAdmin(false).withPolicy({ ...FAST, startup: "ready-after-timeout" }).start();
    cleanups.push(() => s.stop());
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/outlives certificate/);
  });
});
