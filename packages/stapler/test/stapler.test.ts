/**
 * The stapler end to end with openssl s_client and curl: stapling, refresh, retries,
 * invalidation, response_timeout and verification before stapling. The CA, the responder and the
 * stapler share one ManualClock, so refresh and retry times are the ones the test advances to.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CertificateAuthority, IssuedCertificate } from "@ocsp-lab/ca";
import { CRLReason, type ManualClock } from "@ocsp-lab/ocsp";
import type { StartedOcspResponder } from "@ocsp-lab/responder";
import {
  CertificateSetupError,
  InvalidPolicyError,
  StaplingServer,
  parsePolicy,
  type FetchError,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import { POLICIES, run, sClient, startTestLab, type TestLab } from "../../../test-support/index.js";
import { advanceFor, labClock, nextEvent, timerDueAt } from "./manual-time.js";

const { QUICK_REFRESH } = POLICIES;

let lab: TestLab<ManualClock>;
let clock: ManualClock;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let stapler: StartedStaplingServer | undefined;

beforeEach(async () => {
  lab = await startTestLab({ clock: labClock() });
  ({ clock, ca, responder, leaf } = lab);
});
afterEach(async () => {
  await stapler?.stop();
  stapler = undefined;
  await lab.stop();
});

/** A stapler for the leaf on the lab's clock. */
async function startStapler(policy: object = QUICK_REFRESH): Promise<StartedStaplingServer> {
  stapler = await (await StaplingServer.fromFiles(leaf)).withPolicy(policy).withClock(clock).start();
  return stapler;
}

function curl(port: number) {
  return run("curl", [
    "-sS",
    "--cert-status",
    "--cacert",
    ca.rootFile,
    "--resolve",
    `localhost:${port}:127.0.0.1`,
    `https://localhost:${port}/`,
  ]);
}

/** Milliseconds from the clock's now to the stapler's next regular query. */
function untilNextFetch(s: StartedStaplingServer): number {
  return s.status()[0]!.nextFetch!.getTime() - clock.now().getTime();
}

describe("stapling to real clients", () => {
  it("openssl s_client sees a successful, good staple on TLS 1.2 and 1.3", async () => {
    const s = await startStapler();
    for (const version of ["-tls1_2", "-tls1_3"]) {
      const r = await sClient({ port: s.port, caFile: ca.rootFile, extra: [version] });
      expect(r.stdout).toContain("OCSP Response Status: successful (0x0)");
      expect(r.stdout).toContain("Cert Status: good");
      expect(r.stdout).toContain("Verify return code: 0 (ok)");
    }
  });

  it("curl --cert-status succeeds while good and fails once revoked and re-polled", async () => {
    const s = await startStapler();
    const ok = await curl(s.port);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("staple good");

    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    // The regular query (query_frequency 0.3 s, at the 1 s floor of the refresh delay) sees it.
    expect(untilNextFetch(s)).toBe(1000);
    expect((await advanceFor<StapleSnapshot>(clock, 1000, s.manager, "staple:updated")).staple).toBe("revoked");
    const refused = await curl(s.port);
    expect(refused.code).toBe(91);
    expect(refused.stderr).toContain("SSL certificate revocation reason: keyCompromise");
  });
});

describe("polling policy", () => {
  it("retries every recovery_frequency, invalidates after recovery_max_tries, restores on the next success", async () => {
    const s = await startStapler();
    expect(s.status()[0]!.staple).toBe("good");
    const failures: StapleSnapshot[] = [];
    s.manager.on("fetch:failed", (e: { snapshot: StapleSnapshot }) => failures.push(e.snapshot));
    const invalidated = nextEvent<StapleSnapshot>(s.manager, "staple:invalidated");
    responder.setFault({ kind: "close" });

    // The regular query fails; then a retry every recovery_frequency (0.15 s).
    await advanceFor(clock, untilNextFetch(s), s.manager, "fetch:failed");
    await advanceFor(clock, 150, s.manager, "fetch:failed");
    await clock.advance(150);
    const snap = await invalidated;
    expect(snap.staple).toBe("none");
    expect(snap.consecutiveFailures).toBe(3);
    expect(failures).toHaveLength(3);
    // Until the third failure the cached staple was still served.
    expect(failures[0]!.staple).toBe("good");
    expect(failures[1]!.staple).toBe("good");
    for (let i = 1; i < failures.length; i++) {
      expect(failures[i]!.lastFetch!.at.getTime() - failures[i - 1]!.lastFetch!.at.getTime()).toBe(150);
    }
    const none = await sClient({ port: s.port, caFile: ca.rootFile });
    expect(none.stdout).toContain("OCSP response: no response sent");
    expect((await curl(s.port)).stderr).toContain("No OCSP response received");

    responder.setFault(undefined);
    expect((await advanceFor<StapleSnapshot>(clock, 150, s.manager, "staple:updated")).staple).toBe("good");
    expect(s.status()[0]!.consecutiveFailures).toBe(0);
    expect((await curl(s.port)).code).toBe(0);
  });

  it("counts a responder slower than response_timeout as a failure", async () => {
    const s = await startStapler();
    // The responder answers 2 s (of the shared clock) after each request; response_timeout is 1 s.
    responder.setDelay(2000);
    const failed = nextEvent<{ error: FetchError }>(s.manager, "fetch:failed");
    const queryAt = clock.now().getTime() + untilNextFetch(s);
    await clock.advance(untilNextFetch(s));
    // The query is sent once its response_timeout timer is set.
    await timerDueAt(clock, queryAt + 1000, "the query's response_timeout timer");
    await clock.advance(999);
    expect(s.status()[0]!.lastFetch!.ok).toBe(true);
    await clock.advance(1);
    const { error } = await failed;
    expect(error.kind).toBe("timeout");
    expect(error.message).toMatch(/within 1000 ms/);
    expect(s.status()[0]!.lastFetch!.at.getTime()).toBe(queryAt);
  });

  it("with startup ready-after-timeout, starts and serves handshakes while the responder hangs, with no staple", async () => {
    responder.setFault({ kind: "hang" });
    let ready = false;
    const starting = startStapler({ ...QUICK_REFRESH, startup: "ready-after-timeout" }).finally(() => (ready = true));
    // The first query hangs on the responder: start() waits for it, up to response_timeout.
    await responder.waitForRequests({ count: 1 });
    await timerDueAt(clock, clock.now().getTime() + 1000, "the query's response_timeout timer");
    await clock.advance(999);
    expect(ready).toBe(false);
    await clock.advance(1);
    const s = await starting;
    const snap = s.status()[0]!;
    expect(snap.staple).toBe("none");
    expect(snap.lastFetch?.ok).toBe(false);
    expect(snap.lastFetch?.error).toMatch(/no answer/);
    const r = await sClient({ port: s.port, caFile: ca.rootFile });
    expect(r.stdout).toContain("OCSP response: no response sent");
    expect(r.stdout).toContain("Verify return code: 0 (ok)");
  });

  it("reports a snapshot per certificate", async () => {
    const s = await startStapler({ query_frequency: 3600 });
    const [snap] = s.status();
    expect(snap).toMatchObject({
      serial: leaf.serial,
      subject: "CN=localhost",
      responderUrl: responder.url,
      staple: "good",
      consecutiveFailures: 0,
    });
    expect(snap!.nextUpdate!.getTime()).toBeGreaterThan(snap!.thisUpdate!.getTime());
    // Refresh at half the 3600 s validity window (query_frequency is also 3600 s).
    expect(snap!.thisUpdate!.getTime()).toBe(snap!.lastFetch!.at.getTime());
    expect(snap!.nextFetch!.getTime() - snap!.lastFetch!.at.getTime()).toBe(1800_000);
  });
});

