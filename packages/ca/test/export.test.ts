import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import * as x509 from "@peculiar/x509";
import { CertificateAuthority, toOpensslIndex, toPkcs12, type IndexEntry, type KeyType } from "@ocsp-lab/ca";
import { CRLReason, crlReasonName } from "@ocsp-lab/ocsp";
import { run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

/** Run openssl and fail with its stderr when it exits non-zero. */
async function openssl(args: string[]): Promise<string> {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The `code` of what `fn` throws. */
function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("toPkcs12", () => {
  const cases: { label: string; keyType: KeyType }[] = [
    { label: "ECDSA P-256", keyType: "ecdsa-p256" },
    { label: "RSA-2048", keyType: "rsa-2048" },
  ];

  for (const { label, keyType } of cases) {
    it(`exports a ${label} key, leaf and chain that OpenSSL 3 (no -legacy) and node:tls open`, async () => {
      const ca =
        keyType === "ecdsa-p256"
          ? await CertificateAuthority.init(join(dir, "ca"))
          : await CertificateAuthority.init(join(dir, "ca"), { keyType });
      const leaf = await ca.issueServer({ dnsNames: ["localhost"] });
      const rootPem = await fs.readFile(ca.rootFile, "utf8");
      const p12 = toPkcs12({
        keyPem: leaf.keyPem!,
        certPem: leaf.certPem,
        chainPems: [rootPem],
        password: "secret",
        friendlyName: "localhost",
      });
      expect(p12).toBeInstanceOf(Uint8Array);
      const file = join(dir, "f.p12");
      await fs.writeFile(file, p12);

      // Certificates: leaf (with localKeyID + friendlyName) and the root.
      const certs = await openssl(["pkcs12", "-in", file, "-passin", "pass:secret", "-nokeys"]);
      expect(certs.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      expect(certs).toMatch(/subject=CN ?= ?localhost/);
      expect(certs).toContain(
        `subject=${(await openssl(["x509", "-in", ca.rootFile, "-noout", "-subject"])).replace(/^subject=/, "").trim()}`,
      );
      expect(certs).toMatch(/friendlyName: localhost/);
      expect(certs).toMatch(/localKeyID: [0-9A-F ]+/);

      // Algorithms, as OpenSSL reports them.
      const info = (await run("openssl", ["pkcs12", "-in", file, "-passin", "pass:secret", "-info", "-noout"])).stderr;
      expect(info).toMatch(/MAC: sha1, Iteration 2048/);
      expect(info).toMatch(/Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048/);
      expect(info).toMatch(/PKCS7 Data/);

      // Key: the same public key as the certificate's.
      const keyOut = await openssl(["pkcs12", "-in", file, "-passin", "pass:secret", "-nocerts", "-nodes"]);
      expect(keyOut).toMatch(/BEGIN PRIVATE KEY/);
      expect(keyOut).toMatch(/localKeyID: [0-9A-F ]+/);
      const keyFile = join(dir, "extracted.key");
      await fs.writeFile(keyFile, keyOut, { mode: 0o600 });
      const pubFromKey = await openssl(["pkey", "-in", keyFile, "-pubout"]);
      const pubFromCert = await openssl(["x509", "-in", leaf.certFile, "-pubkey", "-noout"]);
      expect(pubFromKey).toContain("BEGIN PUBLIC KEY");
      expect(pubFromKey).toBe(pubFromCert);

      // Wrong password: MAC check fails.
      const wrong = await run("openssl", ["pkcs12", "-in", file, "-passin", "pass:wrong", "-nokeys"]);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/mac verify (failure|error)/i);

      // node:tls.
      expect(() => tls.createSecureContext({ pfx: Buffer.from(p12), passphrase: "secret" })).not.toThrow();
      expect(() => tls.createSecureContext({ pfx: Buffer.from(p12), passphrase: "wrong" })).toThrow(/mac verify failure/i);

      // And a real handshake with it, verified against the root.
      const server = tls.createServer({ pfx: Buffer.from(p12), passphrase: "secret" }, (socket) => socket.end("hello"));
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      try {
        const socket = tls.connect({
          host: "127.0.0.1",
          port: (server.address() as AddressInfo).port,
          servername: "localhost",
          ca: rootPem,
        });
        await once(socket, "secureConnect");
        expect(socket.authorized).toBe(true);
        expect(socket.getPeerCertificate(true).subject.CN).toBe("localhost");
        socket.destroy();
      } finally {
        server.close();
      }
    });
  }

  it("works with a non-ASCII password (BMPString, RFC 7292 B.1)", async () => {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const leaf = await ca.issueServer({ dnsNames: ["localhost"] });
    const password = "pässwört-✓";
    const p12 = toPkcs12({ keyPem: leaf.keyPem!, certPem: await fs.readFile(leaf.fullchainFile, "utf8"), password });
    const file = join(dir, "u.p12");
    await fs.writeFile(file, p12);
    expect(() => tls.createSecureContext({ pfx: Buffer.from(p12), passphrase: password })).not.toThrow();
    const certs = await openssl(["pkcs12", "-in", file, "-passin", `pass:${password}`, "-nokeys"]);
    // fullchain.pem given as certPem: leaf first, the rest becomes the chain.
    expect(certs.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it("rejects an empty password, a key that is not the certificate's and non-PKCS#8 keys", async () => {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const a = await ca.issueServer({ dnsNames: ["a.test"] });
    const b = await ca.issueServer({ dnsNames: ["b.test"] });
    expect(codeOf(() => toPkcs12({ keyPem: a.keyPem!, certPem: a.certPem, password: "" }))).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
    expect(() => toPkcs12({ keyPem: a.keyPem!, certPem: a.certPem, password: "" })).toThrow(/non-empty password/);
    expect(codeOf(() => toPkcs12({ keyPem: b.keyPem!, certPem: a.certPem, password: "x" }))).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
    expect(codeOf(() => toPkcs12({ keyPem: a.keyPem!, certPem: "not a certificate", password: "x" }))).toBe(
      "OCSP_LAB_CA_INVALID_ARGUMENT",
    );

    const pkcs1 = await openssl(["pkey", "-in", join(dir, "ca", "ca.key"), "-traditional"]);
    expect(pkcs1).toMatch(/BEGIN EC PRIVATE KEY/);
    expect(() => toPkcs12({ keyPem: pkcs1, certPem: a.certPem, password: "x" })).toThrow(/PKCS#8/);
    const ed = await openssl(["genpkey", "-algorithm", "ed25519"]);
    expect(() => toPkcs12({ keyPem: ed, certPem: a.certPem, password: "x" })).toThrow(/RSA or an EC P-256\/P-384/);
  });
});

describe("toOpensslIndex", () => {
  it("writes the openssl ca database format", () => {
    const now = new Date("2026-06-01T00:00:00Z");
    const entries: IndexEntry[] = [
      { serial: "00ab", notAfter: new Date("2030-01-02T03:04:05.678Z"), subject: "CN=localhost, O=ocsp-lab" },
      { serial: "abc", notAfter: new Date("2026-05-31T23:59:59Z"), subject: "CN=old" },
      {
        serial: "7f01",
        notAfter: new Date("2027-01-01T00:00:00Z"),
        subject: "CN=gone",
        revocation: { time: new Date("2026-05-01T12:30:00Z"), reason: CRLReason.keyCompromise },
      },
      {
        serial: "0",
        notAfter: new Date("2051-01-01T00:00:00Z"),
        subject: "CN=ca",
        revocation: { time: new Date("2026-05-01T12:30:00Z"), reason: CRLReason.cACompromise },
      },
    ];
    expect(toOpensslIndex(entries, now)).toBe(
      [
        "V\t300102030405Z\t\tAB\tunknown\t/CN=localhost/O=ocsp-lab",
        "E\t260531235959Z\t\t0ABC\tunknown\t/CN=old",
        "R\t270101000000Z\t260501123000Z,keyCompromise\t7F01\tunknown\t/CN=gone",
        "R\t20510101000000Z\t260501123000Z,CACompromise\t00\tunknown\t/CN=ca",
        "",
      ].join("\n"),
    );
    expect(toOpensslIndex([])).toBe("");
  });

  it("rejects what OpenSSL's index cannot hold", () => {
    const base = { serial: "01", notAfter: new Date("2030-01-01T00:00:00Z"), subject: "CN=x" };
    const revokedAt = new Date("2026-01-01T00:00:00Z");
    expect(
      codeOf(() => toOpensslIndex([{ ...base, revocation: { time: revokedAt, reason: CRLReason.privilegeWithdrawn } }])),
    ).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
    expect(
      codeOf(() =>
        toOpensslIndex([{ ...base, revocation: { time: new Date("2050-01-01T00:00:00Z"), reason: CRLReason.superseded } }]),
      ),
    ).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
    expect(codeOf(() => toOpensslIndex([base, { ...base, serial: "0001" }]))).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
    expect(codeOf(() => toOpensslIndex([{ ...base, serial: "xyz" }]))).toBe("OCSP_LAB_CA_INVALID_SERIAL");
    expect(codeOf(() => toOpensslIndex([{ ...base, notAfter: new Date(Number.NaN) }]))).toBe("OCSP_LAB_CA_INVALID_ARGUMENT");
  });

  it("writes subjects exactly as `openssl x509 -subject -nameopt compat` prints them", async () => {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const leaf = await ca.issueServer({ dnsNames: ["localhost"] });
    const odd1 = join(dir, "odd1.pem");
    const odd2 = join(dir, "odd2.pem");
    const req = (subj: string, out: string, extra: string[] = []): Promise<string> =>
      openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${out}.key`,
        "-out",
        out,
        "-days",
        "1",
        "-subj",
        subj,
        ...extra,
      ]);
    await req("/C=DE/O=a\\/b/OU=x+CN=c, d/emailAddress=me@x.y/DC=com/serialNumber=123", odd1, ["-multivalue-rdn"]);
    await req("/O=a\\+b=c\\\\d/CN=Jürgen é", odd2, ["-utf8"]);
    for (const file of [ca.rootFile, leaf.certFile, odd1, odd2]) {
      const cert = new x509.X509Certificate(await fs.readFile(file, "utf8"));
      const expected = (await openssl(["x509", "-in", file, "-noout", "-subject", "-nameopt", "compat"]))
        .replace(/^subject=/, "")
        .trim();
      const line = toOpensslIndex([{ serial: cert.serialNumber, notAfter: cert.notAfter, subject: cert.subject }]);
      expect(line.split("\t")[5]).toBe(`${expected}\n`);
    }
  });

  it("lets `openssl ocsp -index` answer for the CA: good, and revoked with the reason", async () => {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const good = await ca.issueServer({ dnsNames: ["localhost"] });
    const bad = await ca.issueServer({ dnsNames: ["localhost"] });
    await ca.revoke(bad.serial, { reason: CRLReason.keyCompromise });

    const index = join(dir, "index.txt");
    await fs.writeFile(index, toOpensslIndex(ca.list().map(recordToEntry)));
    const text = await fs.readFile(index, "utf8");
    expect(text.split("\n").filter(Boolean)).toHaveLength(4); // root, OCSP signer, two leaves
    expect(text).toContain(`\t${bad.serial.toUpperCase()}\tunknown\t/CN=localhost\n`);

    const goodAnswer = await askOpenssl(ca, index, good.certFile, "good");
    expect(goodAnswer).toContain(`${good.certFile}: good`);
    const badAnswer = await askOpenssl(ca, index, bad.certFile, "bad");
    expect(badAnswer).toContain(`${bad.certFile}: revoked`);
    expect(badAnswer).toContain("Reason: keyCompromise");
  });

  it("spells every reason so that OpenSSL reads it back as the same CRLReason", async () => {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const reasons = [
      CRLReason.unspecified,
      CRLReason.keyCompromise,
      CRLReason.cACompromise,
      CRLReason.affiliationChanged,
      CRLReason.superseded,
      CRLReason.cessationOfOperation,
      CRLReason.certificateHold,
      CRLReason.removeFromCRL,
    ];
    // Revocations are set in the entries directly: this checks the index spelling, whatever
    // the CA's own policy on a reason (removeFromCRL is only meaningful in delta CRLs).
    const leaves = [];
    const entries: IndexEntry[] = [];
    const time = new Date(Date.now() - 60_000);
    for (const reason of reasons) {
      const leaf = await ca.issueServer({ dnsNames: [`r${reason}.test`] });
      leaves.push({ leaf, reason });
      entries.push({
        serial: leaf.serial,
        notAfter: leaf.certificate.notAfter,
        subject: leaf.certificate.subject,
        revocation: { time, reason },
      });
    }
    const index = join(dir, "index.txt");
    await fs.writeFile(index, toOpensslIndex(entries));
    for (const { leaf, reason } of leaves) {
      const answer = await askOpenssl(ca, index, leaf.certFile, `r${reason}`);
      expect(answer).toContain(`${leaf.certFile}: revoked`);
      // OpenSSL prints RFC 5280 names (cACompromise), whatever the index spelling (CACompromise).
      expect(answer).toContain(`Reason: ${crlReasonName(reason)}`);
    }
  });
});

function recordToEntry(r: {
  serial: string;
  notAfter: string;
  subject: string;
  revocation?: { time: string; reason: CRLReason };
}): IndexEntry {
  return {
    serial: r.serial,
    notAfter: new Date(r.notAfter),
    subject: r.subject,
    ...(r.revocation ? { revocation: { time: new Date(r.revocation.time), reason: r.revocation.reason } } : {}),
  };
}

/** Build a request for `certFile`, answer it with `openssl ocsp -index`, verify and print the status. */
async function askOpenssl(ca: CertificateAuthority, index: string, certFile: string, tag: string): Promise<string> {
  const req = join(dir, `${tag}.req.der`);
  const resp = join(dir, `${tag}.resp.der`);
  await openssl(["ocsp", "-issuer", ca.rootFile, "-cert", certFile, "-reqout", req, "-no_nonce"]);
  await openssl([
    "ocsp",
    "-index",
    index,
    "-CA",
    ca.rootFile,
    "-rsigner",
    join(ca.stateDir, "ocsp-signer.pem"),
    "-rkey",
    join(ca.stateDir, "ocsp-signer.key"),
    "-reqin",
    req,
    "-respout",
    resp,
  ]);
  const r = await run("openssl", ["ocsp", "-respin", resp, "-issuer", ca.rootFile, "-cert", certFile, "-CAfile", ca.rootFile]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain("Response verify OK");
  return r.stdout;
}
