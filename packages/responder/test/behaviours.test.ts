import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import * as x509 from "@peculiar/x509";
import { CRLReason, OCSPResponseStatus, OID, OcspResponse, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import {
  OcspResponder,
  loadResponderConfig,
  responderMain,
  startFromConfig,
  type StartedOcspResponder,
} from "@ocsp-lab/responder";
import { eventually, inProcess, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let mid: IssuedCertificate;
let deep: IssuedCertificate;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"), { watch: true });
  // Created before the responder starts, so it is served from the first request on (a later one
  // is picked up asynchronously after the store change).
  mid = await ca.createIntermediate();
  responder = await (await OcspResponder.forCa(ca)).withAdmin({ token: "test-token-123" }).start();
  leaf = await ca.issueServer({ ocspUrl: responder.url });
  deep = await ca.issue("server", { issuer: mid.serial, ocspUrl: responder.url });
});
afterAll(async () => {
  await responder.stop();
  ca.close();
  await cleanup();
});
afterEach(() => responder.behaviour.reset());

const ocsp = (cert: IssuedCertificate, issuerFile = ca.rootFile, url = responder.url, extra: string[] = []) =>
  run("openssl", ["ocsp", "-issuer", issuerFile, "-cert", cert.certFile, "-url", url, "-CAfile", ca.rootFile, ...extra]);

const admin = (method: string, path: string, body?: unknown, token = "test-token-123") =>
  fetch(`${responder.adminUrl}${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

describe("issuers", () => {
  it("answers for an intermediate's certificates, signed by the intermediate's own delegated signer", async () => {
    const r = await ocsp(deep, mid.certFile, responder.url, ["-verify_other", mid.certFile]);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${deep.certFile}: good`);
    expect(
      responder
        .issuers()
        .map((i) => i.id)
        .sort(),
    ).toEqual([ca.rootSerial, mid.serial].sort());
  });

  it("keeps answering for a revoked intermediate's certificates: a leaf under it is good until revoked itself", async () => {
    // A CA of its own: the shared one's issuer count is part of other tests.
    const own = await CertificateAuthority.init(join(dir, "ca-revoked-mid"), { watch: true });
    const revokedMid = await own.createIntermediate();
    const r = await (await OcspResponder.forCa(own)).start();
    try {
      const under = await own.issue("server", { issuer: revokedMid.serial, ocspUrl: r.url });
      await own.revoke(revokedMid.serial, { reason: CRLReason.cACompromise });
      const self = await run("openssl", [
        "ocsp",
        "-issuer",
        own.rootFile,
        "-cert",
        revokedMid.certFile,
        "-url",
        r.url,
        "-CAfile",
        own.rootFile,
      ]);
      expect(self.stdout).toContain(`${revokedMid.certFile}: revoked`);
      const args = ["ocsp", "-issuer", revokedMid.certFile, "-cert", under.certFile, "-url", r.url, "-CAfile", own.rootFile];
      const leafAnswer = await run("openssl", [...args, "-verify_other", revokedMid.certFile]);
      expect(leafAnswer.stdout).toContain(`${under.certFile}: good`);
    } finally {
      await r.stop();
      own.close();
    }
  });

  it("answers for an intermediate created after it started from the very first request", async () => {
    const own = await CertificateAuthority.init(join(dir, "ca-late-mid"), { watch: true });
    const r = await (await OcspResponder.forCa(own)).start();
    try {
      const late = await own.createIntermediate();
      const under = await own.issue("server", { issuer: late.serial, ocspUrl: r.url });
      const args = ["ocsp", "-issuer", late.certFile, "-cert", under.certFile, "-url", r.url, "-CAfile", own.rootFile];
      const first = await run("openssl", [...args, "-verify_other", late.certFile]);
      expect(first.stdout + first.stderr).toContain(`${under.certFile}: good`);
    } finally {
      await r.stop();
      own.close();
    }
  });

  it("answers unknown for a serial the named issuer did not issue", async () => {
    // A CertID naming the root with the serial of a certificate the intermediate issued.
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(deep.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const res = await fetch(responder.url, {
      method: "POST",
      body: Buffer.from(der),
      headers: { "content-type": "application/ocsp-request" },
    });
    expect(OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer())).responses[0]!.status).toBe("unknown");
  });
});

