/**
 * The nonce path's encoder and decoder (OcspResponseSigner, OcspRequestDecoder,
 * parseOcspRequest) against the references: pkijs decodes what they produce, the library's
 * verifyOcspResponse and `openssl ocsp -VAfile` accept it, and OcspResponseGenerator (pkijs'
 * encoder) produces the same bytes for the same input.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { webcrypto } from "node:crypto";
import { join } from "node:path";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { CertificateAuthority, type IssuedCertificate, type KeyType, type Signer } from "@ocsp-lab/ca";
import {
  CRLReason,
  OID,
  OcspDecodeError,
  OcspRequestDecoder,
  OcspResponse,
  OcspResponseGenerator,
  OcspResponseSigner,
  buildOcspRequest,
  createCertId,
  parseOcspRequest,
  toPkiCertificate,
  verifyOcspResponse,
  type CertIdHash,
  type CertStatus,
  type EncodedSingleResponseParams,
} from "@ocsp-lab/ocsp";
import { itWithPeer, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("ocsp-lab-signer-"));
});
afterAll(async () => {
  await cleanup?.();
});

/** A DER OCSPRequest for several certificates (each with its CertID hash) and an optional nonce, built with pkijs. */
async function requestFor(ca: CertificateAuthority, certs: { cert: IssuedCertificate; hash: CertIdHash }[], nonce?: Uint8Array) {
  const issuer = toPkiCertificate(ca.root.certificate);
  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = await Promise.all(
    certs.map(
      async ({ cert, hash }) =>
        new pkijs.Request({ reqCert: await createCertId(toPkiCertificate(cert.certificate), issuer, hash) }),
    ),
  );
  if (nonce) {
    request.tbsRequest.requestExtensions = [
      new pkijs.Extension({ extnID: OID.ocspNonce, extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(false) }),
    ];
  }
  return new Uint8Array(request.toSchema(true).toBER(false));
}

const nonceOf = (byte: number, length = 32) => new Uint8Array(length).fill(byte);

/** `openssl ocsp -reqin … -respin … -VAfile <signer>` with `-cert` per certificate (each after its CertID hash option). */
async function opensslCheck(
  ca: CertificateAuthority,
  tag: string,
  requestDer: Uint8Array,
  answerDer: Uint8Array,
  certs: { cert: IssuedCertificate; hash: CertIdHash }[],
) {
  const req = join(dir, `${tag}.req`);
  const resp = join(dir, `${tag}.resp`);
  await fs.writeFile(req, requestDer);
  await fs.writeFile(resp, answerDer);
  const ids = certs.flatMap(({ cert, hash }) => [`-${hash.replace("-", "").toLowerCase()}`, "-cert", cert.certFile]);
  // -no_nonce: openssl would put a nonce of its own into the request read; it still compares the request's with the answer's.
  const args = [
    "ocsp",
    "-reqin",
    req,
    "-respin",
    resp,
    "-VAfile",
    ca.ocspSignerFile,
    "-issuer",
    ca.rootFile,
    ...ids,
    "-no_nonce",
  ];
  return run("openssl", args);
}

