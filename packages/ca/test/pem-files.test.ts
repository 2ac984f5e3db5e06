import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join, relative } from "node:path";
import { CertificateAuthority } from "@ocsp-lab/ca";
import { caMain } from "@ocsp-lab/ca/cli";
import { CRLReason } from "@ocsp-lab/ocsp";
import { opensslCsr, inProcess, freePort, run, sClient, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let server: ChildProcess | undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill("SIGKILL");
    await once(server, "exit");
  }
  server = undefined;
  await cleanup();
});

/** Run `ocsp-ca` in-process on the state folder `state`, with captured output. */
async function ocspCa(state: string, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(caMain, argv, { env: { OCSP_LAB_HOME: state } });
}

/** Run openssl and fail with its stderr when it exits non-zero. */
async function openssl(args: string[]): Promise<string> {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Every file under `root`, recursively (absolute paths). */
async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}

/**
 * What OpenSSL finds in a PEM file, in order (`openssl storeutl`: `Certificate`, `Pkey`...).
 * Without `-certs`: OpenSSL 3.0 then counts the certificates but exits 1 on the key entry.
 */
async function storeEntries(file: string): Promise<string[]> {
  const text = await openssl(["storeutl", "-noout", file]);
  const entries = [...text.matchAll(/^\d+: (\S+)/gm)].map((m) => m[1]!);
  expect(text).toContain(`Total found: ${entries.length}`);
  return entries;
}

/** The private key in `file` loads (`openssl pkey`) and is the key of the first certificate in it. */
async function expectKeyMatchesCertificate(file: string): Promise<void> {
  const fromKey = await openssl(["pkey", "-in", file, "-pubout"]);
  const fromCert = await openssl(["x509", "-in", file, "-noout", "-pubkey"]);
  expect(fromKey).toContain("BEGIN PUBLIC KEY");
  expect(fromKey).toBe(fromCert);
}

/**
 * `openssl s_server -cert file -key file` (certificate and key from one PEM file, as HAProxy
 * loads a `crt`), resolved once it accepts connections.
 */
async function serveFromOneFile(file: string): Promise<number> {
  const port = await freePort();
  const child = spawn("openssl", ["s_server", "-accept", `127.0.0.1:${port}`, "-cert", file, "-key", file, "-naccept", "1"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  server = child;
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += String(d)));
  await new Promise<void>((resolve, reject) => {
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => {
      stdout += String(d);
      if (stdout.includes("ACCEPT")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`openssl s_server exited ${code} before accepting: ${stderr}`)));
  });
  return port;
}

describe("PEM files", () => {
  it("every PEM file in a fresh state folder, and every PEM export, ends with a newline", async () => {
    const state = join(dir, "state");
    const ca = await CertificateAuthority.init(state);
    const leaf = await ca.issueServer({ dnsNames: ["localhost"] });
    await ca.issue("client", { emails: ["dev@lab.test"] });
    const mid = await ca.createIntermediate({ commonName: "lab intermediate" });
    const deep = await ca.issue("server", { issuer: mid.serial, dnsNames: ["deep.lab.test"] });
    await ca.issue("ocsp-signer", { issuer: mid.serial });
    const { csrPem } = await opensslCsr({ dir, name: "own", subject: "/CN=own.lab.test" });
    await ca.signCsr(csrPem);
    await ca.revoke(deep.serial, { reason: CRLReason.keyCompromise });
    await ca.hold(leaf.serial);
    await ca.refreshCrls();

    // Exports, to files and to stdout.
    const exports = join(dir, "exports");
    await fs.mkdir(exports);
    const stdoutExports: Array<[string, string]> = [];
    for (const format of ["chain", "fullchain", "pem-bundle"]) {
      for (const serial of [leaf.serial, mid.serial, deep.serial]) {
        const file = join(exports, `${serial}.${format}.pem`);
        const r = await ocspCa(state, "export", serial, "--format", format, "--out", file);
        expect(r.code, r.err).toBe(0);
        const printed = await ocspCa(state, "export", serial, "--format", format);
        expect(printed.code, printed.err).toBe(0);
        stdoutExports.push([`${format} of ${serial} on stdout`, printed.out]);
      }
    }

    const pemFiles: Array<[string, string]> = [];
    for (const file of await walk(dir)) {
      if (file.endsWith(".der")) continue;
      const text = await fs.readFile(file, "utf8");
      if (text.includes("-----BEGIN ")) pemFiles.push([relative(dir, file), text]);
    }
    const names = pemFiles.map(([name]) => name);
    // The walk saw every kind of file the CA writes: keys of the root, of signers, of leaves
    // and of an intermediate, certificates, chains, CRLs, and the exports.
    for (const want of [
      "state/ca.key",
      "state/ocsp-signer.key",
      "state/ca.pem",
      "state/ca.crl",
      "state/ca-delta.crl",
      `state/certs/${leaf.serial}/key.pem`,
      `state/issuers/${mid.serial}/ca.key`,
      `state/issuers/${mid.serial}/ocsp-signer.key`,
      `state/issuers/${mid.serial}/ca.crl`,
      `exports/${leaf.serial}.pem-bundle.pem`,
    ]) {
      expect(names).toContain(want);
    }
    for (const [name, text] of [...pemFiles, ...stdoutExports]) {
      expect(text.endsWith("-----\n"), `${name} ends with a newline`).toBe(true);
      // No block glued to the one before it (what `cat` of a file without a final newline makes).
      expect(text, name).not.toMatch(/-----END [A-Z0-9 ]+----------BEGIN/);
    }
  });

  it("cat cert.pem key.pem chain.pem > site.pem gives a file OpenSSL loads and serves", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer({ dnsNames: ["localhost"] });
    const site = join(dir, "site.pem");
    const parts = await Promise.all([leaf.certFile, leaf.keyFile, leaf.chainFile].map((f) => fs.readFile(f, "utf8")));
    await fs.writeFile(site, parts.join(""), { mode: 0o600 });

    expect(await storeEntries(site)).toEqual(["Certificate", "Pkey", "Certificate"]);
    await expectKeyMatchesCertificate(site);
    expect(await openssl(["x509", "-in", site, "-noout", "-subject"])).toMatch(/CN ?= ?localhost/);

    const port = await serveFromOneFile(site);
    const hello = await sClient({ port, caFile: ca.rootFile });
    expect(hello.stdout).toContain("Verify return code: 0 (ok)");
  });

  it("cat of an intermediate's certificate, key and chain loads too", async () => {
    const ca = await CertificateAuthority.init(dir);
    const mid = await ca.createIntermediate();
    const bundle = join(dir, "mid.pem");
    const parts = await Promise.all([mid.certFile, mid.keyFile, mid.chainFile].map((f) => fs.readFile(f, "utf8")));
    await fs.writeFile(bundle, parts.join(""), { mode: 0o600 });
    expect(await storeEntries(bundle)).toEqual(["Certificate", "Pkey", "Certificate"]);
    await expectKeyMatchesCertificate(bundle);
  });
});

