import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { CertificateAuthority, CrlGenerator, crlToPem, newSerial, type CrlEntryParams, type Signer } from "@ocsp-lab/ca";
import { CRLReason, normalizeSerial } from "@ocsp-lab/ocsp";
import { run, tempDir, type Ran } from "../../../test-support/index.js";

const DAY_MS = 86_400_000;

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("ocsp-lab-crl-"));
});
afterEach(async () => cleanup());

/** Run openssl; stdout and stderr together (OpenSSL 3 prints "verify OK" on stderr). */
async function openssl(args: string[]): Promise<Ran & { all: string }> {
  const ran = await run("openssl", args);
  return { ...ran, all: ran.stdout + ran.stderr };
}

/** Write a CRL as PEM (`<name>.crl`) and DER (`<name>.der`); returns both paths. */
async function writeCrl(name: string, der: Uint8Array): Promise<{ pem: string; der: string }> {
  const paths = { pem: join(dir, `${name}.crl`), der: join(dir, `${name}.der`) };
  await fs.writeFile(paths.pem, `${crlToPem(der)}\n`);
  await fs.writeFile(paths.der, der);
  return paths;
}

/** A CRL valid from a minute ago for a week, so `openssl verify -crl_check` accepts its dates. */
function window(): { thisUpdate: Date; nextUpdate: Date } {
  const now = Date.now();
  return { thisUpdate: new Date(now - 60_000), nextUpdate: new Date(now + 7 * DAY_MS) };
}

