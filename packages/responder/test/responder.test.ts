import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import {
  CRLReason,
  OCSPResponseStatus,
  OcspResponse,
  buildOcspRequest,
  toPkiCertificate,
  verifyOcspResponse,
} from "@ocsp-lab/ocsp";
import { InvalidBehaviourError, OcspResponder, decodeGetPath, type StartedOcspResponder } from "@ocsp-lab/responder";
import { eventually, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let good: IssuedCertificate;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  responder = await (await OcspResponder.forCa(ca)).start();
  good = await ca.issueServer({ ocspUrl: responder.url });
});
afterAll(async () => {
  await responder.stop();
  await cleanup();
});
afterEach(() => responder.behaviour.reset());

/** `openssl ocsp` against the responder: POST, nonce, verification against the root. */
async function opensslOcsp(cert: IssuedCertificate, digest: string[] = []) {
  return run("openssl", [
    "ocsp",
    "-issuer",
    ca.rootFile,
    ...digest,
    "-cert",
    cert.certFile,
    "-url",
    responder.url,
    "-CAfile",
    ca.rootFile,
  ]);
}

async function requestDer(cert: IssuedCertificate, issuerCa = ca, nonce = false): Promise<Uint8Array> {
  return (
    await buildOcspRequest({
      certificate: toPkiCertificate(cert.certificate),
      issuer: toPkiCertificate(issuerCa.root.certificate),
      nonce,
    })
  ).der;
}

async function post(body: Uint8Array | string, contentType = "application/ocsp-request"): Promise<Response> {
  return fetch(responder.url, {
    method: "POST",
    body: typeof body === "string" ? body : Buffer.from(body),
    headers: { "Content-Type": contentType },
  });
}

async function statusOf(res: Response): Promise<OCSPResponseStatus> {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/ocsp-response");
  return OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer())).responseStatus;
}