describe.each<KeyType>(["ecdsa-p256", "rsa-2048"])("OcspResponseSigner with a %s delegated signer", (keyType) => {
  let ca: CertificateAuthority;
  let good: IssuedCertificate;
  let revoked: IssuedCertificate;
  let onHold: IssuedCertificate;
  let other: IssuedCertificate;
  let signer: Signer;
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const nextUpdate = new Date(now.getTime() + 3_600_000);
  const revokedAt = new Date(now.getTime() - 86_400_000);

  beforeAll(async () => {
    ca = await CertificateAuthority.init(join(dir, keyType), { keyType });
    [good, revoked, onHold, other] = await Promise.all([ca.issueServer(), ca.issueServer(), ca.issueServer(), ca.issueServer()]);
    signer = ca.ocspSigner;
  });
  afterAll(() => ca?.close());

  const single = (certId: Uint8Array, status: CertStatus): EncodedSingleResponseParams => ({
    certId,
    status,
    thisUpdate: now,
    nextUpdate,
  });

  itWithPeer("openssl")(
    "signs a nonce answer that pkijs decodes, verifyOcspResponse accepts and openssl ocsp verifies",
    async () => {
      const built = await buildOcspRequest({
        certificate: toPkiCertificate(good.certificate),
        issuer: toPkiCertificate(ca.root.certificate),
        hash: "SHA-256",
        nonce: true,
      });
      const request = parseOcspRequest(built.der);
      expect(request.nonce).toEqual(built.nonce);
      const s = await OcspResponseSigner.for(signer);
      const der = await s.sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses: [single(request.certIdDers[0]!, { status: "good" })],
      });

      const decoded = OcspResponse.fromDer(der);
      expect(decoded.responseStatus).toBe(0);
      expect(decoded.nonce).toEqual(built.nonce);
      expect(decoded.responses).toHaveLength(1);
      expect(decoded.responses[0]).toMatchObject({ status: "good", thisUpdate: now, nextUpdate, certId: request.certIds[0] });
      expect(decoded.certificates.map((c) => c.serialNumber)).toEqual([signer.certificate.serialNumber]);
      const verified = await verifyOcspResponse(der, {
        certificate: good.certificate,
        issuer: ca.root.certificate,
        now,
        nonce: built.nonce!,
      });
      expect(verified).toMatchObject({ status: "good", signer: "delegated" });

      const r = await opensslCheck(ca, `${keyType}-one`, built.der, der, [{ cert: good, hash: "SHA-256" }]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("Response verify OK");
      expect(r.stderr).not.toMatch(/nonce/i);
      expect(r.stdout).toContain(`${good.certFile}: good`);
    },
  );

  itWithPeer("openssl")(
    "answers several CertIDs, SHA-1 and SHA-256, good, revoked with a reason, on hold, revoked without one and unknown, in order",
    async () => {
      const certs = [
        { cert: good, hash: "SHA-1" as const },
        { cert: revoked, hash: "SHA-256" as const },
        { cert: onHold, hash: "SHA-1" as const },
        { cert: other, hash: "SHA-256" as const },
      ];
      const statuses: CertStatus[] = [
        { status: "good" },
        { status: "revoked", revocationTime: revokedAt, revocationReason: CRLReason.keyCompromise },
        { status: "revoked", revocationTime: revokedAt, revocationReason: CRLReason.certificateHold },
        { status: "unknown" },
      ];
      const nonce = nonceOf(7);
      const requestDer = await requestFor(ca, certs, nonce);
      const request = parseOcspRequest(requestDer);
      expect(request.certIds.map((c) => c.hash)).toEqual(["SHA-1", "SHA-256", "SHA-1", "SHA-256"]);
      const s = await OcspResponseSigner.for(signer);
      const der = await s.sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses: request.certIdDers.map((id, i) => single(id, statuses[i]!)),
      });
      const decoded = OcspResponse.fromDer(der);
      expect(decoded.nonce).toEqual(nonce);
      expect(decoded.responses.map((r) => r.certId)).toEqual(request.certIds);
      expect(decoded.responses.map((r) => r.status)).toEqual(["good", "revoked", "revoked", "unknown"]);
      expect(decoded.responses[1]).toMatchObject({ revocationTime: revokedAt, revocationReason: CRLReason.keyCompromise });
      expect(decoded.responses[2]).toMatchObject({ revocationReason: CRLReason.certificateHold });

      const r = await opensslCheck(ca, `${keyType}-many`, requestDer, der, certs);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("Response verify OK");
      expect(r.stdout).toContain(`${good.certFile}: good`);
      expect(r.stdout).toMatch(new RegExp(`${revoked.certFile}: revoked[\\s\\S]*Reason: keyCompromise`));
      expect(r.stdout).toMatch(new RegExp(`${onHold.certFile}: revoked[\\s\\S]*Reason: certificateHold`));
      expect(r.stdout).toContain(`${other.certFile}: unknown`);

      // The same without a reason: RevokedInfo without its [0] revocationReason.
      const plain = await s.sign({
        producedAt: now,
        responses: [single(request.certIdDers[1]!, { status: "revoked", revocationTime: revokedAt })],
      });
      const view = OcspResponse.fromDer(plain).responses[0]!;
      expect(view).toMatchObject({ status: "revoked", revocationTime: revokedAt });
      expect(view.status === "revoked" && view.revocationReason).toBeUndefined();
    },
  );

  it("encodes what OcspResponseGenerator (pkijs) encodes, for the first answer of a second and the next ones with other nonces", async () => {
    const s = await OcspResponseSigner.for(signer);
    const certs = [
      { cert: good, hash: "SHA-1" as const },
      { cert: revoked, hash: "SHA-256" as const },
    ];
    const statuses: CertStatus[] = [
      { status: "good" },
      { status: "revoked", revocationTime: revokedAt, revocationReason: CRLReason.superseded },
    ];
    // Nonces of other lengths too: a nonce of another length must not reuse an encoding.
    for (const [i, nonce] of [nonceOf(1), nonceOf(2), nonceOf(3, 16), nonceOf(4), nonceOf(5, 16)].entries()) {
      const request = parseOcspRequest(await requestFor(ca, certs, nonce));
      const responses = request.certIdDers.map((id, k) => single(id, statuses[k]!));
      const ours = await s.sign({ producedAt: now, nonceExtension: request.nonceExtension!, responses });
      const theirs = await OcspResponseGenerator.create({
        signer,
        producedAt: now,
        nonceExtension: pkijs.Extension.fromBER(request.nonceExtension!.slice().buffer),
        responses: responses.map((r) => ({ ...r, certId: pkijs.CertID.fromBER(r.certId.slice().buffer) })),
      });
      if (keyType.startsWith("rsa")) {
        // PKCS#1 v1.5 signatures are deterministic: the whole answer is the same.
        expect(Buffer.from(ours).equals(Buffer.from(theirs)), `answer ${i}`).toBe(true);
      } else {
        // ECDSA signs with a fresh k: everything but the signature is the same.
        const a = basicOf(ours);
        const b = basicOf(theirs);
        expect(a.tbs.equals(b.tbs), `answer ${i}`).toBe(true);
        expect(a.algorithm.equals(b.algorithm)).toBe(true);
        expect(a.certs.equals(b.certs)).toBe(true);
      }
      expect(OcspResponse.fromDer(ours).nonce).toEqual(nonce);
    }
  });

  it("encodes what OcspResponseGenerator encodes for the answers of one second about other certificates and statuses of the same lengths", async () => {
    const s = await OcspResponseSigner.for(signer);
    // good and unknown SingleResponses have the same length (80 00, 82 00): the layout of the
    // first answer is reused for every other one, each with its own CertID, status and nonce.
    const cases: [IssuedCertificate, CertStatus][] = [
      [good, { status: "good" }],
      [other, { status: "unknown" }],
      [onHold, { status: "good" }],
      [revoked, { status: "revoked", revocationTime: revokedAt, revocationReason: CRLReason.keyCompromise }],
      [good, { status: "unknown" }],
      [revoked, { status: "revoked", revocationTime: revokedAt, revocationReason: CRLReason.cessationOfOperation }],
    ];
    for (const [i, [cert, status]] of cases.entries()) {
      const nonce = nonceOf(10 + i);
      const request = parseOcspRequest(await requestFor(ca, [{ cert, hash: "SHA-1" }], nonce));
      const responses = [single(request.certIdDers[0]!, status)];
      const ours = await s.sign({ producedAt: now, nonceExtension: request.nonceExtension!, responses });
      const theirs = await OcspResponseGenerator.create({
        signer,
        producedAt: now,
        nonceExtension: pkijs.Extension.fromBER(request.nonceExtension!.slice().buffer),
        responses: responses.map((r) => ({ ...r, certId: pkijs.CertID.fromBER(r.certId.slice().buffer) })),
      });
      expect(basicOf(ours).tbs.equals(basicOf(theirs).tbs), `answer ${i}`).toBe(true);
      const decoded = OcspResponse.fromDer(ours);
      expect(decoded.nonce).toEqual(nonce);
      expect(decoded.responses[0]).toMatchObject({ certId: request.certIds[0], status: status.status });
    }
  });

  itWithPeer("openssl")(
    "signs as asked: byName, without certs, with an extra critical extension, a tampered signature, RSA-PSS",
    async () => {
      const built = await buildOcspRequest({
        certificate: toPkiCertificate(good.certificate),
        issuer: toPkiCertificate(ca.root.certificate),
        nonce: true,
      });
      const request = parseOcspRequest(built.der);
      const responses = [single(request.certIdDers[0]!, { status: "good" })];
      const check = async (tag: string, der: Uint8Array) =>
        opensslCheck(ca, `${keyType}-${tag}`, built.der, der, [{ cert: good, hash: "SHA-1" }]);

      const byName = await (await OcspResponseSigner.for(signer, { responderId: "byName" })).sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses,
      });
      expect(OcspResponse.fromDer(byName).responderId).toEqual({ byName: signer.certificate.subject });
      expect((await check("byname", byName)).stderr).toContain("Response verify OK");

      const s = await OcspResponseSigner.for(signer);
      const bare = await s.sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses,
        includeSignerCertificate: false,
      });
      expect(OcspResponse.fromDer(bare).certificates).toEqual([]);
      expect((await check("nocerts", bare)).stderr).toContain("Response verify OK");

      const critical = new Uint8Array(
        new pkijs.Extension({ extnID: "1.3.6.1.4.1.55555.1", critical: true, extnValue: new asn1js.Null().toBER(false) })
          .toSchema()
          .toBER(false),
      );
      const flagged = await s.sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses,
        extraExtensions: [critical],
      });
      const extensions = OcspResponse.fromDer(flagged).basic!.tbsResponseData.responseExtensions!;
      expect(extensions.map((e) => [e.extnID, e.critical])).toEqual([
        [OID.ocspNonce, false],
        ["1.3.6.1.4.1.55555.1", true],
      ]);

      const tampered = await s.sign({
        producedAt: now,
        nonceExtension: request.nonceExtension!,
        responses,
        tamperSignature: true,
      });
      const refused = await check("tampered", tampered);
      expect(refused.code).not.toBe(0);
      expect(`${refused.stdout}${refused.stderr}`).toMatch(/verify fail|signature failure|bad signature/i);

      if (keyType.startsWith("rsa")) {
        const pss = await (await OcspResponseSigner.for(signer, { rsaPss: true })).sign({
          producedAt: now,
          nonceExtension: request.nonceExtension!,
          responses,
        });
        expect(OcspResponse.fromDer(pss).basic!.signatureAlgorithm.algorithmId).toBe("1.2.840.113549.1.1.10");
        const r = await check("pss", pss);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toContain("Response verify OK");
      }
    },
  );

  it("signs through an injected Crypto (WebCrypto through pkijs' engine instead of node:crypto)", async () => {
    const injected = {
      subtle: webcrypto.subtle,
      getRandomValues: webcrypto.getRandomValues.bind(webcrypto),
    } as unknown as Crypto;
    const s = await OcspResponseSigner.for(signer, { crypto: injected, rsaPss: true });
    expect(s).not.toBe(await OcspResponseSigner.for(signer, { rsaPss: true }));
    const request = parseOcspRequest(await requestFor(ca, [{ cert: good, hash: "SHA-256" }], nonceOf(42)));
    const der = await s.sign({
      producedAt: now,
      nonceExtension: request.nonceExtension!,
      responses: [single(request.certIdDers[0]!, { status: "good" })],
    });
    const verified = await verifyOcspResponse(der, {
      certificate: good.certificate,
      issuer: ca.root.certificate,
      now,
      nonce: nonceOf(42),
    });
    expect(verified.status).toBe("good");
  });

  it("signs concurrent answers in parallel, each with its own nonce", async () => {
    const s = await OcspResponseSigner.for(signer);
    const requests = await Promise.all(
      Array.from({ length: 16 }, (_, i) => requestFor(ca, [{ cert: good, hash: "SHA-1" }], nonceOf(i + 1))),
    );
    const answers = await Promise.all(
      requests.map((der) => {
        const request = parseOcspRequest(der);
        return s.sign({
          producedAt: now,
          nonceExtension: request.nonceExtension!,
          responses: [single(request.certIdDers[0]!, { status: "good" })],
        });
      }),
    );
    for (const [i, der] of answers.entries()) {
      const verified = await verifyOcspResponse(der, {
        certificate: good.certificate,
        issuer: ca.root.certificate,
        now,
        nonce: nonceOf(i + 1),
      });
      expect(verified.status).toBe("good");
    }
  });
});

