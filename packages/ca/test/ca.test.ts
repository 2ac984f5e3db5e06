import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { CertificateAuthority, StateExistsError, StateNotFoundError, UnknownSerialError } from "@ocsp-lab/ca";
import { CRLReason, InvalidReasonError, normalizeSerial, parseCrlReason } from "@ocsp-lab/ocsp";
import { resolveStateDir } from "@ocsp-lab/cli-support";
import { OCSP_LAB_BIN, eventually, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

describe("CertificateAuthority", () => {
  it("creates root, delegated OCSP signer and a server certificate that OpenSSL accepts", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: "http://127.0.0.1:9/" });

    const verify = await run("openssl", ["verify", "-CAfile", ca.rootFile, leaf.certFile]);
    expect(verify.stdout).toContain(": OK");
    const text = (await run("openssl", ["x509", "-in", leaf.certFile, "-noout", "-text"])).stdout;
    expect(text).toMatch(/DNS:localhost, IP Address:127\.0\.0\.1/);
    expect(text).toMatch(/OCSP - URI:http:\/\/127\.0\.0\.1:9\//);
    expect(text).toMatch(/TLS Web Server Authentication/);

    const signer = (await run("openssl", ["x509", "-in", ca.ocspSignerFile, "-noout", "-text"])).stdout;
    expect(signer).toContain("OCSP Signing");
    expect(signer).toContain("OCSP No Check");
    expect(
      (await run("openssl", ["verify", "-CAfile", ca.rootFile, "-purpose", "ocsphelper", ca.ocspSignerFile])).stdout,
    ).toContain(": OK");

    const fullchain = await fs.readFile(leaf.fullchainFile, "utf8");
    expect(fullchain.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    for (const key of [leaf.keyFile, join(dir, "ca.key"), join(dir, "ocsp-signer.key")]) {
      expect((await fs.stat(key)).mode & 0o777).toBe(0o600);
    }
  });

  it("issues with RSA-2048 keys too", async () => {
    const ca = await CertificateAuthority.init(dir, { keyType: "rsa-2048" });
    const leaf = await ca.issueServer({ dnsNames: ["rsa.test"] });
    expect((await run("openssl", ["verify", "-CAfile", ca.rootFile, leaf.certFile])).stdout).toContain(": OK");
    expect((await run("openssl", ["x509", "-in", leaf.certFile, "-noout", "-text"])).stdout).toContain("rsaEncryption");
  });

  it("gives serials of 16 bytes, positive and unique", async () => {
    const ca = await CertificateAuthority.init(dir);
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add((await ca.issueServer()).serial);
    expect(serials.size).toBe(5);
    for (const s of serials) {
      expect(s).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(s.startsWith("00")).toBe(false);
    }
  });

  it("persists revocations across processes' opens", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer();
    const time = new Date("2026-01-02T03:04:05Z");
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise, time });
    const again = await CertificateAuthority.open(dir);
    expect(again.status(leaf.serial)).toEqual({
      status: "revoked",
      revocationTime: time,
      revocationReason: CRLReason.keyCompromise,
    });
    expect(again.status("7f00")).toEqual({ status: "unknown" });
    expect(again.status(ca.ocspSigner.certificate.serialNumber)).toEqual({ status: "good" });
  });

  // The watcher polls every WATCH_INTERVAL_MS (200 ms); how fast it sees a change is a speed
  // property, so the deadline here only detects a watcher that never sees it.
  it("sees a revocation made by another process (the store's watcher)", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer();
    const watcher = await CertificateAuthority.open(dir, { watch: true });
    try {
      const revoked = await run(process.execPath, [
        OCSP_LAB_BIN,
        "revoke",
        leaf.certFile,
        "--reason",
        "superseded",
        "--state-dir",
        dir,
      ]);
      expect(revoked.code, revoked.stderr).toBe(0);
      const status = await eventually(
        () => watcher.status(leaf.serial),
        (s) => s.status === "revoked",
        10_000,
        "the watcher to see the revocation",
      );
      expect(status).toMatchObject({ revocationReason: CRLReason.superseded });
    } finally {
      watcher.close();
    }
  });

  it("never loses an update when several processes revoke at once", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaves = await Promise.all([1, 2, 3, 4, 5, 6].map(() => ca.issueServer()));
    const results = await Promise.all(
      leaves.map((l) =>
        run(process.execPath, [OCSP_LAB_BIN, "revoke", l.serial, "--reason", "keyCompromise", "--state-dir", dir]),
      ),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const after = await CertificateAuthority.open(dir);
    for (const l of leaves) expect(after.status(l.serial).status).toBe("revoked");
  });

  it("ends with one consistent CA when two processes create it at once", async () => {
    const entry = new URL("../dist/index.js", import.meta.url).href;
    const script = `import { CertificateAuthority } from ${JSON.stringify(entry)};
      const ca = await CertificateAuthority.openOrInit(process.argv[1]);
      console.log(ca.root.certificate.serialNumber);`;
    const [a, b] = await Promise.all([1, 2].map(() => run(process.execPath, ["--input-type=module", "-e", script, dir])));
    expect(a!.code, a!.stderr).toBe(0);
    expect(b!.code, b!.stderr).toBe(0);
    expect(a!.stdout).toBe(b!.stdout);
    const ca = await CertificateAuthority.open(dir);
    const leaf = await ca.issueServer();
    expect((await run("openssl", ["verify", "-CAfile", ca.rootFile, leaf.certFile])).stdout).toContain(": OK");
    const key = await run("openssl", ["pkey", "-in", join(dir, "ca.key"), "-pubout"]);
    const cert = await run("openssl", ["x509", "-in", ca.rootFile, "-noout", "-pubkey"]);
    expect(key.stdout).toBe(cert.stdout);
  });

  it("survives kill -9 in the middle of writes: the store still opens and takes the next write", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaves = await Promise.all([1, 2, 3].map(() => ca.issueServer()));
    const entry = new URL("../dist/index.js", import.meta.url).href;
    // A writer that holds and re-holds (force: a new hold time) in a loop, announcing each write, until killed.
    const script = `import { CertificateAuthority } from ${JSON.stringify(entry)};
      const ca = await CertificateAuthority.open(process.argv[1]);
      const serials = process.argv.slice(2);
      for (let i = 0; ; i++) { await ca.hold(serials[i % serials.length], { force: true }); process.stdout.write("w"); }`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, dir, ...leaves.map((l) => l.serial)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let writes = 0;
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (d: Buffer) => {
        writes += d.length;
        if (writes >= 5) resolve();
      }),
    );
    child.kill("SIGKILL");
    await once(child, "exit");
    const after = await CertificateAuthority.open(dir);
    for (const l of leaves) expect(["good", "revoked"]).toContain(after.status(l.serial).status);
    // A lock left by the killed writer is taken over once stale; the next write succeeds.
    await after.revoke(leaves[0]!.serial, { reason: CRLReason.superseded });
    expect((await CertificateAuthority.open(dir)).status(leaves[0]!.serial)).toMatchObject({
      status: "revoked",
      revocationReason: CRLReason.superseded,
    });
  });

  it("refuses bad input without touching the store", async () => {
    const ca = await CertificateAuthority.init(dir);
    const before = await fs.readFile(join(dir, "ca.json"), "utf8");
    await expect(ca.revoke("abcdef")).rejects.toBeInstanceOf(UnknownSerialError);
    await expect(ca.revoke("abcdef")).rejects.toThrow(/abcdef/);
    await expect(ca.issueServer({ ipAddresses: ["not-an-ip"] })).rejects.toThrow(/not-an-ip/);
    expect(await fs.readFile(join(dir, "ca.json"), "utf8")).toBe(before);
    await expect(CertificateAuthority.init(dir)).rejects.toBeInstanceOf(StateExistsError);
  });

  it("says clearly when the state folder has no CA", async () => {
    await expect(CertificateAuthority.open(join(dir, "missing"))).rejects.toBeInstanceOf(StateNotFoundError);
    await expect(CertificateAuthority.open(join(dir, "missing"))).rejects.toThrow(/OCSP_LAB_HOME/);
  });
});