describe("verification before stapling", () => {
  it.each([
    ["signer-other-ca", /unauthorized signer/],
    ["signer-no-eku", /lacks id-kp-OCSPSigning/],
    ["bad-signature", /bad signature/],
    ["stale", /stale/],
    ["wrong-serial", /wrong certificate/],
    ["critical-extension", /unsupported critical extension/],
  ] as const)("never staples a response with %s", async (flaw, reason) => {
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "content", flaw }] }] });
    const s = await startStapler({ ...QUICK_REFRESH, startup: "ready-after-timeout" });
    const snap = s.status()[0]!;
    expect(snap.staple).toBe("none");
    expect(snap.lastFetch?.error).toMatch(reason);
    expect((await sClient({ port: s.port, caFile: ca.rootFile })).stdout).toContain("OCSP response: no response sent");
  });

  it("never staples a tryLater answer", async () => {
    responder.setFault({ kind: "tryLater" });
    const s = await startStapler({ ...QUICK_REFRESH, startup: "ready-after-timeout" });
    expect(s.status()[0]!.staple).toBe("none");
    expect(s.status()[0]!.lastFetch?.error).toMatch(/not successful.*tryLater/);
  });
});

describe("configuration", () => {
  it("fills the operators' defaults in seconds and converts to milliseconds", () => {
    expect(parsePolicy({})).toEqual({
      queryFrequencyMs: 3_600_000,
      responseTimeoutMs: 1000,
      recoveryFrequencyMs: 60_000,
      recoveryMaxTries: 5,
      onFailure: "invalidate",
      expiryMarginMs: 60_000,
      mode: "eager",
      startup: "wait-for-staple",
      maxSkewMs: 300_000,
      certIdHash: "SHA-1",
    });
    expect(parsePolicy({ response_timeout: 0.5 }).responseTimeoutMs).toBe(500);
  });

  it.each([
    [{ query_frequency: -1 }, /query_frequency -1.*positive number of seconds/],
    [{ recovery_max_tries: 1.5 }, /recovery_max_tries 1.5.*whole number/],
    [{ response_timeout: "1" }, /response_timeout "1"/],
    [{ query_frequncy: 5 }, /query_frequncy.*unknown field/],
    [{ on_failure: "retry" }, /on_failure "retry".*invalidate, serve-until-expiry, staple-errors/],
    [{ cert_id_hash: "md5" }, /cert_id_hash "md5".*sha1, sha256/],
    [{ mode: "nginx" }, /mode "nginx".*eager, lazy, expire-then-fetch, in-handshake/],
  ])("rejects %j naming the field", (input, message) => {
    expect(() => parsePolicy(input as never)).toThrow(InvalidPolicyError);
    expect(() => parsePolicy(input as never)).toThrow(message);
  });

  it("refuses a certificate without an OCSP URL unless one is given", async () => {
    const bare = await ca.issueServer();
    await expect((await StaplingServer.fromFiles(bare)).start()).rejects.toBeInstanceOf(CertificateSetupError);
    stapler = await (await StaplingServer.fromFiles(bare))
      .withResponderUrl(responder.url)
      .withPolicy(QUICK_REFRESH)
      .withClock(clock)
      .start();
    expect(stapler.status()[0]!.staple).toBe("good");
  });
});