describe("behaviours through the admin API, seen by openssl ocsp", () => {
  it.each([
    [{ kind: "content", flaw: "bad-signature" }, /Response Verify Failure/],
    [{ kind: "content", flaw: "signer-no-eku" }, /Response Verify Failure/],
    [{ kind: "content", flaw: "unauthorized-key" }, /Response Verify Failure/],
    [{ kind: "content", flaw: "stale" }, /Status times invalid|status expired/i],
    [{ kind: "content", flaw: "not-yet-valid" }, /Status times invalid|status not yet valid/i],
    [{ kind: "content", flaw: "nonce-wrong" }, /Nonce Verify error/i],
    [{ kind: "content", flaw: "nonce-omitted" }, /WARNING: no nonce in response/],
    [{ kind: "responseStatus", responseStatus: "tryLater" }, /Responder Error: trylater \(3\)/],
    [{ kind: "responseStatus", responseStatus: "unauthorized" }, /Responder Error: unauthorized \(6\)/],
    [{ kind: "http", status: 503, retryAfter: 2 }, /Error querying OCSP responder|Code=503/],
    [{ kind: "garbage-body" }, /Error querying OCSP responder|Error reading|error/i],
  ])("%j makes openssl print %s", async (action, expected) => {
    const put = await admin("PUT", `/behaviours/serials/${leaf.serial}`, { actions: [action] });
    expect(put.status, await put.clone().text()).toBe(200);
    const r = await ocsp(leaf);
    expect(r.stdout + r.stderr).toMatch(expected);
    const log = responder.requests({ serial: leaf.serial }).at(-1);
    expect(log?.behaviour).toBe(`serial:${leaf.serial}`);
  });

  it("signs `unauthorized-key` answers with a self-signed OCSP signer no issuer authorised", async () => {
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "content", flaw: "unauthorized-key" }] }] },
    );
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const res = await fetch(responder.url, {
      method: "POST",
      body: Buffer.from(der),
      headers: { "content-type": "application/ocsp-request" },
    });
    const parsed = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
    expect(parsed.responses[0]!.status).toBe("good");
    expect(parsed.certificates).toHaveLength(1);
    const signer = parsed.certificates[0]!;
    expect(signer.subject).toBe("CN=ocsp-lab unauthorized signer, O=ocsp-lab");
    expect(signer.issuer).toBe(signer.subject);
    expect(await signer.isSelfSigned()).toBe(true);
    expect(signer.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([OID.kpOcspSigning]);
    expect(await signer.verify({ publicKey: ca.root.certificate.publicKey, signatureOnly: true })).toBe(false);
  });

  /** POST a SHA-1 CertID request for `cert` under `issuer` and decode the answer. */
  const ask = async (cert: IssuedCertificate, issuer: x509.X509Certificate) => {
    const der = (await buildOcspRequest({ certificate: toPkiCertificate(cert.certificate), issuer: toPkiCertificate(issuer) }))
      .der;
    const res = await fetch(responder.url, {
      method: "POST",
      body: Buffer.from(der),
      headers: { "content-type": "application/ocsp-request" },
    });
    return { res, parsed: OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer())) };
  };

  it("signs `extra-single-response` answers with another serial's good SingleResponse before the one asked for", async () => {
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "content", flaw: "extra-single-response" }] }] },
    );
    const { parsed } = await ask(leaf, ca.root.certificate);
    const [extra, own] = parsed.responses;
    expect(parsed.responses).toHaveLength(2);
    expect(own!.certId.serial).toBe(leaf.serial);
    expect(own!.status).toBe("good");
    expect(extra!.certId.serial).not.toBe(leaf.serial);
    expect(extra!.certId.issuerKeyHash).toBe(own!.certId.issuerKeyHash);
    expect(extra!.status).toBe("good");
    // openssl ocsp finds the certificate's own answer by CertID.
    const r = await ocsp(leaf);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${leaf.certFile}: good`);
  });

  it("names the `signer-other-ca` signer apart from the CA's own delegated signer", async () => {
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "content", flaw: "signer-other-ca" }] }] },
    );
    const { parsed } = await ask(leaf, ca.root.certificate);
    const signer = parsed.certificates[0]!;
    expect(signer.subject).toBe("CN=ocsp-lab OCSP signer of an unrelated CA");
    expect(signer.issuer).toMatch(/^CN=ocsp-lab unrelated CA /);
    const own = (await ca.ocspSignerOf(ca.rootSerial)).certificate.subject;
    expect(signer.subject).not.toBe(own);
  });

  it("sends Retry-After on an HTTP 503 whose behaviour gives none (1 s), and the behaviour's when it does", async () => {
    const res = async () =>
      fetch(responder.url, {
        method: "POST",
        body: Buffer.from(
          (
            await buildOcspRequest({
              certificate: toPkiCertificate(leaf.certificate),
              issuer: toPkiCertificate(ca.root.certificate),
            })
          ).der,
        ),
        headers: { "content-type": "application/ocsp-request" },
      });
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "http", status: 503 }], count: 1 }] });
    const plain = await res();
    expect([plain.status, plain.headers.get("retry-after")]).toEqual([503, "1"]);
    responder.setBehaviour(
      { kind: "global" },
      { steps: [{ actions: [{ kind: "http", status: 503, retryAfter: 7 }], count: 1 }] },
    );
    const told = await res();
    expect([told.status, told.headers.get("retry-after")]).toEqual([503, "7"]);
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "http", status: 500 }], count: 1 }] });
    const other = await res();
    expect([other.status, other.headers.get("retry-after")]).toEqual([500, null]);
  });

  it("overrides a status, then sequences: tryLater for 2 requests, then revoked", async () => {
    await admin("PUT", `/behaviours/serials/${leaf.serial}`, {
      steps: [
        { actions: [{ kind: "responseStatus", responseStatus: "tryLater" }], count: 2 },
        { actions: [{ kind: "status", status: "revoked", reason: "keyCompromise" }] },
      ],
    });
    expect((await ocsp(leaf)).stdout + (await ocsp(leaf)).stderr).toMatch(/trylater/);
    const third = await ocsp(leaf);
    expect(third.stdout).toContain(`${leaf.certFile}: revoked`);
    expect(third.stdout).toContain("Reason: keyCompromise");
  });

  it("applies a serial's status override only to that CertID of a two-CertID request", async () => {
    const other = await ca.issueServer({ ocspUrl: responder.url });
    responder.setStatus(other.serial, { status: "revoked", revocationReason: CRLReason.superseded });
    const r = await run("openssl", [
      "ocsp",
      "-issuer",
      ca.rootFile,
      "-cert",
      leaf.certFile,
      "-cert",
      other.certFile,
      "-url",
      responder.url,
      "-CAfile",
      ca.rootFile,
    ]);
    expect(r.stderr).toContain("Response verify OK");
    expect(r.stdout).toContain(`${leaf.certFile}: good`);
    expect(r.stdout).toContain(`${other.certFile}: revoked`);
  });

  it("does not let HTTP caches keep an answer shaped by a behaviour", async () => {
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "content", flaw: "long-validity" }] }] },
    );
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const res = await fetch(`${responder.url}/${encodeURIComponent(Buffer.from(der).toString("base64"))}`);
    expect(res.headers.get("cache-control")).toBe("no-cache, no-store");
    expect(res.headers.get("etag")).toBeNull();
  });

  it("alternates (flapping) with repeat", async () => {
    await admin("PUT", "/behaviours/global", {
      steps: [
        { actions: [{ kind: "http", status: 500 }], count: 1 },
        { actions: [{ kind: "normal" }], count: 1 },
      ],
      repeat: true,
    });
    const codes = [];
    for (let i = 0; i < 4; i++) {
      const der = (
        await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
      ).der;
      codes.push((await fetch(responder.url, { method: "POST", body: Buffer.from(der) })).status);
    }
    expect(codes).toEqual([500, 200, 500, 200]);
  });

  it("scopes: serial beats issuer beats global", async () => {
    await admin("PUT", "/behaviours/global", { actions: [{ kind: "responseStatus", responseStatus: "internalError" }] });
    await admin("PUT", `/behaviours/issuers/${mid.serial}`, { actions: [{ kind: "status", status: "unknown" }] });
    expect((await ocsp(leaf)).stdout + (await ocsp(leaf)).stderr).toMatch(/internalerror/i);
    expect((await ocsp(deep, mid.certFile, responder.url, ["-verify_other", mid.certFile])).stdout).toContain(": unknown");
    await admin("PUT", `/behaviours/serials/${deep.serial}`, { actions: [{ kind: "normal" }] });
    expect((await ocsp(deep, mid.certFile, responder.url, ["-verify_other", mid.certFile])).stdout).toContain(": good");
    const listed = (await (await admin("GET", "/behaviours")).json()) as Array<{ scope: string }>;
    expect(listed.map((b) => b.scope).sort()).toEqual(["global", `issuer:${mid.serial}`, `serial:${deep.serial}`].sort());
  });

  it("rejects invalid behaviours with 400 naming the field, and a wrong token with 401", async () => {
    const bad = await admin("PUT", "/behaviours/global", { actions: [{ kind: "delay", ms: -5 }] });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: string; field?: string };
    expect(body.field).toBe("steps.0.actions.0.ms");
    expect((await admin("PUT", "/behaviours/global", { actions: [{ kind: "explode" }] })).status).toBe(400);
    expect((await admin("PUT", "/behaviours/serials/not-hex", { actions: [{ kind: "normal" }] })).status).toBe(400);
    expect((await admin("GET", "/behaviours", undefined, "wrong")).status).toBe(401);
  });

  it("serves the request log over the admin API, filtered by serial and since", async () => {
    const since = new Date().toISOString();
    await ocsp(leaf);
    const entries = (await (
      await admin("GET", `/requests?serial=${leaf.serial}&since=${encodeURIComponent(since)}`)
    ).json()) as Array<{ serials: string[]; nonceLength: number; method: string }>;
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ serials: [leaf.serial], method: "POST" });
    expect(entries[0]!.nonceLength).toBeGreaterThan(0);
  });
});

describe("transport behaviours", () => {
  const post = async () => {
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    return fetch(responder.url, {
      method: "POST",
      body: Buffer.from(der),
      headers: { "content-type": "application/ocsp-request" },
    });
  };
  const set = (action: object) =>
    responder.setBehaviour({ kind: "serial", serial: leaf.serial }, { steps: [{ actions: [action as never] }] });

  it("resets, closes, truncates and empties as told, and drips a valid body slowly", async () => {
    const since = new Date();
    set({ kind: "reset" });
    await expect(post()).rejects.toThrow();
    set({ kind: "close" });
    await expect(post()).rejects.toThrow();
    set({ kind: "truncate" });
    await expect(post().then((r) => r.arrayBuffer())).rejects.toThrow();
    set({ kind: "empty-body" });
    const empty = await post();
    expect(empty.status).toBe(200);
    expect((await empty.arrayBuffer()).byteLength).toBe(0);
    set({ kind: "wrong-content-type" });
    expect((await post()).headers.get("content-type")).toMatch(/^text\/html/);
    // The pace of the drip is tested on a ManualClock (clock.test.ts); here the body it delivers.
    set({ kind: "drip", chunkBytes: 64, chunkDelayMs: 1 });
    const dripped = await post();
    const body = new Uint8Array(await dripped.arrayBuffer());
    expect(OcspResponse.fromDer(body).responses[0]!.status).toBe("good");
    // The log line of the last request is written once its answer is flushed: wait for it.
    const logged = await responder.waitForRequests({ serial: leaf.serial, since, count: 6 });
    expect(logged.map((e) => e.outcome)).toEqual([
      "fault:reset",
      "fault:close",
      "fault:truncate",
      "fault:empty-body",
      "fault:wrong-content-type",
      "fault:drip",
    ]);
  });

  it("serves the admin API on its own port when asked", async () => {
    const r4 = await (await OcspResponder.forCa(ca)).withAdmin({ port: 0 }).start();
    try {
      expect(r4.adminUrl).not.toContain(`:${r4.port}/`);
      expect((await fetch(`${r4.adminUrl}/issuers`)).status).toBe(200);
      expect((await fetch(`${r4.url}/admin/issuers`)).status).not.toBe(200);
    } finally {
      await r4.stop();
    }
  });
});

describe("RFC 5019 caching", () => {
  it("pre-signs GET answers, sends ETag and 304, and drops them the moment the status changes", async () => {
    const own = await ca.issueServer({ ocspUrl: responder.url });
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(own.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const url = `${responder.url}/${encodeURIComponent(Buffer.from(der).toString("base64"))}`;
    const first = await fetch(url);
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(first.headers.get("last-modified")).toBeTruthy();
    expect(first.headers.get("expires")).toBeTruthy();
    const body = new Uint8Array(await first.arrayBuffer());
    const again = await fetch(url);
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(body);
    expect(responder.requests({ serial: own.serial }).at(-1)?.cached).toBe(true);
    // The CA's store watcher may report this file's earlier writes a moment later, which drops
    // every cached answer and re-signs it under a new ETag: ask with the ETag just served.
    await eventually(
      async () => {
        const current = await fetch(url);
        await current.arrayBuffer();
        return (await fetch(url, { headers: { "if-none-match": current.headers.get("etag")! } })).status;
      },
      (status) => status === 304,
      10_000,
      "a 304 for the ETag just served",
    );

    await ca.revoke(own.serial, { reason: CRLReason.superseded });
    const after = await fetch(url, { headers: { "if-none-match": etag } });
    expect(after.status).toBe(200);
    expect(OcspResponse.fromDer(new Uint8Array(await after.arrayBuffer())).responses[0]!.status).toBe("revoked");
  });

  it("answers If-None-Match with 304 on the cached and the decoding path alike, and only where caches may keep the answer", async () => {
    const own = await ca.issueServer({ ocspUrl: responder.url });
    const request = async (nonce: boolean) =>
      (
        await buildOcspRequest({
          certificate: toPkiCertificate(own.certificate),
          issuer: toPkiCertificate(ca.root.certificate),
          nonce,
        })
      ).der;
    const der = await request(false);
    const b64 = encodeURIComponent(Buffer.from(der).toString("base64"));
    const first = await fetch(`${responder.url}/${b64}`);
    const etag = first.headers.get("etag")!;
    const body = new Uint8Array(await first.arrayBuffer());
    const conditional = { "if-none-match": etag };

    // A doubled slash is another spelling: its first request is decoded (the byte-exact lookup
    // does not know it yet) and answered from the pre-signed answer; its second is the byte-exact hit.
    for (const path of [`//${b64}`, `//${b64}`, `/${b64}`]) {
      const res = await fetch(`${responder.url}${path}`, { headers: conditional });
      expect(res.status, path).toBe(304);
      expect(res.headers.get("etag")).toBe(etag);
      expect(res.headers.get("cache-control")).toMatch(/^max-age=\d+, public, no-transform, must-revalidate$/);
      expect(res.headers.get("expires")).toBe(first.headers.get("expires"));
      expect((await res.arrayBuffer()).byteLength).toBe(0);
    }
    const logged = responder.requests({ serial: own.serial }).slice(-3);
    expect(logged.map((e) => [e.httpStatus, e.cached])).toEqual([
      [304, true],
      [304, true],
      [304, true],
    ]);

    // Another entity-tag: the answer itself.
    const stale = await fetch(`${responder.url}/${b64}`, { headers: { "if-none-match": '"0123"' } });
    expect(stale.status).toBe(200);
    expect(new Uint8Array(await stale.arrayBuffer())).toEqual(body);
    // POST (both paths: decoded, then byte-exact) never 304, and never cacheable.
    for (let i = 0; i < 2; i++) {
      const post = await fetch(responder.url, {
        method: "POST",
        body: Buffer.from(der),
        headers: { "content-type": "application/ocsp-request", ...conditional },
      });
      expect(post.status).toBe(200);
      expect(post.headers.get("cache-control")).toBe("no-cache, no-store");
      expect(new Uint8Array(await post.arrayBuffer())).toEqual(body);
    }
    // A nonce makes the answer uncacheable: no ETag, no 304.
    const withNonce = await fetch(`${responder.url}/${encodeURIComponent(Buffer.from(await request(true)).toString("base64"))}`, {
      headers: conditional,
    });
    expect(withNonce.status).toBe(200);
    expect(withNonce.headers.get("etag")).toBeNull();
  });

  it("exposes Prometheus metrics, behind the admin token", async () => {
    await ocsp(leaf);
    expect((await fetch(`${responder.url}/metrics`)).status).toBe(401);
    const text = await (await fetch(`${responder.url}/metrics`, { headers: { authorization: "Bearer test-token-123" } })).text();
    expect(text).toMatch(/ocsp_requests_total\{method="POST",outcome="good"\} \d+/);
    expect(text).toContain("ocsp_request_duration_seconds_bucket");
    expect(text).toContain("ocsp_response_cache_entries");
  });
});