describe("CRLReason", () => {
  it.each([
    ["keyCompromise", CRLReason.keyCompromise],
    ["key-compromise", CRLReason.keyCompromise],
    ["CACOMPROMISE", CRLReason.cACompromise],
    ["6", CRLReason.certificateHold],
    [10, CRLReason.aACompromise],
  ])("parses %s", (input, want) => {
    expect(parseCrlReason(input)).toBe(want);
  });

  it.each(["7", "bogus", "11"])("rejects %s with the list of reasons", (input) => {
    expect(() => parseCrlReason(input)).toThrow(InvalidReasonError);
    expect(() => parseCrlReason(input)).toThrow(/keyCompromise/);
  });
});

describe("serials and state folder", () => {
  it.each([
    ["00A1:B2", "a1b2"],
    ["0x0a1b", "0a1b"],
    ["a1b", "0a1b"],
    ["0000", "00"],
  ])("normalizes %s to %s", (input, want) => {
    expect(normalizeSerial(input)).toBe(want);
  });

  it("resolves the state folder from the argument, then OCSP_LAB_HOME, then ./.ocsp-lab", () => {
    expect(resolveStateDir("/x", { OCSP_LAB_HOME: "/y" }, "/cwd")).toBe("/x");
    expect(resolveStateDir(undefined, { OCSP_LAB_HOME: "/y" }, "/cwd")).toBe("/y");
    expect(resolveStateDir(undefined, {}, "/cwd")).toBe("/cwd/.ocsp-lab");
  });
});