/** The parts of a BasicOCSPResponse as DER: tbsResponseData, signatureAlgorithm, certs. */
function basicOf(der: Uint8Array): { tbs: Buffer; algorithm: Buffer; certs: Buffer } {
  const basic = OcspResponse.fromDer(der).basic!;
  return {
    tbs: Buffer.from(basic.tbsResponseData.toSchema().toBER(false)),
    algorithm: Buffer.from(basic.signatureAlgorithm.toSchema().toBER(false)),
    certs: Buffer.concat((basic.certs ?? []).map((c) => Buffer.from(c.toSchema().toBER(false)))),
  };
}

describe("parseOcspRequest and OcspRequestDecoder", () => {
  let ca: CertificateAuthority;
  let leaf: IssuedCertificate;
  let other: IssuedCertificate;

  beforeAll(async () => {
    ca = await CertificateAuthority.init(join(dir, "decoder"));
    [leaf, other] = await Promise.all([ca.issueServer(), ca.issueServer()]);
  });
  afterAll(() => ca?.close());

  it("reads CertIDs, the nonce extension and the nonce as received", async () => {
    const nonce = nonceOf(9, 20);
    const der = await requestFor(
      ca,
      [
        { cert: leaf, hash: "SHA-1" },
        { cert: other, hash: "SHA-512" },
      ],
      nonce,
    );
    const parsed = parseOcspRequest(der);
    expect(parsed.certIds.map((c) => [c.serial, c.hash])).toEqual([
      [leaf.serial, "SHA-1"],
      [other.serial, "SHA-512"],
    ]);
    expect(parsed.nonce).toEqual(nonce);
    expect(Buffer.from(der).subarray(parsed.nonceOffset!, parsed.nonceOffset! + 20)).toEqual(Buffer.from(nonce));
    // The nonce extension and each CertID exactly as sent.
    const pk = pkijs.OCSPRequest.fromBER(der.slice().buffer);
    expect(Buffer.from(parsed.nonceExtension!)).toEqual(
      Buffer.from(pk.tbsRequest.requestExtensions![0]!.toSchema().toBER(false)),
    );
    expect(parsed.certIdDers.map((d) => Buffer.from(d))).toEqual(
      pk.tbsRequest.requestList.map((r) => Buffer.from(r.reqCert.toSchema().toBER(false))),
    );
    expect(parsed.signed).toBe(false);
  });

  it("refuses what is not an OCSPRequest: a CertID under another tag, trailing bytes, an empty list, an empty serial", async () => {
    const der = await requestFor(ca, [{ cert: leaf, hash: "SHA-1" }]);
    const parsed = parseOcspRequest(der);
    const certIdAt = Buffer.from(der).indexOf(Buffer.from(parsed.certIdDers[0]!));
    const retagged = der.slice();
    retagged[certIdAt] = 0xbc; // [28] constructed instead of SEQUENCE: asn1-schema accepted this
    expect(() => parseOcspRequest(retagged)).toThrow(OcspDecodeError);
    expect(() => parseOcspRequest(new Uint8Array([...der, 0]))).toThrow(/trailing/);
    expect(() => parseOcspRequest(Uint8Array.of(0x30, 0x04, 0x30, 0x02, 0x30, 0x00))).toThrow(/empty requestList/);
    const emptySerial = new pkijs.OCSPRequest();
    const id = parsed.certIdDers[0]!;
    const certId = pkijs.CertID.fromBER(id.slice().buffer);
    certId.serialNumber = new asn1js.Integer({ valueHex: new ArrayBuffer(0) });
    emptySerial.tbsRequest.requestList = [new pkijs.Request({ reqCert: certId })];
    expect(() => parseOcspRequest(new Uint8Array(emptySerial.toSchema(true).toBER(false)))).toThrow(/empty serialNumber/);
  });

  it("decodes a request repeated with another nonce as parseOcspRequest does, and anything else in full", async () => {
    const decoder = new OcspRequestDecoder();
    const certs = [{ cert: leaf, hash: "SHA-1" as const }];
    const first = await requestFor(ca, certs, nonceOf(1));
    expect(decoder.decode(first)).toEqual(parseOcspRequest(first));
    for (const der of [
      await requestFor(ca, certs, nonceOf(2)), // same request, another nonce
      await requestFor(ca, certs, nonceOf(3)),
      await requestFor(ca, [{ cert: other, hash: "SHA-1" }], nonceOf(2)), // same length, another serial
      await requestFor(ca, certs, nonceOf(4, 31)), // another nonce length
      await requestFor(ca, certs), // no nonce
    ]) {
      const expected = parseOcspRequest(der);
      const got = decoder.decode(der);
      expect(got).toEqual(expected);
      expect(got.nonce).toEqual(expected.nonce);
    }
    // One bit off outside the nonce (the serial's last octet, the end of the CertID): not the
    // remembered request, decoded in full; and a structure broken there is refused.
    const again = await requestFor(ca, certs, nonceOf(5));
    const certId = parseOcspRequest(again).certIdDers[0]!;
    const serialEnd = Buffer.from(again).indexOf(Buffer.from(certId)) + certId.byteLength - 1;
    const otherSerial = again.slice();
    otherSerial[serialEnd]! ^= 0x01;
    const read = decoder.decode(otherSerial);
    expect(read).toEqual(parseOcspRequest(otherSerial));
    expect(read.certIds[0]!.serial).not.toBe(leaf.serial);
    const broken = again.slice();
    broken[serialEnd - certId.byteLength + 1] = 0x31; // the CertID as a SET
    expect(() => decoder.decode(broken)).toThrow(OcspDecodeError);
    // A nonce put raw in extnValue (older clients) is read as it is, and not remembered as a template.
    const raw = new pkijs.OCSPRequest();
    raw.tbsRequest.requestList = [
      new pkijs.Request({
        reqCert: await createCertId(toPkiCertificate(leaf.certificate), toPkiCertificate(ca.root.certificate)),
      }),
    ];
    raw.tbsRequest.requestExtensions = [new pkijs.Extension({ extnID: OID.ocspNonce, extnValue: nonceOf(0xaa, 16).buffer })];
    const rawDer = new Uint8Array(raw.toSchema(true).toBER(false));
    const parsedRaw = decoder.decode(rawDer);
    expect(parsedRaw.nonce).toEqual(nonceOf(0xaa, 16));
    expect(parsedRaw.nonceOffset).toBeUndefined();
    const rawAgain = rawDer.slice();
    rawAgain.fill(0x04, rawAgain.length - 16, rawAgain.length - 15); // now reads as a nested OCTET STRING header
    expect(decoder.decode(rawAgain)).toEqual(parseOcspRequest(rawAgain));
  });
});