/** The children of a DER SEQUENCE's first element (TBSCertList / TBSCertificate). */
function tbsChildren(der: ArrayBuffer | Uint8Array): asn1js.AsnType[] {
  const parsed = asn1js.fromBER(der);
  expect(parsed.offset).not.toBe(-1);
  const outer = parsed.result as asn1js.Sequence;
  return (outer.valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
}

const hex = (v: Uint8Array): string => Buffer.from(v).toString("hex");

describe("CrlGenerator (ECDSA P-256 CA)", () => {
  it("signs a v2 CRL that openssl verifies, with AKI, CRL Number, reason and invalidity date", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"));
    const leaf = await ca.issueServer();
    const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 5_000 + 123);
    const compromisedAt = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678));
    const der = await CrlGenerator.create({
      issuer: ca.root,
      entries: [
        {
          serial: leaf.serial,
          revocationTime: revokedAt,
          revocationReason: CRLReason.keyCompromise,
          invalidityDate: compromisedAt,
        },
        // High bit set: must be encoded with a leading 00 to stay a positive INTEGER.
        { serial: "ff01", revocationTime: revokedAt, revocationReason: CRLReason.unspecified },
      ],
      crlNumber: 1n,
      ...window(),
    });
    const files = await writeCrl("ca", der);

    const verify = await openssl(["crl", "-in", files.pem, "-CAfile", ca.rootFile, "-noout"]);
    console.log(`openssl crl -CAfile (ECDSA): exit ${verify.code}: ${verify.all.trim()}`);
    expect(verify.code).toBe(0);
    expect(verify.all).toContain("verify OK");

    const text = (await openssl(["crl", "-inform", "DER", "-in", files.der, "-noout", "-text"])).stdout;
    expect(text).toContain("Version 2 (0x1)");
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*1\n/);
    expect(text).toContain("X509v3 Authority Key Identifier");
    const ski = ca.root.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(text.replace(/[:\s]/g, "").toLowerCase()).toContain(ski.toLowerCase());
    expect(text).toContain(`Serial Number: ${leaf.serial.toUpperCase()}`);
    expect(text).toMatch(/X509v3 CRL Reason Code:\s*\n\s*Key Compromise/);
    expect(text).toMatch(/Invalidity Date:\s*\n\s*Jan {2}2 03:04:05 2025 GMT/);
    expect(text).toContain("Serial Number: FF01");
    // unspecified: no reasonCode extension (RFC 5280 §5.3.1), so exactly one Reason Code in the CRL.
    expect(text.match(/CRL Reason Code/g)).toHaveLength(1);
    console.log(`openssl crl -text (ECDSA):\n${text.split("Signature Value")[0]}`);

    // The issuer Name is the certificate's subject, byte for byte.
    const crlTbs = tbsChildren(der);
    const certTbs = tbsChildren(new Uint8Array(ca.root.certificate.rawData));
    expect(hex(crlTbs[2]!.valueBeforeDecodeView)).toBe(hex(certTbs[5]!.valueBeforeDecodeView));
    // RFC 5280 §5.1.2.4: UTCTime before 2050; whole seconds only.
    expect(crlTbs[3]).toBeInstanceOf(asn1js.UTCTime);
    expect(crlTbs[4]).toBeInstanceOf(asn1js.UTCTime);
    const asn1 = (await openssl(["asn1parse", "-inform", "DER", "-in", files.der])).stdout;
    // invalidityDate's extnValue: GeneralizedTime "20250102030405Z", no fractional seconds.
    expect(asn1).toContain(`[HEX DUMP]:180F${Buffer.from("20250102030405Z").toString("hex").toUpperCase()}`);
    expect(asn1).toMatch(/INTEGER\s+:FF01\n/);

    // @peculiar/x509 reads it back.
    const crl = new x509.X509Crl(new Uint8Array(der));
    expect(crl.issuer).toBe(ca.root.certificate.subject);
    expect(crl.thisUpdate.getTime() % 1000).toBe(0);
    expect(await crl.verify({ publicKey: ca.root.certificate.publicKey })).toBe(true);
    expect(crl.entries).toHaveLength(2);
    expect(normalizeSerial(crl.entries[0]!.serialNumber)).toBe(leaf.serial);
    expect(crl.entries[0]!.reason).toBe(CRLReason.keyCompromise);
    expect(crl.entries[0]!.invalidity?.toISOString()).toBe("2025-01-02T03:04:05.000Z");
    expect(crl.entries[0]!.revocationDate.getTime()).toBe(Math.floor(revokedAt.getTime() / 1000) * 1000);
    expect(crl.entries[1]!.extensions).toHaveLength(0);
    expect(crlToPem(der)).toMatch(/^-----BEGIN X509 CRL-----\n[\s\S]+\n-----END X509 CRL-----$/);
  });

  it("makes openssl verify -crl_check reject a revoked (and a held) leaf and accept a good one", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"));
    const revoked = await ca.issueServer({ dnsNames: ["revoked.test"] });
    const held = await ca.issueServer({ dnsNames: ["held.test"] });
    const good = await ca.issueServer({ dnsNames: ["good.test"] });
    const now = new Date();
    const der = await CrlGenerator.create({
      issuer: ca.root,
      entries: [
        { serial: revoked.serial, revocationTime: now, revocationReason: CRLReason.keyCompromise },
        { serial: held.serial, revocationTime: now, revocationReason: CRLReason.certificateHold },
      ],
      crlNumber: 7n,
      ...window(),
    });
    const files = await writeCrl("ca", der);
    const check = (cert: string): Promise<Ran & { all: string }> =>
      openssl(["verify", "-crl_check", "-CAfile", ca.rootFile, "-CRLfile", files.pem, cert]);

    const bad = await check(revoked.certFile);
    console.log(`openssl verify -crl_check (revoked): exit ${bad.code}: ${bad.all.trim()}`);
    expect(bad.all).toContain("certificate revoked");
    expect(bad.code).not.toBe(0);

    const onHold = await check(held.certFile);
    console.log(`openssl verify -crl_check (held): exit ${onHold.code}: ${onHold.all.trim()}`);
    expect(onHold.all).toContain("certificate revoked");
    expect(onHold.code).not.toBe(0);

    const ok = await check(good.certFile);
    console.log(`openssl verify -crl_check (good): exit ${ok.code}: ${ok.all.trim()}`);
    expect(ok.stdout).toContain(`${good.certFile}: OK`);
    expect(ok.code).toBe(0);

    const text = (await openssl(["crl", "-in", files.pem, "-noout", "-text"])).stdout;
    expect(text).toContain("Certificate Hold");
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*7\n/);
  });

  it("writes a delta CRL with a critical Delta CRL Indicator and removeFromCRL entries", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"));
    const released = await ca.issueServer({ dnsNames: ["released.test"] });
    const revoked = await ca.issueServer({ dnsNames: ["revoked.test"] });
    const big = 2n ** 64n + 5n;
    const der = await CrlGenerator.create({
      issuer: ca.root,
      entries: [
        { serial: released.serial, revocationTime: new Date(), revocationReason: CRLReason.removeFromCRL },
        { serial: revoked.serial, revocationTime: new Date(), revocationReason: CRLReason.cessationOfOperation },
      ],
      crlNumber: big,
      deltaBaseCrlNumber: big - 1n,
      ...window(),
    });
    const files = await writeCrl("delta", der);

    const verify = await openssl(["crl", "-in", files.pem, "-CAfile", ca.rootFile, "-noout"]);
    expect(verify.code).toBe(0);
    expect(verify.all).toContain("verify OK");
    const text = (await openssl(["crl", "-inform", "DER", "-in", files.der, "-noout", "-text"])).stdout;
    console.log(`openssl crl -text (delta):\n${text.split("Signature Value")[0]}`);
    expect(text).toMatch(new RegExp(`X509v3 Delta CRL Indicator: critical\\s*\\n\\s*${big - 1n}\\n`));
    expect(text).toMatch(new RegExp(`X509v3 CRL Number:\\s*\\n\\s*${big}\\n`));
    expect(text).toMatch(/X509v3 CRL Reason Code:\s*\n\s*Remove From CRL/);
    expect(text).toMatch(/X509v3 CRL Reason Code:\s*\n\s*Cessation Of Operation/);

    const crl = new x509.X509Crl(new Uint8Array(der));
    const indicator = crl.getExtension("2.5.29.27");
    expect(indicator?.critical).toBe(true);
    expect(crl.entries.map((e) => e.reason)).toEqual([CRLReason.removeFromCRL, CRLReason.cessationOfOperation]);
  });

  it("rejects what RFC 5280 forbids", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"));
    const base = { issuer: ca.root, entries: [] as CrlEntryParams[], crlNumber: 2n, ...window() };
    const invalid = { code: "OCSP_LAB_CA_INVALID_ARGUMENT" };
    const entry = (serial: string, reason?: CRLReason): CrlEntryParams => ({
      serial,
      revocationTime: new Date(),
      revocationReason: reason,
    });

    // removeFromCRL only in delta CRLs (§5.3.1).
    await expect(CrlGenerator.create({ ...base, entries: [entry("01", CRLReason.removeFromCRL)] })).rejects.toMatchObject(
      invalid,
    );
    await expect(CrlGenerator.create({ ...base, entries: [entry("01"), entry("0x01")] })).rejects.toMatchObject(invalid);
    await expect(CrlGenerator.create({ ...base, entries: [entry("01", 7 as CRLReason)] })).rejects.toMatchObject(invalid);
    // The old name of revocationReason, from an untyped caller: refused, not silently dropped.
    const oldName = { serial: "01", revocationTime: new Date(), reason: CRLReason.keyCompromise } as unknown as CrlEntryParams;
    await expect(CrlGenerator.create({ ...base, entries: [oldName] })).rejects.toMatchObject(invalid);
    await expect(CrlGenerator.create({ ...base, entries: [entry("zz")] })).rejects.toMatchObject({
      code: "OCSP_LAB_CA_INVALID_SERIAL",
    });
    // CRLNumber ::= INTEGER (0..MAX), at most 20 octets (§5.2.3).
    await expect(CrlGenerator.create({ ...base, crlNumber: -1n })).rejects.toMatchObject(invalid);
    await expect(CrlGenerator.create({ ...base, crlNumber: 2n ** 159n })).rejects.toMatchObject(invalid);
    // BaseCRLNumber may equal the CRL Number (issued together) but not exceed it (§5.2.4).
    await expect(CrlGenerator.create({ ...base, deltaBaseCrlNumber: base.crlNumber + 1n })).rejects.toMatchObject(invalid);
    await expect(CrlGenerator.create({ ...base, nextUpdate: base.thisUpdate })).rejects.toMatchObject(invalid);
    await expect(CrlGenerator.create({ ...base, thisUpdate: new Date(Number.NaN) })).rejects.toMatchObject(invalid);
    const wrongKey: Signer = { ...ca.root, keyType: "rsa-2048" };
    await expect(CrlGenerator.create({ ...base, issuer: wrongKey })).rejects.toMatchObject(invalid);

    // The largest legal number, an empty CRL and GeneralizedTime from 2050 (§5.1.2.4) all work.
    const der = await CrlGenerator.create({
      ...base,
      crlNumber: 2n ** 159n - 1n,
      nextUpdate: new Date(Date.UTC(2050, 0, 1, 0, 0, 0, 500)),
    });
    const files = await writeCrl("edge", der);
    expect((await openssl(["crl", "-in", files.pem, "-CAfile", ca.rootFile, "-noout"])).all).toContain("verify OK");
    const tbs = tbsChildren(der);
    expect(tbs[3]).toBeInstanceOf(asn1js.UTCTime);
    expect(tbs[4]).toBeInstanceOf(asn1js.GeneralizedTime);
    // No revokedCertificates when empty (§5.1.2.6): the next element is [0] crlExtensions.
    expect(tbs[5]!.idBlock.tagClass).toBe(3);
    expect((await openssl(["asn1parse", "-inform", "DER", "-in", files.der])).stdout).toContain(
      "GENERALIZEDTIME   :20500101000000Z",
    );
    expect(new x509.X509Crl(new Uint8Array(der)).entries).toHaveLength(0);
  });
});