describe("openssl ocsp against the responder", () => {
  it("verifies a good certificate, with the nonce echoed", async () => {
    const r = await opensslOcsp(good);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stderr + r.stdout).not.toMatch(/WARNING: no nonce/i);
    expect(r.stdout).toContain(`${good.certFile}: good`);
    expect(r.stdout).toMatch(/This Update: .*\n\s+Next Update: /);
  });

  it("verifies a revoked certificate with its reason and time", async () => {
    const leaf = await ca.issueServer({ ocspUrl: responder.url });
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise, time: new Date("2026-03-04T05:06:07Z") });
    const r = await opensslOcsp(leaf);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${leaf.certFile}: revoked`);
    expect(r.stdout).toContain("Reason: keyCompromise");
    expect(r.stdout).toContain("Revocation Time: Mar  4 05:06:07 2026 GMT");
  });

  it("answers unknown for a serial the CA never issued (override) and back to good when cleared", async () => {
    responder.setStatus(good.serial, { status: "unknown" });
    let r = await opensslOcsp(good);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${good.certFile}: unknown`);
    responder.clearStatus(good.serial);
    r = await opensslOcsp(good);
    expect(r.stdout).toContain(`${good.certFile}: good`);
  });

  it("answers CertIDs hashed with SHA-256", async () => {
    const r = await opensslOcsp(good, ["-sha256"]);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${good.certFile}: good`);
    expect(responder.requests({ serial: good.serial }).at(-1)?.hashes).toEqual(["SHA-256"]);
  });

  it("reports tryLater for the next request only when told to", async () => {
    responder.setFault({ kind: "tryLater", count: 1 });
    const failed = await opensslOcsp(good);
    expect(failed.stdout + failed.stderr).toMatch(/Responder Error: trylater \(3\)/);
    const ok = await opensslOcsp(good);
    expect(ok.stdout).toContain(`${good.certFile}: good`);
  });
});

describe("HTTP transport", () => {
  it("answers GET with the URL-encoded base64 request, with RFC 5019 cache headers", async () => {
    const b64 = Buffer.from(await requestDer(good)).toString("base64");
    for (const path of [`/${encodeURIComponent(b64)}`, `//${encodeURIComponent(b64)}`, `/${b64}`]) {
      const res = await fetch(responder.url + path);
      expect(await statusOf(res.clone())).toBe(OCSPResponseStatus.successful);
      const parsed = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
      expect(parsed.responses[0]!.status).toBe("good");
      expect(parsed.responses[0]!.certId.serial).toBe(good.serial);
      expect(res.headers.get("cache-control")).toMatch(/^max-age=\d+, public, no-transform, must-revalidate$/);
    }
  });

  it("answers curl's GET the same as a POST", async () => {
    const b64 = Buffer.from(await requestDer(good)).toString("base64");
    const out = join(dir, "get.der");
    const r = await run("curl", [
      "-sS",
      "-o",
      out,
      "-w",
      "%{http_code} %{content_type}",
      `${responder.url}/${encodeURIComponent(b64)}`,
    ]);
    expect(r.stdout).toBe("200 application/ocsp-response");
    const text = await run("openssl", ["ocsp", "-respin", out, "-resp_text", "-noverify"]);
    expect(text.stdout).toContain("Cert Status: good");
  });

  it.each([
    ["bad URL encoding", "GET", "/%ZZ%zz"],
    ["bad base64", "GET", "/!!!notbase64!!!"],
    ["base64 of bad DER", "GET", `/${encodeURIComponent(Buffer.from("not DER at all").toString("base64"))}`],
    ["empty GET path", "GET", "/"],
    ["empty POST body", "POST", ""],
    ["POST of bad DER", "POST", "\x30\x03\x02"],
    ["POST of an unrelated SEQUENCE", "POST", "\x30\x03\x02\x01\x05"],
  ])("answers %s with malformedRequest, not an HTTP error", async (_name, method, arg) => {
    const res = method === "GET" ? await fetch(responder.url + arg) : await post(Buffer.from(arg, "latin1"));
    expect(await statusOf(res)).toBe(OCSPResponseStatus.malformedRequest);
  });

  it("answers a truncated request with malformedRequest and an oversized body with 413, closing the connection", async () => {
    const der = await requestDer(good);
    expect(await statusOf(await post(der.slice(0, der.length - 3)))).toBe(OCSPResponseStatus.malformedRequest);
    const big = await post(new Uint8Array(70 * 1024));
    expect(big.status).toBe(413);
    expect(big.headers.get("connection")).toBe("close");
    expect(await big.text()).toMatch(/over 65536 bytes/);
  });

  it("answers unauthorized for a certificate of another CA", async () => {
    const other = await CertificateAuthority.init(join(dir, "other"));
    const foreign = await other.issueServer();
    expect(await statusOf(await post(await requestDer(foreign, other)))).toBe(OCSPResponseStatus.unauthorized);
  });

  it("refuses other methods with 405 and an Allow header", async () => {
    const res = await fetch(responder.url, { method: "PUT", body: "x" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, POST");
  });

  it("rejects over-long nonces (RFC 8954: at most 32 octets)", async () => {
    const der = (
      await buildOcspRequest({
        certificate: toPkiCertificate(good.certificate),
        issuer: toPkiCertificate(ca.root.certificate),
        nonce: new Uint8Array(33),
      })
    ).der;
    expect(await statusOf(await post(der))).toBe(OCSPResponseStatus.malformedRequest);
  });
});

describe("the nonce path", () => {
  it("answers 32 concurrent requests for one certificate, each echoing its own nonce, signed, and a revocation right after", async () => {
    const leaf = await ca.issueServer({ ocspUrl: responder.url });
    const built = await Promise.all(
      Array.from({ length: 32 }, () =>
        buildOcspRequest({
          certificate: toPkiCertificate(leaf.certificate),
          issuer: toPkiCertificate(ca.root.certificate),
          nonce: true,
        }),
      ),
    );
    const check = async (status: "good" | "revoked") => {
      const answers = await Promise.all(built.map(async (b) => new Uint8Array(await (await post(b.der)).arrayBuffer())));
      for (const [i, der] of answers.entries()) {
        const verified = await verifyOcspResponse(der, {
          certificate: leaf.certificate,
          issuer: ca.root.certificate,
          now: new Date(),
          nonce: built[i]!.nonce!,
        });
        expect(verified.status).toBe(status);
      }
    };
    await check("good");
    // Reused encodings are per status: a revocation is answered at once, within the same second.
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    await eventually(
      async () => OcspResponse.fromDer(new Uint8Array(await (await post(built[0]!.der)).arrayBuffer())).responses[0]?.status,
      (s) => s === "revoked",
    );
    await check("revoked");
  });
});

