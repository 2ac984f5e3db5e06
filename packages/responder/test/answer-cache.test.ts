import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OcspResponse, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import {
  Behaviour,
  CachedAnswer,
  CaStatusSource,
  ENTRY_OVERHEAD_BYTES,
  OcspService,
  getRequestKey,
  plainCertIdKey,
  postRequestKey,
} from "@ocsp-lab/responder";
import { tempDir } from "../../../test-support/index.js";

let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let certs: IssuedCertificate[];
let requests: Uint8Array[];

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  certs = [];
  for (let i = 0; i < 6; i++) certs.push(await ca.issueServer({}));
  requests = [];
  for (const c of certs) {
    requests.push(
      (await buildOcspRequest({ certificate: toPkiCertificate(c.certificate), issuer: toPkiCertificate(ca.root.certificate) }))
        .der,
    );
  }
});
afterAll(async () => cleanup());

const key = postRequestKey;

describe("the answer cache bound", () => {
  it("holds at most cacheMaxBytes, drops the oldest answers first one at a time, and their request keys with them", async () => {
    // Measure one entry, then bound a service to three of them.
    const probe = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
    await probe.answer(requests[0], key(requests[0]!));
    const one = probe.cacheBytes;
    expect(one).toBeGreaterThan(ENTRY_OVERHEAD_BYTES);
    expect(probe.cacheSize).toBe(1);

    const service = new OcspService({
      source: await CaStatusSource.create(ca),
      behaviour: new Behaviour(),
      cacheMaxBytes: Math.floor(one * 3.5),
    });
    for (const der of requests) {
      const answer = await service.answer(der, key(der));
      expect(answer.cached).toBe(false);
      expect(OcspResponse.fromDer(answer.der).responses[0]!.status).toBe("good");
      expect(service.cacheBytes).toBeLessThanOrEqual(Math.floor(one * 3.5));
    }
    // Six answers made, three held: the last three, never the whole cache dropped at once.
    expect(service.cacheSize).toBe(3);
    for (const der of requests.slice(0, 3)) expect(service.lookup(key(der))).toBeUndefined();
    for (const der of requests.slice(3)) expect(service.lookup(key(der))?.cached).toBe(true);

    // An evicted answer is signed again when asked for, and held again (pushing out the oldest, #3).
    const again = await service.answer(requests[0], key(requests[0]!));
    expect(again.cached).toBe(false);
    expect(service.cacheSize).toBe(3);
    expect(service.lookup(key(requests[0]!))?.cached).toBe(true);
    expect(service.lookup(key(requests[3]!))).toBeUndefined();
    expect(service.lookup(key(requests[5]!))?.cached).toBe(true);
  });

  it("finds a plain request's answer by POST and GET with no key of its own; remembers, counts and drops any other encoding", async () => {
    const service = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
    const der = requests[1]!;
    const first = await service.answer(der, postRequestKey(der));
    expect(first.cached).toBe(false);
    const alone = service.cacheBytes;
    // The same plain request by POST and by GET (standard and url-safe base64) finds the entry directly.
    const b64 = Buffer.from(der).toString("base64");
    for (const k of [
      postRequestKey(der),
      getRequestKey(`/${encodeURIComponent(b64)}`),
      getRequestKey(`//${Buffer.from(der).toString("base64url")}`),
    ]) {
      expect(plainCertIdKey(k)).toBeDefined();
      expect(service.lookup(k)?.cached).toBe(true);
    }
    expect(service.cacheBytes).toBe(alone);

    // The same question with an explicit version v1 (BER: DER omits a DEFAULT): not plain, so
    // found after one decoding, then by its bytes, which the entry counts.
    const versioned = Buffer.concat([
      Uint8Array.of(0x30, der[1]! + 5, 0x30, der[3]! + 5, 0xa0, 0x03, 0x02, 0x01, 0x00),
      der.subarray(4),
    ]);
    const other = postRequestKey(versioned);
    expect(plainCertIdKey(other)).toBeUndefined();
    expect(service.lookup(other)).toBeUndefined();
    const viaOther = await service.answer(versioned, other);
    expect(viaOther.cached).toBe(true);
    expect(service.cacheSize).toBe(1);
    expect(service.cacheBytes).toBe(alone + other.length + 24 + 16);
    expect(service.lookup(other)).toBe(viaOther);

    // A plain request that differs in one header byte is not taken for the CertID behind it.
    const bent = Uint8Array.from(der);
    bent[5] = bent[5]! - 1;
    expect(plainCertIdKey(postRequestKey(bent))).toBeUndefined();
  });

  it("serves the DER it signed, byte for byte, with the signer's certs held once for every answer", async () => {
    const service = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
    const signed = [];
    for (const der of requests.slice(0, 2)) signed.push(await service.answer(der, key(der)));
    const held = requests.slice(0, 2).map((der) => service.lookup(key(der)));
    expect(held.every((a) => a instanceof CachedAnswer)).toBe(true);
    const [a, b] = held as CachedAnswer[];
    expect(Buffer.from(a!.der).equals(Buffer.from(signed[0]!.der))).toBe(true);
    expect(Buffer.from(b!.der).equals(Buffer.from(signed[1]!.der))).toBe(true);
    // The delegated signer's certificate is the tail of both, one Buffer, not counted per entry.
    expect(a!.tail).toBeDefined();
    expect(a!.tail).toBe(b!.tail);
    expect(a!.head.byteLength + a!.tail!.byteLength).toBe(signed[0]!.der.byteLength);
    expect(service.cacheBytes).toBeLessThan(2 * (signed[0]!.der.byteLength + ENTRY_OVERHEAD_BYTES));
  });

  it("does not keep answers of unknown: serials never issued cannot push real answers out", async () => {
    const service = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
    await service.answer(requests[0]!, key(requests[0]!));
    const held = service.cacheBytes;
    for (let i = 0; i < 3; i++) {
      // The last byte of a plain request is the serial's last octet: another serial, never issued.
      const never = Uint8Array.from(requests[0]!);
      never[never.length - 1] = never[never.length - 1]! ^ (0x11 * (i + 1));
      const answer = await service.answer(never, key(never));
      expect(OcspResponse.fromDer(answer.der).responses[0]!.status).toBe("unknown");
      expect(answer.cached).toBe(false);
      expect(service.lookup(key(never))).toBeUndefined();
    }
    expect(service.cacheSize).toBe(1);
    expect(service.cacheBytes).toBe(held);
    expect(service.lookup(key(requests[0]!))?.cached).toBe(true);
  });
});