describe("CrlGenerator (RSA-2048 CA)", () => {
  it("signs with sha256WithRSAEncryption and openssl verifies and honours it", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"), { keyType: "rsa-2048" });
    const revoked = await ca.issueServer({ dnsNames: ["revoked.test"] });
    const good = await ca.issueServer({ dnsNames: ["good.test"] });
    const der = await CrlGenerator.create({
      issuer: ca.root,
      entries: [
        {
          serial: revoked.serial,
          revocationTime: new Date(),
          revocationReason: CRLReason.keyCompromise,
          invalidityDate: new Date(),
        },
      ],
      crlNumber: 1n,
      ...window(),
    });
    const files = await writeCrl("rsa", der);

    const verify = await openssl(["crl", "-in", files.pem, "-CAfile", ca.rootFile, "-noout"]);
    console.log(`openssl crl -CAfile (RSA): exit ${verify.code}: ${verify.all.trim()}`);
    expect(verify.code).toBe(0);
    expect(verify.all).toContain("verify OK");
    const text = (await openssl(["crl", "-inform", "DER", "-in", files.der, "-noout", "-text"])).stdout;
    expect(text).toContain("Signature Algorithm: sha256WithRSAEncryption");
    for (const s of ["CRL Number", "Authority Key Identifier", "Key Compromise", "Invalidity Date"]) expect(text).toContain(s);
    // RFC 4055 §5: the parameters of sha256WithRSAEncryption MUST be NULL.
    const parsed = pkijs.CertificateRevocationList.fromBER(new Uint8Array(der));
    expect(parsed.signatureAlgorithm.algorithmParams).toBeInstanceOf(asn1js.Null);
    expect(parsed.signature.algorithmParams).toBeInstanceOf(asn1js.Null);

    const bad = await openssl(["verify", "-crl_check", "-CAfile", ca.rootFile, "-CRLfile", files.pem, revoked.certFile]);
    console.log(`openssl verify -crl_check (RSA, revoked): exit ${bad.code}: ${bad.all.trim()}`);
    expect(bad.all).toContain("certificate revoked");
    expect(bad.code).not.toBe(0);
    const ok = await openssl(["verify", "-crl_check", "-CAfile", ca.rootFile, "-CRLfile", files.pem, good.certFile]);
    console.log(`openssl verify -crl_check (RSA, good): exit ${ok.code}: ${ok.all.trim()}`);
    expect(ok.stdout).toContain(`${good.certFile}: OK`);
    expect(ok.code).toBe(0);
  });
});

