import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:tls";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate, type Signer } from "@ocsp-lab/ca";
import { OcspResponseGenerator, createCertId, toPkiCertificate, type CertStatus } from "@ocsp-lab/ocsp";
import { CurlClient, NodeStrictClient, OpensslClient, type TlsTarget } from "@ocsp-lab/harness";
import { tempDir } from "../../../test-support/index.js";

let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let other: CertificateAuthority;
let leaf: IssuedCertificate;
let sibling: IssuedCertificate;
let intermediate: IssuedCertificate;
let interLeaf: IssuedCertificate;
const HOUR = 3_600_000;

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  other = await CertificateAuthority.init(join(dir, "other"));
  leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  sibling = await ca.issueServer({ dnsNames: ["localhost"] });
  intermediate = await ca.createIntermediate();
  interLeaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], issuer: intermediate.serial });
});
afterAll(async () => cleanup());

/** A response about `about` signed by `signer`, valid from `from` for `validMs`. */
async function response(opts: {
  about?: IssuedCertificate;
  signer?: Signer;
  status?: CertStatus;
  from?: number;
  validMs?: number;
  includeSigner?: boolean;
  /** The certificate that issued `about` (default the root). */
  issuer?: IssuedCertificate;
}): Promise<Uint8Array> {
  const about = opts.about ?? leaf;
  const issuerCert = opts.issuer?.certificate ?? ca.root.certificate;
  const from = new Date(opts.from ?? Date.now() - 60_000);
  return OcspResponseGenerator.create({
    signer: opts.signer ?? ca.ocspSigner,
    producedAt: from,
    includeSignerCertificate: opts.includeSigner ?? true,
    responses: [
      {
        certId: await createCertId(toPkiCertificate(about.certificate), toPkiCertificate(issuerCert)),
        status: opts.status ?? { status: "good" },
        thisUpdate: from,
        nextUpdate: new Date(from.getTime() + (opts.validMs ?? HOUR)),
      },
    ],
  });
}

/** A bare node:tls server that staples exactly `staple` (or nothing), serving `served` (default the root-issued leaf). */
async function withServer<T>(
  staple: Uint8Array | undefined,
  fn: (target: TlsTarget) => Promise<T>,
  served: { cert: string; key: string | undefined } = {
    cert: leaf.certPem + ca.root.certificate.toString("pem"),
    key: leaf.keyPem,
  },
): Promise<T> {
  const server: Server = createServer(served);
  server.on("OCSPRequest", (_c: Buffer, _i: Buffer, cb: (e: Error | null, r?: Buffer) => void) =>
    cb(null, staple ? Buffer.from(staple) : undefined),
  );
  server.on("secureConnection", (s) => s.end());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    return await fn({
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      servername: "localhost",
      caFile: ca.rootFile,
    });
  } finally {
    server.close();
  }
}

describe("NodeStrictClient", () => {
  const node = new NodeStrictClient();
  const cases: Array<[string, () => Promise<Uint8Array | undefined>, string]> = [
    ["a good staple", () => response({}), "connected"],
    [
      "a revoked staple",
      () => response({ status: { status: "revoked", revocationTime: new Date(Date.now() - HOUR) } }),
      "refused: revoked",
    ],
    ["an unknown staple", () => response({ status: { status: "unknown" } }), "refused: unknown"],
    ["no staple", async () => undefined, "refused: no staple"],
    [
      "a staple signed with a key that is not the issuer's",
      () => response({ signer: { ...ca.root, key: other.root.key } }),
      "refused: bad signature",
    ],
    ["a staple signed by another CA's OCSP signer", () => response({ signer: other.ocspSigner }), "refused: unauthorized signer"],
    ["a delegated signer left out of certs", () => response({ includeSigner: false }), "refused: unauthorized signer"],
    ["a staple past its nextUpdate", () => response({ from: Date.now() - 2 * HOUR, validMs: HOUR }), "refused: stale"],
    ["a staple about another certificate", () => response({ about: sibling }), "refused: wrong certificate"],
    ["a tryLater answer", async () => OcspResponseGenerator.error(3), "refused: not successful"],
    ["garbage", async () => new Uint8Array([0x30, 0x03, 0x01]), "refused: malformed"],
  ];
  it.each(cases)("reports %s as %s", async (_name, make, want) => {
    const staple = await make();
    const obs = await withServer(staple, (t) => node.probe(t));
    expect(obs.outcome, obs.detail).toBe(want);
  });
});

describe("NodeStrictClient with a certificate issued by an intermediate", () => {
  const node = new NodeStrictClient();
  // The server sends the leaf and the intermediate; the client trusts only the root.
  const served = () => ({ cert: interLeaf.certPem + intermediate.certificate.toString("pem"), key: interLeaf.keyPem });
  const signedByIntermediate = async (status: CertStatus): Promise<Uint8Array> =>
    response({ about: interLeaf, issuer: intermediate, signer: await ca.ocspSignerOf(intermediate.serial), status });

  it("verifies a good staple against the intermediate and connects", async () => {
    const obs = await withServer(await signedByIntermediate({ status: "good" }), (t) => node.probe(t), served());
    expect(obs.outcome, obs.detail).toBe("connected");
  });

  it("refuses a revoked staple signed for the intermediate as revoked", async () => {
    const staple = await signedByIntermediate({ status: "revoked", revocationTime: new Date(Date.now() - HOUR) });
    const obs = await withServer(staple, (t) => node.probe(t), served());
    expect(obs.outcome, obs.detail).toBe("refused: revoked");
  });

  it("refuses a staple the root's signer made for the intermediate's certificate", async () => {
    // Signed under the root, but CertID and signer must belong to the leaf's real issuer.
    const obs = await withServer(await response({ about: interLeaf }), (t) => node.probe(t), served());
    expect(obs.outcome, obs.detail).toMatch(/^refused: (wrong certificate|unauthorized signer)$/);
  });
});

describe("command-line client drivers", () => {
  it("curl refuses a revoked staple and says why", async () => {
    const staple = await response({
      status: { status: "revoked", revocationTime: new Date(Date.now() - HOUR), revocationReason: 1 },
    });
    const obs = await withServer(staple, (t) => new CurlClient().probe(t));
    expect(obs.outcome).toBe("refused: revoked");
    expect(obs.detail).toMatch(/curl: \(91\)/);
  });

  it("curl refuses a missing staple", async () => {
    expect((await withServer(undefined, (t) => new CurlClient().probe(t))).outcome).toBe("refused: no staple");
  });

  it("openssl s_client reports what it saw", async () => {
    expect((await withServer(await response({}), (t) => new OpensslClient().probe(t))).outcome).toBe("staple: good");
    expect((await withServer(undefined, (t) => new OpensslClient().probe(t))).outcome).toBe("no staple");
  });

  it("openssl s_client reports bytes that are no OCSPResponse as a parse error", async () => {
    const garbage = new TextEncoder().encode("this is not an OCSP response");
    expect((await withServer(garbage, (t) => new OpensslClient().probe(t))).outcome).toBe("staple: parse error");
  });
});