describe("signing options", () => {
  it("signs by the CA itself with responderID byName, and RSA-PSS for an RSA CA", async () => {
    const rsa = await CertificateAuthority.init(join(dir, "rsa"), { keyType: "rsa-2048" });
    const r2 = await (await OcspResponder.forCa(rsa))
      .withSigning({ by: "issuer", responderId: "byName", includeSigner: false, rsaPss: true })
      .start();
    try {
      const l = await rsa.issueServer({ ocspUrl: r2.url });
      const out = await run("openssl", [
        "ocsp",
        "-issuer",
        rsa.rootFile,
        "-cert",
        l.certFile,
        "-url",
        r2.url,
        "-CAfile",
        rsa.rootFile,
        "-resp_text",
      ]);
      expect(out.stderr).toContain("Response verify OK");
      expect(out.stdout).toMatch(/Responder Id: CN = ocsp-lab root CA/);
      expect(out.stdout).toContain("rsassaPss");
      expect(out.stdout).toContain(`${l.certFile}: good`);
    } finally {
      await r2.stop();
    }
  });

  it("answers a signed unknown for another CA's certificate when configured so", async () => {
    const other = await CertificateAuthority.init(join(dir, "other"));
    const foreign = await other.issueServer();
    const r3 = await (await OcspResponder.forCa(ca)).withUnknownIssuer("unknown").start();
    try {
      const der = (
        await buildOcspRequest({
          certificate: toPkiCertificate(foreign.certificate),
          issuer: toPkiCertificate(other.root.certificate),
        })
      ).der;
      const res = await fetch(r3.url, { method: "POST", body: Buffer.from(der) });
      const parsed = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
      expect(parsed.responseStatus).toBe(OCSPResponseStatus.successful);
      expect(parsed.responses[0]!.status).toBe("unknown");
    } finally {
      await r3.stop();
    }
  });
});