describe("CRL distribution point", () => {
  it("serves the CA's full and delta CRLs as DER that openssl verifies, and 404 for other issuers", async () => {
    const leaf = await ca.issueServer({ ocspUrl: responder.url, crlUrl: responder.crlUrl(ca.rootSerial) });
    await ca.revoke(leaf.serial, { reason: CRLReason.affiliationChanged });
    const file = join(dir, "dp.crl");
    const r = await run("curl", ["-sS", "-o", file, "-w", "%{http_code} %{content_type}", responder.crlUrl(ca.rootSerial)]);
    expect(r.stdout).toBe("200 application/pkix-crl");
    const check = await run("openssl", ["crl", "-inform", "DER", "-in", file, "-CAfile", ca.rootFile, "-noout", "-text"]);
    expect(check.stderr + check.stdout).toContain("verify OK");
    expect(check.stdout).toContain(`Serial Number: ${leaf.serial.toUpperCase()}`);
    expect((await fetch(responder.crlUrl(ca.rootSerial, true))).status).toBe(200);
    expect((await fetch(responder.crlUrl("abcdef"))).status).toBe(404);
    expect((await run("openssl", ["x509", "-in", leaf.certFile, "-noout", "-ext", "crlDistributionPoints"])).stdout).toContain(
      `/crl/${ca.rootSerial}.crl`,
    );
  });
});

describe("AIA caIssuers", () => {
  it("serves each issuer's certificate as DER (application/pkix-cert) and PEM; a leaf's caIssuers fetched by curl verifies it", async () => {
    const intermediate = await ca.createIntermediate({
      ocspUrl: responder.url,
      caIssuersUrl: responder.caIssuersUrl(ca.rootSerial),
    });
    const leaf = await ca.issueServer({
      issuer: intermediate.serial,
      ocspUrl: responder.url,
      caIssuersUrl: responder.caIssuersUrl(intermediate.serial),
    });
    await eventually(
      async () => (await fetch(responder.caIssuersUrl(intermediate.serial))).status,
      (s) => s === 200,
    );
    // What a client that fetches a missing issuer does: read the leaf's caIssuers, fetch it, check the signature.
    const aia = leaf.certificate.getExtension(x509.AuthorityInfoAccessExtension)!;
    const url = aia.caIssuers[0]!.value;
    expect(url).toBe(`${responder.url}/ca/${intermediate.serial}.der`);
    const file = join(dir, "issuer.der");
    const r = await run("curl", ["-sS", "-o", file, "-w", "%{http_code} %{content_type}", url]);
    expect(r.stdout).toBe("200 application/pkix-cert");
    const issuer = new x509.X509Certificate(await fs.readFile(file));
    expect(issuer.serialNumber).toBe(intermediate.certificate.serialNumber);
    expect(await leaf.certificate.verify({ publicKey: issuer.publicKey, signatureOnly: true })).toBe(true);
    // openssl reads it as the certificate it is; the root and its PEM too.
    const text = await run("openssl", ["x509", "-inform", "DER", "-in", file, "-noout", "-subject"]);
    expect(text.stdout).toContain(intermediate.certificate.subject.split(",")[0]!.replace("=", " = "));
    const pem = await fetch(`${responder.url}/ca/${ca.rootSerial}.pem`);
    expect(pem.headers.get("content-type")).toMatch(/^application\/x-pem-file/);
    expect(new x509.X509Certificate(await pem.text()).serialNumber).toBe(ca.root.certificate.serialNumber);
    // An issuer not served, or a leaf's serial, is a 404; OCSP GET still goes to the OCSP handler.
    expect((await fetch(responder.caIssuersUrl("abcdef"))).status).toBe(404);
    expect((await fetch(responder.caIssuersUrl(leaf.serial))).status).toBe(404);
    expect((await fetch(`${responder.url}/ca/${ca.rootSerial}.txt`)).status).toBe(404);
    const get = await fetch(`${responder.url}/${Buffer.from(await requestDer(leaf)).toString("base64")}`);
    expect(get.headers.get("content-type")).toBe("application/ocsp-response");
  });
});

