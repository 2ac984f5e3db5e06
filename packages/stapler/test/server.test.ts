import { afterEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { CertificateAuthority, IssueServerOptions, IssuedCertificate } from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import type { StartedOcspResponder } from "@ocsp-lab/responder";
import {
  CertificateSetupError,
  ReloadError,
  StaplingServer,
  staplerMain,
  type StaplerCliIo,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import { POLICIES, eventually, inProcess, sClient, startTestLab, type TestLab } from "../../../test-support/index.js";

const { QUICK_RETRIES } = POLICIES;

let lab: TestLab;
let dir: string;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
const cleanups: (() => Promise<void>)[] = [];

/** The lab (system clock) with `leaf` as the first certificate it issues; resolves with that certificate. */
async function setup(leaf: IssueServerOptions): Promise<IssuedCertificate> {
  lab = await startTestLab({ leaf });
  cleanups.push(() => lab.stop());
  ({ dir, ca, responder } = lab);
  return lab.leaf;
}
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Options for a server certificate for `name` alone (the issuer's key type unless `keyType` says). */
function named(name: string, keyType?: "rsa-2048" | "ecdsa-p256"): IssueServerOptions {
  return { dnsNames: [name], ...(keyType ? { keyType } : {}) };
}

function issue(name: string, keyType?: "rsa-2048" | "ecdsa-p256"): Promise<IssuedCertificate> {
  return lab.issue(named(name, keyType));
}

function track(s: StartedStaplingServer): StartedStaplingServer {
  cleanups.push(() => s.stop());
  return s;
}

describe("several certificates on one listener", () => {
  it("chooses RSA and ECDSA certificates by SNI, each with its own staple state, on TLS 1.2 and 1.3", async () => {
    const rsa = await setup(named("rsa.test", "rsa-2048"));
    const ec = await issue("ec.test", "ecdsa-p256");
    const s = track(
      await new StaplingServer()
        .withCertificateFiles(rsa)
        .withCertificateFiles(ec)
        .withPolicy(QUICK_RETRIES)
        .withAdmin(false)
        .start(),
    );
    expect(s.status().map((x) => [x.serial, x.staple])).toEqual([
      [rsa.serial, "good"],
      [ec.serial, "good"],
    ]);
    for (const tls of ["-tls1_2", "-tls1_3"]) {
      const r = await sClient({ port: s.port, caFile: ca.rootFile, servername: "rsa.test", extra: [tls] });
      expect(r.stdout).toMatch(/a:PKEY: rsaEncryption, 2048/);
      // The staple is about this certificate: OpenSSL prints the CertID's serial in uppercase hex.
      expect(r.stdout).toContain(`Serial Number: ${rsa.serial.toUpperCase()}\n`);
      expect(r.stdout).toContain("Cert Status: good");
      const e = await sClient({ port: s.port, caFile: ca.rootFile, servername: "ec.test", extra: [tls] });
      expect(e.stdout).toMatch(/a:PKEY: id-ecPublicKey, 256/);
      expect(e.stdout).toContain(`Serial Number: ${ec.serial.toUpperCase()}\n`);
      expect(e.stdout).toContain("Cert Status: good");
    }
    // Revoke one: only its staple changes.
    await ca.revoke(rsa.serial, { reason: CRLReason.keyCompromise });
    await s.queryNow();
    expect(s.status().map((x) => x.staple)).toEqual(["revoked", "good"]);
    expect((await sClient({ port: s.port, caFile: ca.rootFile, servername: "rsa.test" })).stdout).toContain(
      "Cert Status: revoked",
    );
    expect((await sClient({ port: s.port, caFile: ca.rootFile, servername: "ec.test" })).stdout).toContain("Cert Status: good");
    // An unknown name gets the first certificate.
    expect((await sClient({ port: s.port, caFile: ca.rootFile, servername: "other.test" })).stdout).toMatch(
      /a:PKEY: rsaEncryption/,
    );
  });

  it("refuses a chain that did not issue the certificate, and a port in use, with one clear message each", async () => {
    const leaf = await setup(named("localhost"));
    const wrongChain = new StaplingServer()
      .withCertificateFiles({ ...leaf, chainFile: leaf.certFile })
      .withPolicy(QUICK_RETRIES)
      .withAdmin(false);
    await expect(wrongChain.check()).rejects.toThrow(
      /issuer "CN=localhost": did not issue "CN=localhost".*give the issuing CA's certificate as chain/,
    );
    const first = track(await (await StaplingServer.fromFiles(leaf)).withPolicy(QUICK_RETRIES).withAdmin(false).start());
    const second = (await StaplingServer.fromFiles(leaf)).withPolicy(QUICK_RETRIES).withAdmin(false).withPort(first.port).start();
    await expect(second).rejects.toThrow(
      `port ${first.port} on 127.0.0.1 is in use by another process (EADDRINUSE): stop that process (ss -ltnp shows it) or choose another port with listen.port (--port), 0 for any free one`,
    );
  });

  it("refuses two certificates for one name", async () => {
    const a = await setup(named("same.test", "rsa-2048"));
    const b = await issue("same.test");
    const start = new StaplingServer()
      .withCertificateFiles(a)
      .withCertificateFiles(b)
      .withPolicy(QUICK_RETRIES)
      .withAdmin(false)
      .start();
    await expect(start).rejects.toBeInstanceOf(CertificateSetupError);
    await expect(start).rejects.toThrow(/two certificates for the name "same.test"/);
  });
});

describe("reload", () => {
  it("serves a replaced certificate with a fresh staple, fetched before it is served", async () => {
    const first = await setup(named("localhost"));
    const files = { certFile: join(dir, "live.pem"), keyFile: join(dir, "live.key"), chainFile: join(dir, "live-chain.pem") };
    const place = async (c: IssuedCertificate): Promise<void> => {
      await fs.copyFile(c.keyFile, files.keyFile);
      await fs.copyFile(c.chainFile, files.chainFile);
      await fs.copyFile(c.certFile, files.certFile);
    };
    await place(first);
    const s = track(
      await new StaplingServer().withCertificateFiles(files).withPolicy(QUICK_RETRIES).withAdmin(false).withWatch(100).start(),
    );
    expect(s.status()[0]!.serial).toBe(first.serial);

    const second = await issue("localhost");
    const reloaded = new Promise<StapleSnapshot[]>((resolve) => {
      const on = (snaps: StapleSnapshot[]): void => {
        if (snaps[0]!.serial === second.serial) {
          s.off("reload", on);
          resolve(snaps);
        }
      };
      s.on("reload", on);
    });
    await place(second);
    const snaps = await reloaded;
    expect(snaps[0]).toMatchObject({ serial: second.serial, staple: "good" });
    const out = (await sClient({ port: s.port, caFile: ca.rootFile, servername: "localhost" })).stdout;
    expect(out).toContain("Cert Status: good");
    expect(responder.requests({ serial: second.serial }).length).toBeGreaterThanOrEqual(1);
  });

  it("keeps the previous certificate when the new key does not match, and says why", async () => {
    const first = await setup(named("localhost"));
    const other = await issue("localhost");
    const files = { certFile: join(dir, "live.pem"), keyFile: join(dir, "live.key"), chainFile: first.chainFile };
    await fs.copyFile(first.certFile, files.certFile);
    await fs.copyFile(first.keyFile, files.keyFile);
    const s = track(
      await new StaplingServer().withCertificateFiles(files).withPolicy(QUICK_RETRIES).withAdmin(false).withWatch(0).start(),
    );
    await fs.copyFile(other.keyFile, files.keyFile);
    const failed = once(s, "reload:failed");
    await expect(s.reload()).rejects.toBeInstanceOf(ReloadError);
    expect(String((await failed)[0])).toMatch(/reload kept the previous certificates/);
    expect(s.status()[0]!.serial).toBe(first.serial);
    expect((await sClient({ port: s.port, caFile: ca.rootFile, servername: "localhost" })).stdout).toContain("Cert Status: good");
  });
});

describe("admin endpoint and metrics", () => {
  it("reports per-certificate status, queries now, exposes Prometheus metrics, and honours a bearer token", async () => {
    const leaf = await setup(named("localhost"));
    const s = track(
      await (await StaplingServer.fromFiles(leaf)).withPolicy(QUICK_RETRIES).withAdmin({ token: "s3cret-token" }).start(),
    );
    const auth = { authorization: "Bearer s3cret-token" };
    expect(s.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${s.adminUrl}/admin/ocsp`)).status).toBe(401);

    const status = (await (await fetch(`${s.adminUrl}/admin/ocsp`, { headers: auth })).json()) as {
      certificates: Record<string, unknown>[];
    };
    expect(status.certificates[0]).toMatchObject({
      serial: leaf.serial,
      staple: "good",
      consecutiveFailures: 0,
      mode: "eager",
      onFailure: "invalidate",
    });
    expect(status.certificates[0]).toHaveProperty("nextUpdate");
    expect(status.certificates[0]).toHaveProperty("nextFetch");

    await ca.revoke(leaf.serial);
    const queried = (await (await fetch(`${s.adminUrl}/admin/ocsp/query`, { method: "POST", headers: auth })).json()) as {
      results: unknown[];
      certificates: { staple: string }[];
    };
    expect(queried.results).toEqual([{ serial: leaf.serial, stapled: true }]);
    expect(queried.certificates[0]!.staple).toBe("revoked");
    expect((await fetch(`${s.adminUrl}/admin/ocsp/query?serial=abcdef`, { method: "POST", headers: auth })).status).toBe(404);

    await sClient({ port: s.port, caFile: ca.rootFile, servername: "localhost" });
    const metrics = await (await fetch(`${s.adminUrl}/metrics`, { headers: auth })).text();
    expect(metrics).toContain(`ocsp_staple_state{serial="${leaf.serial}",state="revoked"} 1`);
    expect(metrics).toContain(`ocsp_staple_state{serial="${leaf.serial}",state="good"} 0`);
    expect(metrics).toMatch(new RegExp(`ocsp_fetches_total\\{serial="${leaf.serial}",outcome="ok"\\} 2`));
    expect(metrics).toMatch(/ocsp_staple_requests_total\{stapled="true"\} 1/);
    expect(metrics).toMatch(/ocsp_staple_next_update_timestamp_seconds\{serial="[0-9a-f]+"\} \d+/);
  });

  it("POST /admin/ocsp/query?serial= finds a certificate whose serial begins with 0, however the serial is written", async () => {
    const leaf = await setup(withLeadingZero("localhost"));
    expect(leaf.serial).toMatch(/^0[1-9a-f]/);
    const s = track(await (await StaplingServer.fromFiles(leaf)).withPolicy(QUICK_RETRIES).start());
    for (const given of [leaf.serial, leaf.serial.toUpperCase(), `0x${leaf.serial}`]) {
      const res = await fetch(`${s.adminUrl}/admin/ocsp/query?serial=${given}`, { method: "POST" });
      expect(res.status, `serial=${given}`).toBe(200);
      expect(((await res.json()) as { results: unknown[] }).results).toEqual([{ serial: leaf.serial, stapled: true }]);
    }
    // A serial that is not hexadecimal is the caller's mistake, said in JSON.
    const bad = await fetch(`${s.adminUrl}/admin/ocsp/query?serial=xyz`, { method: "POST" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: expect.stringMatching(/invalid serial "xyz": give it in hexadecimal/) });
  });
});

/**
 * A certificate whose canonical serial begins with a 0 hex digit (about 1 in 8 of the serials the
 * CA picks at random); chosen here, so the test is deterministic.
 */
function withLeadingZero(name: string): IssueServerOptions {
  return { dnsNames: [name], serial: "094f0f8d2c3b4a5e6f708192a3b4c5d6" };
}

/** Injected io for staplerMain: captured output, a stop signal and a reload signal we fire ourselves. */
function cliIo(): { io: StaplerCliIo; out: () => string; err: () => string; stop: () => void; reload: () => void } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  let stop: (s: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  let reloader: () => void = () => {};
  return {
    io: {
      stdout,
      stderr,
      env: { ...process.env, OCSP_LAB_HOME: join(dir, "home") },
      stopSignal: () => stopped,
      onReloadSignal: (r) => {
        reloader = r;
        return () => {
          reloader = () => {};
        };
      },
    },
    out: () => out,
    err: () => err,
    stop: () => stop("SIGTERM"),
    reload: () => reloader(),
  };
}

describe("ocsp-stapler --config", () => {
  it("run bare, prints how to give a config and an outline of its keys, and exits 2; --version prints the version", async () => {
    const bare = await inProcess(staplerMain, [], {
      env: {},
      stopSignal: () => new Promise<string>(() => undefined),
      onReloadSignal: () => () => {},
    });
    expect(bare.code).toBe(2);
    expect(bare.out).toBe("");
    expect(bare.err).toMatch(/^ocsp-stapler: give a config file: ocsp-stapler --config stapler.yaml/);
    for (const key of [
      "listen:",
      "certificates:",
      "staple_source:",
      "backend:",
      "policy:",
      "tls:",
      "admin:",
      "state_dir:",
      "log_level:",
    ])
      expect(bare.err).toContain(key);
    const { version } = JSON.parse(await fs.readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    const v = await inProcess(staplerMain, ["--version"], {
      env: {},
      stopSignal: () => new Promise<string>(() => undefined),
      onReloadSignal: () => () => {},
    });
    expect(v).toEqual({ code: 0, out: `${version}\n`, err: "" });
  });

  it("--check validates; a bad field is named with its fix on one line, exit 1", async () => {
    const leaf = await setup(named("localhost"));
    const good = join(dir, "stapler.yaml");
    await fs.writeFile(
      good,
      `certificates:\n  - { cert: ${leaf.certFile}, key: ${leaf.keyFile}, chain: ${leaf.chainFile} }\npolicy: { query_frequency: 300, mode: lazy }\n`,
    );
    const ok = cliIo();
    expect(await staplerMain(["--config", good, "--check"], ok.io)).toBe(0);
    expect(ok.out()).toContain(
      `is valid (1 certificate(s): ${leaf.serial} for localhost via ${responder.url}; mode lazy, on_failure invalidate)`,
    );

    // --check reads the certificates too: a key that does not belong to the certificate is named.
    const other = await issue("localhost");
    const mismatched = join(dir, "mismatched.yaml");
    await fs.writeFile(
      mismatched,
      `certificates:\n  - { cert: ${leaf.certFile}, key: ${other.keyFile}, chain: ${leaf.chainFile} }\n`,
    );
    const m = cliIo();
    expect(await staplerMain(["--config", mismatched, "--check"], m.io)).toBe(1);
    expect(m.err()).toMatch(/^ocsp-stapler: cannot serve "CN=localhost": .*does the key belong to the certificate\?\)\n$/);

    const bad = join(dir, "bad.yaml");
    await fs.writeFile(bad, `certificates:\n  - { cert: a.pem, key: a.key }\npolicy: { on_failure: retry }\n`);
    const b = cliIo();
    expect(await staplerMain(["--config", bad, "--check"], b.io)).toBe(1);
    expect(b.err()).toMatch(/^ocsp-stapler: config .*bad\.yaml: policy\.on_failure: .*invalidate/);
    expect(b.err().trim().split("\n")).toHaveLength(1);

    const none = cliIo();
    expect(await staplerMain(["--config", join(dir, "missing.yaml")], none.io)).toBe(1);
    expect(none.err()).toMatch(/cannot read it \(ENOENT\); check the path/);
  });

  it("serves from a config file, persists staples in the state folder, reloads on the reload signal, stops on SIGTERM", async () => {
    const leaf = await setup(named("localhost"));
    const config = join(dir, "stapler.yaml");
    await fs.writeFile(
      config,
      `certificates:\n  - { cert: ${leaf.certFile}, key: ${leaf.keyFile}, chain: ${leaf.chainFile} }\npolicy: { query_frequency: 300 }\nwatch_interval: 0\nlog_level: silent\n`,
    );
    const c = cliIo();
    const exited = staplerMain(["--config", config], c.io);
    const line = await eventually(
      () => c.out(),
      (o) => o.includes("listening on"),
      10_000,
      "listening line",
    );
    expect(line).toMatch(
      new RegExp(
        `listening on https://127\\.0\\.0\\.1:\\d+ \\(staples: ${leaf.serial} good\\); status http://127\\.0\\.0\\.1:\\d+/admin/ocsp`,
      ),
    );
    const port = Number(/127\.0\.0\.1:(\d+) \(/.exec(line)![1]);
    expect((await sClient({ port, caFile: ca.rootFile, servername: "localhost" })).stdout).toContain("Cert Status: good");
    const staples = await eventually(
      () => fs.readdir(join(dir, "home", "staples")).catch(() => []),
      (f) => f.length === 1,
      5000,
      "persisted staple",
    );
    expect(staples[0]).toMatch(/^[0-9a-f]{64}\.der$/);
    c.reload();
    await eventually(
      () => c.out(),
      (o) => o.includes("reloaded 1 certificate(s)"),
      10_000,
      "reload line",
    );
    c.stop();
    expect(await exited).toBe(0);
    expect(c.out()).toContain("SIGTERM received, stopped");
  });
});
