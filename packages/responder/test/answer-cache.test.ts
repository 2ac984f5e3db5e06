import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OcspResponse, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import { Behaviour, CachedAnswer, CaStatusSource, ENTRY_OVERHEAD_BYTES, OcspService } from "@ocsp-lab/responder";
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

const key = (der: Uint8Array) => Buffer.from(der).toString("latin1");

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

  it("counts each distinct request key that finds an answer, and drops them with it", async () => {
    const service = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
    const der = requests[1]!;
    await service.answer(der, key(der));
    const withOneKey = service.cacheBytes;
    // The same request by GET (another raw key) finds the same answer and adds its key.
    const path = `/${Buffer.from(der).toString("base64")}`;
    const viaGet = await service.answer(der, path);
    expect(viaGet.cached).toBe(true);
    expect(service.cacheSize).toBe(1);
    expect(service.cacheBytes).toBe(withOneKey + path.length + 24 + 16);
    expect(service.lookup(path)).toBe(viaGet);
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
});