describe("ocsp-ca export --format pem-bundle", () => {
  it("writes certificate, then key, then chain in one PEM file that OpenSSL loads and serves", async () => {
    expect((await ocspCa(dir, "init")).code).toBe(0);
    const ca = await CertificateAuthority.open(dir);
    const mid = await ca.createIntermediate();
    const leaf = await ca.issue("server", { issuer: mid.serial, dnsNames: ["localhost"] });
    const bundle = join(dir, "bundle.pem");
    const r = await ocspCa(dir, "export", leaf.certFile, "--format", "pem-bundle", "--out", bundle);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`wrote pem-bundle to ${bundle}`);
    // It holds a private key: not readable by others.
    expect((await fs.stat(bundle)).mode & 0o777).toBe(0o600);

    const text = await fs.readFile(bundle, "utf8");
    const blocks = [...text.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((m) => m[1]);
    expect(blocks).toEqual(["CERTIFICATE", "PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]);
    expect(text).toBe(
      (await fs.readFile(leaf.certFile, "utf8")) +
        (await fs.readFile(leaf.keyFile, "utf8")) +
        (await fs.readFile(leaf.chainFile, "utf8")),
    );
    expect(await storeEntries(bundle)).toEqual(["Certificate", "Pkey", "Certificate", "Certificate"]);
    await expectKeyMatchesCertificate(bundle);
    const verify = await run("openssl", ["verify", "-CAfile", ca.rootFile, "-untrusted", bundle, bundle]);
    expect(verify.stdout, verify.stderr).toContain(": OK");

    // Printed to stdout, it is the same text.
    const printed = await ocspCa(dir, "export", leaf.serial, "--format", "pem-bundle");
    expect(printed.code, printed.err).toBe(0);
    expect(printed.out).toBe(text);

    // One file for certificate and key, chain sent from it as well.
    const port = await freePort();
    const child = spawn(
      "openssl",
      [
        "s_server",
        "-accept",
        `127.0.0.1:${port}`,
        "-cert",
        bundle,
        "-key",
        bundle,
        "-cert_chain",
        leaf.chainFile,
        "-naccept",
        "1",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    server = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += String(d);
        if (out.includes("ACCEPT")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`openssl s_server exited ${code}`)));
    });
    const hello = await sClient({ port, caFile: ca.rootFile });
    expect(hello.stdout).toContain("Verify return code: 0 (ok)");
  });

  it("refuses, in one line, a certificate signed from a CSR (its key is not in the CA)", async () => {
    expect((await ocspCa(dir, "init")).code).toBe(0);
    const { csrFile: csr } = await opensslCsr({ dir, name: "own", subject: "/CN=own.lab.test" });
    const signed = JSON.parse((await ocspCa(dir, "sign-csr", csr, "--json")).out) as { serial: string };
    const out = join(dir, "bundle.pem");
    const r = await ocspCa(dir, "export", signed.serial, "--format", "pem-bundle", "--out", out);
    expect(r.code).not.toBe(0);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(new RegExp(`serial ${signed.serial} was signed from a CSR; its key is not in the CA`));
    await expect(fs.access(out)).rejects.toThrow();
  });
});
