import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connect, createServer } from "node:tls";
import * as x509 from "@peculiar/x509";
import { CertificateAuthority, InvalidArgumentError, InvalidCsrError, KEY_TYPES, type KeyType } from "@ocsp-lab/ca";
import { CRLReason, ManualClock } from "@ocsp-lab/ocsp";
import { opensslCsr, eventually, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

const text = async (file: string): Promise<string> => (await run("openssl", ["x509", "-in", file, "-noout", "-text"])).stdout;

describe("hierarchy and profiles", () => {
  it("chains root → intermediate → leaf that openssl verifies, with path length constraints", async () => {
    const ca = await CertificateAuthority.init(dir);
    const mid = await ca.createIntermediate({ commonName: "lab intermediate", pathLength: 1 });
    const sub = await ca.createIntermediate({ issuer: mid.serial, commonName: "lab sub-intermediate" });
    const leaf = await ca.issue("server", { issuer: sub.serial, dnsNames: ["deep.lab.test"] });

    const verify = await run("openssl", ["verify", "-CAfile", ca.rootFile, "-untrusted", leaf.chainFile, leaf.certFile]);
    expect(verify.stdout, verify.stderr).toContain(": OK");
    expect((await fs.readFile(leaf.chainFile, "utf8")).match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
    expect(await text(mid.certFile)).toMatch(/CA:TRUE, pathlen:1/);
    expect(await text(sub.certFile)).toMatch(/CA:TRUE, pathlen:0/);
    await expect(ca.createIntermediate({ issuer: sub.serial })).rejects.toThrow(/pathLength 0 and cannot issue intermediates/);
    // Each intermediate has its own delegated OCSP signer issued by it.
    const signer = await ca.ocspSignerOf(mid.serial);
    expect(signer.certificate.issuer).toBe(mid.certificate.subject);
  });

  it.each(KEY_TYPES.filter((k) => k !== "rsa-4096"))("issues %s leaves that openssl verifies", async (keyType) => {
    const ca = await CertificateAuthority.init(dir, { keyType: keyType === "ed25519" ? "ecdsa-p256" : (keyType as KeyType) });
    const leaf = await ca.issue("server", { keyType, dnsNames: ["k.lab.test"] });
    expect((await run("openssl", ["verify", "-CAfile", ca.rootFile, leaf.certFile])).stdout).toContain(": OK");
  });

  it("refuses Ed25519 where pkijs cannot sign OCSP, with the reason", async () => {
    await expect(CertificateAuthority.init(dir, { keyType: "ed25519" })).rejects.toThrow(/Ed25519/);
    const ca = await CertificateAuthority.init(dir);
    await expect(ca.issue("ocsp-signer", { keyType: "ed25519" })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("sets client profile SANs, subject fields, AIA caIssuers, CRL DP, must-staple and explicit validity", async () => {
    const ca = await CertificateAuthority.init(dir);
    const notBefore = new Date("2026-01-01T00:00:00Z");
    const notAfter = new Date("2026-02-01T00:00:00Z");
    const client = await ca.issue("client", {
      emails: ["dev@lab.test"],
      uris: ["spiffe://lab/service"],
      subject: { commonName: "dev", organization: "Lab, Inc.", country: "NL" },
      ocspUrl: "http://127.0.0.1:9/",
      caIssuersUrl: "http://127.0.0.1:9/ca.der",
      crlUrl: "http://127.0.0.1:9/crl/x.crl",
      mustStaple: true,
      notBefore,
      notAfter,
    });
    const t = await text(client.certFile);
    expect(t).toContain("TLS Web Client Authentication");
    expect(t).toMatch(/email:dev@lab\.test, URI:spiffe:\/\/lab\/service/);
    expect(t).toMatch(/CA Issuers - URI:http:\/\/127\.0\.0\.1:9\/ca\.der/);
    expect(t).toMatch(/URI:http:\/\/127\.0\.0\.1:9\/crl\/x\.crl/);
    expect(t).toMatch(/TLS Feature:\s+status_request/);
    expect(t).toContain("Not Before: Jan  1 00:00:00 2026 GMT");
    expect(t).toContain("Not After : Feb  1 00:00:00 2026 GMT");
    expect(
      (await run("openssl", ["x509", "-in", client.certFile, "-noout", "-subject", "-nameopt", "RFC2253"])).stdout,
    ).toContain("subject=CN=dev,O=Lab\\, Inc.,C=NL");
    await expect(ca.issue("server", { emails: ["x@lab.test"] })).rejects.toThrow(/email and URI SANs go on client certificates/);
    await expect(ca.issue("server", { notBefore: notAfter, notAfter: notBefore })).rejects.toThrow(
      /notAfter must be after notBefore/,
    );
  });

  it("issues deliberately broken OCSP signers", async () => {
    const ca = await CertificateAuthority.init(dir);
    const noEku = await ca.issue("ocsp-signer", { flaw: "no-eku" });
    expect(await text(noEku.certFile)).not.toContain("Extended Key Usage");
    const wrongEku = await ca.issue("ocsp-signer", { flaw: "wrong-eku" });
    expect(await text(wrongEku.certFile)).toMatch(/Extended Key Usage: \n\s+TLS Web Server Authentication/);
    const expired = await ca.issue("ocsp-signer", { flaw: "expired" });
    expect(expired.certificate.notAfter.getTime()).toBeLessThan(Date.now());
    const foreign = await ca.issue("ocsp-signer", { flaw: "other-ca" });
    expect((await run("openssl", ["verify", "-CAfile", ca.rootFile, foreign.certFile])).code).not.toBe(0);
    expect(ca.get(foreign.serial)?.flaw).toBe("other-ca");
    await expect(ca.issue("server", { flaw: "expired" })).rejects.toThrow(/ocsp-signer certificates only/);
  });
});

describe("what the CA refuses", () => {
  it.each([
    [{ dnsNames: ["bad name"] }, /invalid DNS name "bad name"/],
    [{ subject: { country: "USA" } }, /invalid country "USA"/],
    [{ ocspUrl: "notaurl" }, /invalid OCSP URL "notaurl"/],
    [{ pathLength: 1 }, /pathLength.*intermediates only/],
    [{ notAfter: new Date("2999-01-01T00:00:00Z") }, /must not outlive its issuer/],
  ])("refuses a server certificate with %j", async (options, message) => {
    const ca = await CertificateAuthority.init(dir);
    const before = await fs.readFile(join(dir, "ca.json"), "utf8");
    await expect(ca.issue("server", options)).rejects.toThrow(message);
    expect(await fs.readFile(join(dir, "ca.json"), "utf8")).toBe(before);
    expect(await fs.readdir(join(dir, "certs")).catch(() => [])).toEqual([]);
  });

  it("refuses must-staple on an intermediate, a CSR for an intermediate, revoking the root, and holding a final revocation", async () => {
    const ca = await CertificateAuthority.init(dir);
    await expect(ca.issue("intermediate", { mustStaple: true })).rejects.toThrow(/server and client certificates only/);
    const { csrPem } = await opensslCsr({ dir, name: "r", subject: "/CN=x" });
    await expect(ca.signCsr(csrPem, "intermediate")).rejects.toThrow(/needs its key in the store/);
    await expect(ca.revoke(ca.rootSerial)).rejects.toThrow(/it is the root/);
    const leaf = await ca.issueServer();
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    await expect(ca.hold(leaf.serial)).rejects.toThrow(/keyCompromise, which is final/);
    expect(ca.status(leaf.serial)).toMatchObject({ status: "revoked", revocationReason: CRLReason.keyCompromise });
    const mid = await ca.createIntermediate();
    await ca.revoke(mid.serial, { reason: CRLReason.cACompromise });
    await expect(ca.issue("server", { issuer: mid.serial })).rejects.toThrow(/it is revoked; issue under another CA/);
  });
});

describe("Node's TLS", () => {
  it.each(["ecdsa-p384", "rsa-2048", "ed25519"] as const)(
    "accepts a %s leaf under an intermediate, trusting only the root",
    async (keyType) => {
      const ca = await CertificateAuthority.init(dir);
      const mid = await ca.createIntermediate();
      const leaf = await ca.issue("server", { issuer: mid.serial, keyType, dnsNames: ["localhost"] });
      const fullchain = await fs.readFile(leaf.fullchainFile, "utf8");
      const server = createServer({ cert: fullchain, key: leaf.keyPem }, (s) => s.end("hello\n"));
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      try {
        const socket = connect({
          host: "127.0.0.1",
          port: (server.address() as AddressInfo).port,
          servername: "localhost",
          ca: await fs.readFile(ca.rootFile, "utf8"),
        });
        const [data] = (await once(socket, "data")) as [Buffer];
        expect(socket.authorized).toBe(true);
        expect(data.toString()).toBe("hello\n");
        socket.destroy();
      } finally {
        server.close();
      }
    },
  );
});

describe("CSR signing", () => {
  it("signs a CSR made by openssl and rejects one whose signature does not verify", async () => {
    const ca = await CertificateAuthority.init(dir);
    const { keyFile: key, csrPem } = await opensslCsr({
      dir,
      name: "own",
      subject: "/CN=own.lab.test",
      subjectAltName: "DNS:own.lab.test,IP:127.0.0.2",
    });
    const issued = await ca.signCsr(csrPem);
    expect(issued.keyFile).toBe("");
    // No key here: keyPem is absent, not an empty string.
    expect("keyPem" in issued).toBe(false);
    expect(issued.keyPem).toBeUndefined();
    const t = await text(issued.certFile);
    expect(t).toMatch(/Subject: CN ?= ?own\.lab\.test/);
    expect(t).toMatch(/DNS:own\.lab\.test, IP Address:127\.0\.0\.2/);
    expect((await run("openssl", ["verify", "-CAfile", ca.rootFile, issued.certFile])).stdout).toContain(": OK");
    // The certificate carries the CSR's key.
    const fromCert = await run("openssl", ["x509", "-in", issued.certFile, "-noout", "-pubkey"]);
    const fromKey = await run("openssl", ["pkey", "-in", key, "-pubout"]);
    expect(fromCert.stdout).toBe(fromKey.stdout);

    // Flip a byte of the signature: the CSR no longer verifies.
    const der = new x509.Pkcs10CertificateRequest(csrPem).rawData;
    const bytes = new Uint8Array(der.slice(0));
    bytes[bytes.length - 5] ^= 0xff;
    const tampered = x509.PemConverter.encode(bytes.buffer, "CERTIFICATE REQUEST");
    await expect(ca.signCsr(tampered)).rejects.toBeInstanceOf(InvalidCsrError);
    await expect(ca.signCsr("not a csr")).rejects.toThrow(/invalid certificate request/);
  });
});

describe("revocation, holds and CRLs", () => {
  it("publishes CRLs openssl checks: revoked, held, released, with reasons and invalidity dates", async () => {
    const ca = await CertificateAuthority.init(dir);
    const good = await ca.issueServer();
    const bad = await ca.issueServer();
    const held = await ca.issueServer();
    const crlOk = () => run("openssl", ["crl", "-in", ca.crlFiles().full, "-CAfile", ca.rootFile, "-noout"]);
    expect((await crlOk()).stderr + (await crlOk()).stdout).toMatch(/verify OK/);

    await ca.revoke(bad.serial, { reason: CRLReason.keyCompromise, invalidityDate: new Date("2026-01-02T00:00:00Z") });
    await ca.hold(held.serial);
    const verify = (c: string) =>
      run("openssl", ["verify", "-crl_check", "-CAfile", ca.rootFile, "-CRLfile", ca.crlFiles().full, c]);
    expect((await verify(bad.certFile)).stdout + (await verify(bad.certFile)).stderr).toContain("certificate revoked");
    expect((await verify(held.certFile)).stdout + (await verify(held.certFile)).stderr).toContain("certificate revoked");
    expect((await verify(good.certFile)).stdout).toContain(": OK");
    const full = (await run("openssl", ["crl", "-in", ca.crlFiles().full, "-noout", "-text"])).stdout;
    expect(full).toContain("Key Compromise");
    expect(full).toContain("Certificate Hold");
    expect(full).toContain("Invalidity Date");
    expect(
      ca
        .listRevoked()
        .map((r) => r.serial)
        .sort(),
    ).toEqual([bad.serial, held.serial].sort());

    await ca.release(held.serial);
    expect(ca.status(held.serial).status).toBe("good");
    expect((await verify(held.certFile)).stdout).toContain(": OK");
    const delta = (await run("openssl", ["crl", "-in", ca.crlFiles().delta, "-noout", "-text"])).stdout;
    expect(delta).toMatch(/Delta CRL Indicator: critical/);
    expect(delta).toContain("Remove From CRL");
    await expect(ca.release(bad.serial)).rejects.toThrow(/keyCompromise, which is final/);
  });

  it("never reuses a CRL Number, across handles and restarts; full and delta issued together share one", async () => {
    const ca = await CertificateAuthority.init(dir);
    const number = async (file: string): Promise<number> => {
      const t = (await run("openssl", ["crl", "-in", file, "-noout", "-crlnumber"])).stdout;
      return parseInt(t.split("=")[1]!.trim(), 16);
    };
    const publication = async (c: CertificateAuthority): Promise<number> => {
      const [full, delta] = [await number(c.crlFiles().full), await number(c.crlFiles().delta)];
      expect(delta).toBe(full);
      return full;
    };
    const seen = [await publication(ca)];
    const leaf = await ca.issueServer();
    await ca.revoke(leaf.serial);
    seen.push(await publication(ca));
    const again = await CertificateAuthority.open(dir);
    await again.refreshCrls();
    seen.push(await publication(again));
    await again.hold((await again.issueServer()).serial);
    seen.push(await publication(again));
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("republishes CRLs before their nextUpdate", async () => {
    const clock = new ManualClock();
    await CertificateAuthority.init(dir, { clock });
    const ca = await CertificateAuthority.open(dir, { crlValiditySeconds: 2, clock });
    const field = async (flag: "-crlnumber" | "-lastupdate" | "-nextupdate"): Promise<string> =>
      (await run("openssl", ["crl", "-in", ca.crlFiles().full, "-noout", flag])).stdout.trim().split("=")[1]!;
    const crlNumber = async (): Promise<number> => parseInt(await field("-crlnumber"), 16);
    const first = await crlNumber();
    const firstNextUpdate = new Date(await field("-nextupdate"));
    const stop = ca.scheduleCrlRefresh();
    try {
      // Half the validity (1 s) on the CA's clock, not before.
      await clock.advance(999);
      expect(await crlNumber()).toBe(first);
      await clock.advance(1);
      const second = await eventually(crlNumber, (n) => n > first, 10_000, "a republished CRL");
      const thisUpdate = new Date(await field("-lastupdate"));
      expect(thisUpdate.getTime()).toBe(clock.now().getTime());
      expect(thisUpdate.getTime()).toBeLessThan(firstNextUpdate.getTime());
      expect(new Date(await field("-nextupdate")).getTime()).toBeGreaterThan(clock.now().getTime());
      // And again one period later.
      await clock.advance(1000);
      await eventually(crlNumber, (n) => n > second, 10_000, "a second republished CRL");
    } finally {
      stop();
    }
    // Stopped: nothing is left scheduled.
    expect(clock.pendingTimers).toBe(0);
  });

  it("verifies the whole chain with CRLs of the intermediate", async () => {
    const ca = await CertificateAuthority.init(dir);
    const mid = await ca.createIntermediate();
    const leaf = await ca.issue("server", { issuer: mid.serial });
    await ca.revoke(leaf.serial, { reason: CRLReason.superseded });
    const crls = join(dir, "all.crl");
    await fs.writeFile(
      crls,
      (await fs.readFile(ca.crlFiles().full, "utf8")) + (await fs.readFile(ca.crlFiles(mid.serial).full, "utf8")),
    );
    const r = await run("openssl", [
      "verify",
      "-crl_check_all",
      "-CAfile",
      ca.rootFile,
      "-untrusted",
      mid.certFile,
      "-CRLfile",
      crls,
      leaf.certFile,
    ]);
    expect(r.stdout + r.stderr).toContain("certificate revoked");
  });
});