describe("ocsp-responder --config", () => {
  const cli = (...argv: string[]) => inProcess(responderMain, argv, { env: {}, stopSignal: () => Promise.resolve("SIGTERM") });

  it("run bare, prints how to give a config and an outline of its keys, and exits 2", async () => {
    const bare = await cli();
    expect(bare.code).toBe(2);
    expect(bare.out).toBe("");
    expect(bare.err).toMatch(/^ocsp-responder: give a config file: ocsp-responder --config responder.yaml/);
    for (const key of ["listen:", "cas:", "validity:", "signing:", "admin:", "log_level:", "behaviours:"])
      expect(bare.err).toContain(key);
    // The outline is a valid config itself.
    const file = join(dir, "outline.yaml");
    await fs.writeFile(file, bare.err.slice(bare.err.indexOf("listen:")));
    expect((await cli("--config", file, "--check")).code).toBe(0);
  });

  it("prints its package's version with --version", async () => {
    const { version } = JSON.parse(await fs.readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await cli("--version")).toEqual({ code: 0, out: `${version}\n`, err: "" });
  });

  it("starts from a YAML file with start-up behaviours and stops on a signal", async () => {
    const file = join(dir, "responder.yaml");
    await fs.writeFile(
      file,
      `cas: [ca]\nlisten: { port: 0 }\nbehaviours:\n  - scope: global\n    actions: [{ kind: responseStatus, responseStatus: tryLater }]\n`,
    );
    expect((await cli("--config", file, "--check")).out).toContain("is valid (1 behaviour(s))");
    const r = await cli("--config", file);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ \(issuers: 2;/);
    expect(r.out).toContain("SIGTERM received, stopped");
  });

  it.each([
    ["validity: 120\n", []],
    ["validity_seconds: 120\n", ["validity_seconds is deprecated: write validity (the same number of seconds)"]],
  ])("takes the response validity in seconds from %j", async (yaml, deprecations) => {
    const file = join(dir, "validity.yaml");
    await fs.writeFile(file, `cas: [ca]\n${yaml}`);
    const config = await loadResponderConfig(file);
    expect(config.validity).toBe(120);
    expect(config.deprecations).toEqual(deprecations);
    expect(config).not.toHaveProperty("validity_seconds");
    const checked = await cli("--config", file, "--check");
    expect(checked.code).toBe(0);
    expect(checked.err).toBe(deprecations.map((d) => `ocsp-responder: warning: config ${file}: ${d}\n`).join(""));
    const started = await startFromConfig(config, { env: {}, destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    try {
      const der = (
        await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
      ).der;
      const res = await fetch(started.url, {
        method: "POST",
        body: Buffer.from(der),
        headers: { "content-type": "application/ocsp-request" },
      });
      const single = OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer())).responses[0]!;
      expect(single.nextUpdate!.getTime() - single.thisUpdate.getTime()).toBe(120_000);
    } finally {
      await started.stop();
    }
  });

  it("defaults the response validity to 3600 seconds", async () => {
    const file = join(dir, "default.yaml");
    await fs.writeFile(file, "cas: [ca]\n");
    expect((await loadResponderConfig(file)).validity).toBe(3600);
  });

  it.each([
    ["validity_seconds: -1\n", /validity_seconds: /],
    ["validity: -1\n", /validity: /],
    ["validity: 3600\nvalidity_seconds: 60\n", /validity_seconds: both validity \(3600\) and validity_seconds \(60\) are given/],
    ["behaviours:\n  - scope: global\n    actions: [{ kind: delay, ms: fast }]\n", /behaviours\.0\.actions\.0\.ms: /],
    ["signing: { by: nobody }\n", /signing\.by: /],
    ["listen: { port: 1, colour: red }\n", /listen\.colour: unknown key "colour"/],
    ["cas: [\n", /not valid YAML/],
  ])("names the bad field of %j in one line", async (yaml, message) => {
    const file = join(dir, "bad.yaml");
    await fs.writeFile(file, yaml);
    const r = await cli("--config", file, "--check");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ocsp-responder: config .*bad\.yaml: /);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
