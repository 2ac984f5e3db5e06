import { connect, type ConnectionOptions, type DetailedPeerCertificate, type TLSSocketOptions } from "node:tls";
import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { OcspVerifyError, systemClock, verifyOcspResponse, type Clock } from "@ocsp-lab/ocsp";
import type { ClientDriver, ClientObservation, TlsTarget } from "./client.js";

/** One PEM certificate block of a CA file (which may hold several). */
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Handshake deadline of the Node client, in milliseconds. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A strict Node.js client: `tls.connect({ requestOCSP: true })`, then verifies the stapled
 * response exactly as the stapler does (verifyOcspResponse: signer, signature, CertID, time
 * window) and refuses the connection unless the staple says good. The staple is checked against
 * the certificate's real issuer, found in the chain the server sent or in the CA file (the
 * handshake itself verified the chain up to the trusted root). Reports `connected` or
 * `refused: <reason>` with reason revoked, unknown, no staple, bad signature, stale, wrong
 * certificate, unauthorized signer, not yet valid, no nextUpdate, not successful, malformed,
 * no issuer in chain, or tls error.
 */
export class NodeStrictClient implements ClientDriver {
  readonly name = "node";
  private readonly clock: Clock;

  /** A client that checks staple freshness against `options.clock` (default the wall clock). */
  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** Always available: it is this process. */
  async available(): Promise<{ ok: true }> {
    return { ok: true };
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const caPem = await fs.readFile(target.caFile, "utf8");
    const handshake = await new Promise<{ staple: Buffer | undefined; chain?: Buffer[]; error?: Error }>((resolve) => {
      let staple: Buffer | undefined;
      // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
      const options: ConnectionOptions & TLSSocketOptions = {
        host: target.host,
        port: target.port,
        servername: target.servername,
        ca: caPem,
        requestOCSP: true,
        timeout: HANDSHAKE_TIMEOUT_MS,
      };
      const socket = connect(options);
      // Emitted during the handshake, before secureConnect; `response` is null when none was stapled.
      socket.on("OCSPResponse", (response: Buffer | null) => {
        staple = response && response.length > 0 ? response : undefined;
      });
      socket.once("secureConnect", () => {
        const chain = peerChain(socket.getPeerCertificate(true));
        socket.end();
        resolve({ staple, chain });
      });
      socket.once("timeout", () => {
        socket.destroy();
        resolve({ staple, error: new Error(`no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`) });
      });
      socket.once("error", (error) => resolve({ staple, error }));
    });
    if (handshake.error) return this.obs("refused: tls error", handshake.error.message);
    if (!handshake.staple) return this.obs("refused: no staple", "the server stapled no OCSP response");
    const [leafDer, ...sent] = handshake.chain ?? [];
    if (!leafDer) return this.obs("refused: tls error", "the server sent no certificate");
    const certificate = new x509.X509Certificate(new Uint8Array(leafDer));
    const candidates = [
      ...sent.map((der) => new x509.X509Certificate(new Uint8Array(der))),
      ...(caPem.match(PEM_CERTIFICATE) ?? []).map((pem) => new x509.X509Certificate(pem)),
    ];
    const issuer = await findIssuer(certificate, candidates);
    if (!issuer)
      return this.obs(
        "refused: no issuer in chain",
        `no certificate of the chain or ${target.caFile} issued "${certificate.subject}"`,
      );
    try {
      const verified = await verifyOcspResponse(handshake.staple, { certificate, issuer, now: this.clock.now() });
      const detail = `staple ${verified.status}, thisUpdate ${verified.thisUpdate.toISOString()}, nextUpdate ${verified.nextUpdate.toISOString()}`;
      return verified.status === "good" ? this.obs("connected", detail) : this.obs(`refused: ${verified.status}`, detail);
    } catch (err) {
      if (err instanceof OcspVerifyError) return this.obs(`refused: ${err.reason}`, err.message);
      return this.obs("refused: malformed", String(err));
    }
  }

  private obs(outcome: string, detail: string): ClientObservation {
    return { client: this.name, outcome, detail };
  }
}

/**
 * The DER certificates of a peer's chain as node:tls saw it, leaf first: the certificates the
 * server sent, then the trust anchor that completed it (node links each to its issuer and ends
 * with a self-signed certificate pointing at itself).
 */
function peerChain(leaf: DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  let cert: DetailedPeerCertificate | undefined = leaf;
  while (cert?.raw && !seen.has(cert)) {
    seen.add(cert);
    out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}

/**
 * The certificate among `candidates` that issued `certificate`: its subject is the
 * certificate's issuer name and its key verifies the certificate's signature (RFC 5280 §6.1.3).
 * The OCSP response must be signed by it or by a delegated signer it issued (RFC 6960 §4.2.2.2).
 */
async function findIssuer(
  certificate: x509.X509Certificate,
  candidates: readonly x509.X509Certificate[],
): Promise<x509.X509Certificate | undefined> {
  for (const c of candidates) {
    if (c.subject !== certificate.issuer) continue;
    if (await certificate.verify({ publicKey: c.publicKey, signatureOnly: true }).catch(() => false)) return c;
  }
  return undefined;
}
