import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { caMain } from "@ocsp-lab/ca/cli";
import { inProcess, run, tempDir } from "../../../test-support/index.js";

const BIN = new URL("../bin/ocsp-ca.js", import.meta.url).pathname;
let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

/** Run `ocsp-ca` in-process with captured output. */
async function ca(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(caMain, argv, { env: { OCSP_LAB_HOME: dir } });
}
const db = () => fs.readFile(join(dir, "ca.json"), "utf8");

describe("ocsp-ca", () => {
  it("lists the root key types in init --help", async () => {
    const help = await ca("init", "--help");
    expect(help.code).toBe(0);
    expect(help.out.replace(/\s+/g, " ")).toContain(
      "--key-type <type> key type of the root: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 (default ecdsa-p256)",
    );
  });

  it("prints its package's version with --version and -V", async () => {
    const { version } = JSON.parse(await fs.readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) expect(await ca(flag)).toEqual({ code: 0, out: `${version}\n`, err: "" });
  });

  it("prints usage with examples when run bare", async () => {
    const r = await run(process.execPath, [BIN], { env: { ...process.env, OCSP_LAB_HOME: dir } });
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toContain("Examples:");
    expect(r.stdout + r.stderr).toContain("ocsp-ca issue --dns localhost");
  });

  it("points caIssuers at the responder's /ca/<issuer serial>.der with --ocsp-url, unless told otherwise", async () => {
    expect((await ca("init")).code).toBe(0);
    const rootSerial = (JSON.parse(await db()) as { root: string }).root;
    const aiaOf = async (...flags: string[]) => {
      const issued = JSON.parse((await ca("issue", "--dns", "app.lab.test", ...flags, "--json")).out) as { certFile: string };
      return (await run("openssl", ["x509", "-in", issued.certFile, "-noout", "-ext", "authorityInfoAccess"])).stdout;
    };
    const byDefault = await aiaOf("--ocsp-url", "http://127.0.0.1:8080");
    expect(byDefault).toContain("OCSP - URI:http://127.0.0.1:8080");
    expect(byDefault).toContain(`CA Issuers - URI:http://127.0.0.1:8080/ca/${rootSerial}.der`);
    // Under an intermediate: that intermediate's certificate, given as any spelling of its serial.
    const mid = JSON.parse((await ca("issue", "--profile", "intermediate", "--cn", "lab intermediate", "--json")).out) as {
      serial: string;
    };
    expect(await aiaOf("--issuer", mid.serial.toUpperCase(), "--ocsp-url", "http://127.0.0.1:8080/")).toContain(
      `CA Issuers - URI:http://127.0.0.1:8080/ca/${mid.serial}.der`,
    );
    expect(await aiaOf("--ocsp-url", "http://127.0.0.1:8080", "--ca-issuers-url", "http://ca.lab.test/root.der")).toContain(
      "CA Issuers - URI:http://ca.lab.test/root.der",
    );
    const none = await aiaOf("--ocsp-url", "http://127.0.0.1:8080", "--no-ca-issuers-url");
    expect(none).toContain("OCSP - URI:http://127.0.0.1:8080");
    expect(none).not.toContain("CA Issuers");
    // No OCSP URL, no AIA at all.
    expect(await aiaOf()).not.toContain("URI:");
  });

  it("runs a whole session: init, issue, revoke, hold, release, list, show, crl, export", async () => {
    expect((await ca("init")).out).toMatch(/created CA "CN=ocsp-lab root CA .*" \(serial [0-9a-f]+\) in /);
    const issued = JSON.parse((await ca("issue", "--dns", "app.lab.test", "--ip", "127.0.0.1", "--json")).out) as {
      serial: string;
      certFile: string;
      keyFile: string;
    };
    expect((await run("openssl", ["verify", "-CAfile", join(dir, "ca.pem"), issued.certFile])).stdout).toContain(": OK");
    const client = JSON.parse((await ca("issue", "--profile", "client", "--email", "dev@lab.test", "--json")).out) as {
      serial: string;
    };

    const revoked = await ca("revoke", issued.certFile, "--reason", "keyCompromise", "--invalidity-date", "2026-01-01T00:00:00Z");
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).toMatch(new RegExp(`revoked serial ${issued.serial} .*keyCompromise`));
    expect((await ca("hold", client.serial)).out).toContain("is on hold");
    const listed = JSON.parse((await ca("list", "--revoked", "--json")).out) as Array<{ serial: string }>;
    expect(listed.map((r) => r.serial).sort()).toEqual([issued.serial, client.serial].sort());
    expect((await ca("release", client.serial)).out).toContain("released from hold");
    expect(JSON.parse((await ca("show", client.serial, "--json")).out)).toMatchObject({
      serial: client.serial,
      kind: "client",
      status: "good",
    });
    expect((await ca("show", issued.serial)).out).toMatch(/status\s+revoked \(keyCompromise/);

    const crl = JSON.parse((await ca("crl", "--refresh", "--json")).out) as { entries: number; files: { full: string } };
    expect(crl.entries).toBe(1);
    const check = await run("openssl", ["crl", "-in", crl.files.full, "-CAfile", join(dir, "ca.pem"), "-noout"]);
    expect(check.stdout + check.stderr).toContain("verify OK");

    const p12 = join(dir, "client.p12");
    expect((await ca("export", client.serial, "--format", "pkcs12", "--password", "changeit", "--out", p12)).code).toBe(0);
    expect((await run("openssl", ["pkcs12", "-in", p12, "-passin", "pass:changeit", "-nokeys"])).stdout).toContain(
      "BEGIN CERTIFICATE",
    );
    const index = await ca("export", "--format", "index");
    expect(index.out).toMatch(
      new RegExp(`^R\\t\\d{12}Z\\t\\d{12}Z,keyCompromise\\t${issued.serial.toUpperCase()}\\tunknown\\t/CN=app.lab.test$`, "m"),
    );
  });

  it.each([
    [["revoke", "abcdef"], /no certificate with serial abcdef/],
    [["revoke", "zz-not-hex"], /give a hexadecimal serial or the path of a certificate file/],
    [["revoke", "abcdef", "--reason", "sorry"], /unknown CRLReason "sorry"/],
    [["release", "abcdef"], /no certificate with serial abcdef/],
    [["issue", "--ip", "300.1.1.1"], /invalid IP address "300\.1\.1\.1"/],
    [["issue", "--profile", "robot"], /--profile must be one of server, client, ocsp-signer, intermediate/],
    [["sign-csr", "/nonexistent.csr"], /cannot read CSR file/],
    [["init"], /a CA already exists/],
  ])("refuses %j with one line and leaves the store untouched", async (argv, message) => {
    await ca("init");
    const before = await db();
    const r = await ca(...(argv as string[]));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(await db()).toBe(before);
  });

  it("refuses a malformed CSR without touching the store", async () => {
    await ca("init");
    const before = await db();
    const csr = join(dir, "bad.csr");
    await fs.writeFile(csr, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
    const r = await run(process.execPath, [BIN, "sign-csr", csr], { env: { ...process.env, OCSP_LAB_HOME: dir } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ocsp-ca: invalid certificate request: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await db()).toBe(before);
  });

  it("says how to create a CA when the state folder has none", async () => {
    const r = await ca("list");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ocsp-ca: no CA in state folder .*: create one with `ocsp-ca init`/);
  });
});
