import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type SecureVersion, type Server } from "node:tls";
import { createServer as createHttpsServer } from "node:https";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate, type Signer } from "@ocsp-lab/ca";
import { OcspResponseGenerator, createCertId, toPkiCertificate, type CertStatus } from "@ocsp-lab/ocsp";
import { CurlClient, NodeStrictClient, OpensslClient, type ClientDriver, type TlsTarget } from "@ocsp-lab/harness";
import { itWithPeer, tempDir } from "../../../test-support/index.js";

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

/**
 * An HTTPS server (so curl's transfers and s_client's request get an answer) that staples what
 * `staple` holds at each handshake; `rotateTicketKeys` makes every session it gave before
 * unresumable (new ticket keys).
 */
async function withSwitchingServer<T>(
  fn: (target: TlsTarget, server: { staple: Uint8Array | undefined; rotateTicketKeys(): void; handshakes: number }) => Promise<T>,
  options: { maxVersion?: SecureVersion } = {},
): Promise<T> {
  const state = {
    staple: undefined as Uint8Array | undefined,
    handshakes: 0,
    rotateTicketKeys: () => server.setTicketKeys(randomBytes(48)),
  };
  const server = createHttpsServer(
    { cert: leaf.certPem + ca.root.certificate.toString("pem"), key: leaf.keyPem, ...options },
    (_req, res) => res.writeHead(200, { Connection: "close" }).end("ok\n"),
  );
  server.on("OCSPRequest", (_c: Buffer, _i: Buffer, cb: (e: Error | null, r?: Buffer) => void) =>
    cb(null, state.staple ? Buffer.from(state.staple) : undefined),
  );
  server.on("secureConnection", () => (state.handshakes += 1));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const port = (server.address() as AddressInfo).port;
    return await fn({ host: "127.0.0.1", port, servername: "localhost", caFile: ca.rootFile }, state);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const revokedStaple = () =>
  response({ status: { status: "revoked", revocationTime: new Date(Date.now() - HOUR), revocationReason: 1 } });

/**
 * Keep a session while the staple is good, staple revoked, then resume it (after rotating the
 * server's ticket keys when `rotate`) and make a fresh handshake.
 */
async function resumeAfterRevocation(client: ClientDriver, rotate = false) {
  return withSwitchingServer(async (target, server) => {
    server.staple = await response({});
    const kept = await client.probeKeepingSession!(target);
    try {
      server.staple = await revokedStaple();
      if (rotate) server.rotateTicketKeys();
      const resumed = await kept.session.resume();
      const again = await kept.session.resume();
      const fresh = await client.probe(target);
      return { first: kept.observation, resumed, again, fresh };
    } finally {
      await kept.session.discard();
    }
  });
}

describe("a kept TLS session, resumed after the staple turned revoked", () => {
  it("NodeStrictClient resumes it and connects with no staple to see; a fresh handshake is refused", async () => {
    const r = await resumeAfterRevocation(new NodeStrictClient());
    expect(r.first.outcome, r.first.detail).toBe("connected");
    expect(r.resumed.outcome, r.resumed.detail).toBe("connected (resumed, no staple seen)");
    expect(r.resumed.detail).toMatch(
      /^TLSv1\.3 session resumed: no certificate, no staple .*when it was made: connected, staple good/,
    );
    expect(r.again.outcome).toBe("no session to resume");
    expect(r.fresh.outcome).toBe("refused: revoked");
  });

  it("NodeStrictClient, TLS 1.2: an abbreviated handshake has no CertificateStatus either", async () => {
    const node = new NodeStrictClient();
    // A server of TLS 1.2 at most: the session ticket comes within the handshake itself.
    await withSwitchingServer(
      async (target, server) => {
        server.staple = await response({});
        const kept = await node.probeKeepingSession(target);
        server.staple = await revokedStaple();
        const resumed = await kept.session.resume();
        expect(kept.observation.outcome).toBe("connected");
        expect(resumed.outcome, resumed.detail).toBe("connected (resumed, no staple seen)");
        expect(resumed.detail).toMatch(/^TLSv1\.2 session resumed/);
      },
      { maxVersion: "TLSv1.2" },
    );
  });

  it("NodeStrictClient verifies afresh when the server will not resume (new ticket keys): refused, not resumed", async () => {
    const r = await resumeAfterRevocation(new NodeStrictClient(), true);
    expect(r.resumed.outcome, r.resumed.detail).toBe("refused: revoked (not resumed)");
  });

  itWithPeer("openssl")(
    "openssl s_client -sess_out / -sess_in: Reused, no staple; a fresh handshake prints revoked",
    async () => {
      const r = await resumeAfterRevocation(new OpensslClient());
      expect(r.first.outcome).toBe("staple: good");
      expect(r.resumed.outcome, r.resumed.detail).toBe("no staple (resumed)");
      expect(r.resumed.detail).toMatch(/^Reused, TLSv1\.3; /);
      expect(r.again.outcome).toBe("no session to resume");
      expect(r.fresh.outcome).toBe("staple: revoked");
      const declined = await resumeAfterRevocation(new OpensslClient(), true);
      expect(declined.resumed.outcome, declined.resumed.detail).toBe("staple: revoked (not resumed)");
    },
  );

  itWithPeer("curl")("curl --cert-status, two transfers in one process: the resumed one finds no staple", async () => {
    await withSwitchingServer(async (target, server) => {
      server.staple = await response({});
      const curl = new CurlClient();
      const kept = await curl.probeKeepingSession(target);
      expect(kept.observation.outcome, kept.observation.detail).toBe("connected");
      // The second transfer waits on its pipe: no handshake until resume.
      expect(server.handshakes).toBe(1);
      server.staple = await revokedStaple();
      const resumed = await kept.session.resume();
      // curl 7.88 (curl#12399): it resumes, then requires a staple the resumed handshake cannot carry.
      expect(resumed.outcome, resumed.detail).toBe("refused: no staple (resumed)");
      expect(resumed.detail).toBe("SSL re-using session ID, no Certificate came; curl: (91) No OCSP response received");
      expect(server.handshakes).toBe(2);
    });
    const declined = await resumeAfterRevocation(new CurlClient(), true);
    expect(declined.resumed.outcome, declined.resumed.detail).toBe("refused: revoked (not resumed)");
  });

  itWithPeer("curl")("curl: a discarded session ends the waiting curl at once and resumes nothing", async () => {
    await withSwitchingServer(async (target, server) => {
      server.staple = await response({});
      const kept = await new CurlClient().probeKeepingSession(target);
      await kept.session.discard();
      expect((await kept.session.resume()).outcome).toBe("no session to resume");
      expect(server.handshakes).toBe(1);
    });
  });
});