describe("behaviour at run time", () => {
  it("drops the connection, answers HTTP 500/503, and logs each fault", async () => {
    responder.setFault({ kind: "close", count: 1 });
    await expect(post(await requestDer(good))).rejects.toThrow();
    responder.setFault({ kind: "http-503", count: 1 });
    const res = await post(await requestDer(good));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    responder.setFault({ kind: "http-500" });
    expect((await post(await requestDer(good))).status).toBe(500);
    expect(responder.behaviour.currentFault).toEqual({ kind: "http-500" });
    responder.setFault(undefined);
    expect(await statusOf(await post(await requestDer(good)))).toBe(OCSPResponseStatus.successful);
    const outcomes = responder
      .requests({ serial: good.serial })
      .slice(-3)
      .map((e) => e.outcome);
    expect(outcomes).toEqual(["fault:http-503", "fault:http-500", "good"]);
  });

  it("validates behaviour values", () => {
    expect(() => responder.setDelay(-1)).toThrow(InvalidBehaviourError);
    expect(() => responder.setFault({ kind: "explode" as never })).toThrow(/explode/);
    expect(() => responder.setFault({ kind: "hang", count: 0 })).toThrow(/count/);
  });

  // The store watch (in @ocsp-lab/ca) runs on real file events: the deadline only bounds a hang.
  it("sees a revocation made in the store by another CA handle", async () => {
    const leaf = await ca.issueServer({ ocspUrl: responder.url });
    ca.watch();
    const writer = await CertificateAuthority.open(ca.stateDir);
    await writer.revoke(leaf.serial, { reason: CRLReason.superseded });
    const status = await eventually(
      async () =>
        OcspResponse.fromDer(new Uint8Array(await (await post(await requestDer(leaf))).arrayBuffer())).responses[0]!.status,
      (st) => st === "revoked",
      10_000,
      "the responder to answer revoked",
    );
    expect(status).toBe("revoked");
  });
});

describe("the answer cache", () => {
  async function get(cert: IssuedCertificate) {
    const b64 = encodeURIComponent(Buffer.from(await requestDer(cert)).toString("base64"));
    const res = await fetch(`${responder.url}/${b64}`);
    const response = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
    const logged = responder.requests({ serial: cert.serial }).at(-1)!;
    return { etag: res.headers.get("etag"), status: response.responses[0]!.status, cached: logged.cached };
  }

  it("keeps the answers about other certificates across a revocation and a new intermediate, and drops only the revoked one's", async () => {
    const a = await ca.issueServer({ ocspUrl: responder.url });
    const b = await ca.issueServer({ ocspUrl: responder.url });
    const first = await get(a);
    expect(first).toMatchObject({ status: "good", cached: false });
    expect(await get(b)).toMatchObject({ status: "good" });

    await ca.revoke(b.serial, { reason: CRLReason.keyCompromise });
    // The same pre-signed answer (same ETag, from the cache): b's revocation says nothing about a.
    expect(await get(a)).toEqual({ ...first, cached: true });
    expect(await get(b)).toMatchObject({ status: "revoked", cached: false });

    await ca.createIntermediate({ commonName: "cache test intermediate" });
    expect(await get(a)).toEqual({ ...first, cached: true });

    await ca.revoke(a.serial, { reason: CRLReason.superseded });
    const revoked = await get(a);
    expect(revoked).toMatchObject({ status: "revoked", cached: false });
    expect(revoked.etag).not.toBe(first.etag);
    expect(await get(a)).toEqual({ ...revoked, cached: true });
  });
});

/**
 * A nonce whose bytes put `+` and `/` in the base64 of any request carrying it, wherever it
 * starts: FB EF BE FB EF BE is "++++++++" when aligned on a 3-byte base64 group, and three
 * 7-byte copies start at the three alignments; six FF bytes contain "////" at every alignment.
 */
const BASE64_SPECIAL_NONCE = Uint8Array.from([
  ...[0, 1, 2].flatMap(() => [0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0x00]),
  ...Array.from({ length: 6 }, () => 0xff),
]);

describe("decodeGetPath", () => {
  it("accepts base64url, unescaped + and + turned into a space", async () => {
    const { der } = await buildOcspRequest({
      certificate: toPkiCertificate(good.certificate),
      issuer: toPkiCertificate(ca.root.certificate),
      nonce: BASE64_SPECIAL_NONCE,
    });
    const b64 = Buffer.from(der).toString("base64");
    expect(b64).toContain("+");
    expect(b64).toContain("/");
    const url = b64.replace(/\+/g, "-").replace(/\//g, "_");
    expect(url).not.toMatch(/[+/]/);
    expect(decodeGetPath(`/${url}`)).toEqual(der);
    expect(decodeGetPath(`/${b64}`)).toEqual(der);
    expect(decodeGetPath(`/${b64.replace(/\+/g, " ")}`)).toEqual(der);
    expect(decodeGetPath("/a")).toBeUndefined();

    // And the responder answers that base64url GET, the nonce echoed.
    const res = await fetch(`${responder.url}/${url}`);
    expect(await statusOf(res.clone())).toBe(OCSPResponseStatus.successful);
    const parsed = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
    expect(parsed.responses[0]!.status).toBe("good");
    expect(parsed.nonce).toEqual(BASE64_SPECIAL_NONCE);
  });
});

it("keeps key files private", async () => {
  expect((await fs.stat(good.keyFile)).mode & 0o777).toBe(0o600);
});