describe("CrlGenerator (large CRL)", () => {
  it("generates a CRL with 10,000 entries", async () => {
    const ca = await CertificateAuthority.init(join(dir, "state"));
    const reasons = [CRLReason.keyCompromise, CRLReason.superseded, CRLReason.unspecified, CRLReason.cessationOfOperation];
    const now = Date.now();
    const entries: CrlEntryParams[] = Array.from({ length: 10_000 }, (_, i) => ({
      serial: newSerial(),
      revocationTime: new Date(now - i * 1000),
      revocationReason: reasons[i % reasons.length],
      invalidityDate: i % 10 === 0 ? new Date(now - i * 2000) : undefined,
    }));

    const started = performance.now();
    const der = await CrlGenerator.create({ issuer: ca.root, entries, crlNumber: 42n, ...window() });
    const elapsedMs = performance.now() - started;
    console.log(`10,000-entry CRL: ${der.byteLength} bytes DER, generated in ${elapsedMs.toFixed(0)} ms`);

    // new x509.X509Crl(der) cannot read it: @peculiar/x509 1.14.3 parses with asn1js 3.1's
    // default limit of 10,000 nodes ("Maximum ASN.1 node count exceeded"). Parse with a higher limit.
    const parsed = asn1js.fromBER(der, { maxNodes: 1_000_000 });
    expect(parsed.offset).not.toBe(-1);
    const crl = new pkijs.CertificateRevocationList({ schema: parsed.result });
    expect(crl.revokedCertificates).toHaveLength(10_000);
    expect(hex(crl.revokedCertificates![9_999]!.userCertificate.valueBlock.valueHexView)).toBe(entries[9_999]!.serial);

    const files = await writeCrl("big", der);
    const verify = await openssl(["crl", "-in", files.pem, "-CAfile", ca.rootFile, "-noout"]);
    expect(verify.all).toContain("verify OK");
    const text = (await openssl(["crl", "-inform", "DER", "-in", files.der, "-noout", "-text"])).stdout;
    expect(text.match(/Serial Number:/g)).toHaveLength(10_000);
  });
});
