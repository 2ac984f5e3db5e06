import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import { OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import {
  CertificateSetupError,
  InvalidPolicyError,
  StaplingServer,
  parsePolicy,
  type FetchError,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import { run, tempDir } from "../../../test-support/index.js";

/** Policy scaled down so recovery cases take a second, not minutes. */
const FAST = { query_frequency: 0.3, response_timeout: 1, recovery_frequency: 0.15, recovery_max_tries: 3 };

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let stapler: StartedStaplingServer | undefined;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  responder = await (await OcspResponder.forCa(ca)).start();
  leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: responder.url });
});
afterEach(async () => {
  await stapler?.stop();
  stapler = undefined;
  await responder.stop();
  await cleanup();
});

async function startStapler(policy: object = FAST): Promise<StartedStaplingServer> {
  stapler = await (await StaplingServer.fromFiles(leaf)).withPolicy(policy).start();
  return stapler;
}

function sClient(port: number, extra: string[] = []) {
  return run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", "-status", "-CAfile", ca.rootFile, ...extra]);
}

function curl(port: number) {
  return run("curl", ["-sS", "--cert-status", "--cacert", ca.rootFile, "--resolve", `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
}

function nextEvent<T>(s: StartedStaplingServer, event: "staple:updated" | "staple:invalidated" | "fetch:failed"): Promise<T> {
  return once(s.manager, event, { signal: AbortSignal.timeout(15_000) }).then(([v]) => v as T);
}

/** The first staple:updated whose staple is `status` (a poll already under way may still bring the old one). */
async function updateWith(s: StartedStaplingServer, status: string): Promise<StapleSnapshot> {
  for (;;) {
    const snap = await nextEvent<StapleSnapshot>(s, "staple:updated");
    if (snap.staple === status) return snap;
  }
}

describe("stapling to real clients", () => {
  it("openssl s_client sees a successful, good staple on TLS 1.2 and 1.3", async () => {
    const s = await startStapler();
    for (const version of ["-tls1_2", "-tls1_3"]) {
      const r = await sClient(s.port, [version]);
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

    const revoked = updateWith(s, "revoked");
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    expect((await revoked).staple).toBe("revoked");
    const refused = await curl(s.port);
    expect(refused.code).toBe(91);
    expect(refused.stderr).toContain("SSL certificate revocation reason: keyCompromise");
  });
});

describe("polling policy", () => {
  it("retries every recovery_frequency, invalidates after recovery_max_tries, restores on the next success", async () => {
    const s = await startStapler();
    expect(s.status()[0]!.staple).toBe("good");
    const failures: Array<{ at: number; snapshot: StapleSnapshot }> = [];
    s.manager.on("fetch:failed", (e: { snapshot: StapleSnapshot }) => failures.push({ at: Date.now(), snapshot: e.snapshot }));
    const invalidated = nextEvent<StapleSnapshot>(s, "staple:invalidated");
    responder.setFault({ kind: "close" });

    const snap = await invalidated;
    expect(snap.staple).toBe("none");
    expect(snap.consecutiveFailures).toBe(3);
    expect(failures).toHaveLength(3);
    // Until the third failure the cached staple was still served.
    expect(failures[0]!.snapshot.staple).toBe("good");
    expect(failures[1]!.snapshot.staple).toBe("good");
    for (let i = 1; i < failures.length; i++) {
      const gap = failures[i]!.snapshot.lastFetch!.at.getTime() - failures[i - 1]!.at;
      expect(gap).toBeGreaterThanOrEqual(150 - 20);
    }
    const none = await sClient(s.port);
    expect(none.stdout).toContain("OCSP response: no response sent");
    expect((await curl(s.port)).stderr).toContain("No OCSP response received");

    const restored = updateWith(s, "good");
    responder.setFault(undefined);
    expect((await restored).staple).toBe("good");
    expect(s.status()[0]!.consecutiveFailures).toBe(0);
    expect((await curl(s.port)).code).toBe(0);
  });

  it("counts a responder slower than response_timeout as a failure", async () => {
    const s = await startStapler();
    responder.setDelay(2000);
    const failed = await nextEvent<{ error: FetchError }>(s, "fetch:failed");
    expect(failed.error.kind).toBe("timeout");
    expect(failed.error.message).toMatch(/within 1000 ms/);
  });

  it("with startup ready-after-timeout, starts and serves handshakes while the responder hangs, with no staple", async () => {
    responder.setFault({ kind: "hang" });
    const s = await startStapler({ ...FAST, startup: "ready-after-timeout" });
    const snap = s.status()[0]!;
    expect(snap.staple).toBe("none");
    expect(snap.lastFetch?.ok).toBe(false);
    expect(snap.lastFetch?.error).toMatch(/no answer/);
    const r = await sClient(s.port);
    expect(r.stdout).toContain("OCSP response: no response sent");
    expect(r.stdout).toContain("Verify return code: 0 (ok)");
  });

  it("reports a snapshot per certificate", async () => {
    const s = await startStapler({ query_frequency: 3600 });
    const [snap] = s.status();
    expect(snap).toMatchObject({ serial: leaf.serial, subject: "CN=localhost", responderUrl: responder.url, staple: "good", consecutiveFailures: 0 });
    expect(snap!.nextUpdate!.getTime()).toBeGreaterThan(snap!.thisUpdate!.getTime());
    // Refresh at half the 3600 s validity window, sooner than query_frequency would allow.
    const untilNext = snap!.nextFetch!.getTime() - snap!.lastFetch!.at.getTime();
    expect(untilNext).toBeGreaterThan(1700_000);
    expect(untilNext).toBeLessThanOrEqual(1800_000 + 1000);
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
    const s = await startStapler();
    const snap = s.status()[0]!;
    expect(snap.staple).toBe("none");
    expect(snap.lastFetch?.error).toMatch(reason);
    expect((await sClient(s.port)).stdout).toContain("OCSP response: no response sent");
  });

  it("never staples a tryLater answer", async () => {
    responder.setFault({ kind: "tryLater" });
    const s = await startStapler();
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
    });
    expect(parsePolicy({ response_timeout: 0.5 }).responseTimeoutMs).toBe(500);
  });

  it.each([
    [{ query_frequency: -1 }, /query_frequency -1.*positive number of seconds/],
    [{ recovery_max_tries: 1.5 }, /recovery_max_tries 1.5.*whole number/],
    [{ response_timeout: "1" }, /response_timeout "1"/],
    [{ query_frequncy: 5 }, /query_frequncy.*unknown field/],
    [{ on_failure: "retry" }, /on_failure "retry".*invalidate, serve-until-expiry, staple-errors/],
    [{ mode: "nginx" }, /mode "nginx".*eager, lazy, expire-then-fetch, in-handshake/],
  ])("rejects %j naming the field", (input, message) => {
    expect(() => parsePolicy(input as never)).toThrow(InvalidPolicyError);
    expect(() => parsePolicy(input as never)).toThrow(message);
  });

  it("refuses a certificate without an OCSP URL unless one is given", async () => {
    const bare = await ca.issueServer();
    await expect((await StaplingServer.fromFiles(bare)).start()).rejects.toBeInstanceOf(CertificateSetupError);
    stapler = await (await StaplingServer.fromFiles(bare)).withResponderUrl(responder.url).withPolicy(FAST).start();
    expect(stapler.status()[0]!.staple).toBe("good");
  });
});
