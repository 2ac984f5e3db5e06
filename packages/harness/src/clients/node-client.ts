import { connect, type ConnectionOptions, type DetailedPeerCertificate, type TLSSocketOptions } from "node:tls";
import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { OcspVerifyError, systemClock, verifyOcspResponse, type Clock } from "@ocsp-lab/ocsp";
import type { ClientDriver, ClientObservation, KeptSession, TlsTarget } from "./client.js";

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
 *
 * A resumed session (probeKeepingSession, then resume) is accepted as node:tls accepts it: the
 * server sends no certificate and so no staple (TLS 1.3 PSK resumption, RFC 8446 §2.2; a TLS 1.2
 * abbreviated handshake has no Certificate and no CertificateStatus, and RFC 6066 §1.1 applies the
 * original session's status_request to it), so there is nothing to verify and the client connects
 * on the staple it verified when the session was made: `connected (resumed, no staple seen)`. It
 * does not refuse to resume for want of a fresh staple, by design: the harness shows what a TLS
 * client with a session cache does (scenario resumed-after-revocation), and a staple still within
 * its nextUpdate, as the session's was, would not have stopped it anyway. Every probe is a full
 * handshake (no session offered) and verifies the staple afresh.
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
    return this.judge(await handshake(target, caPem, {}), target, caPem);
  }

  /**
   * See ClientDriver.probeKeepingSession: the handshake as probe judges it, and the session of
   * the server's first NewSessionTicket (node:tls `session` event; waited for up to 10 s after
   * the handshake, as TLS 1.3 sends tickets after it).
   */
  async probeKeepingSession(target: TlsTarget): Promise<{ observation: ClientObservation; session: KeptSession }> {
    const caPem = await fs.readFile(target.caFile, "utf8");
    const first = await handshake(target, caPem, { keep: true });
    const observation = await this.judge(first, target, caPem);
    let used = false;
    const session: KeptSession = {
      resume: async () => {
        if (used || !first.session)
          return this.obs("no session to resume", used ? "the session was resumed once already" : "the server gave no session");
        used = true;
        const again = await handshake(target, caPem, { session: first.session });
        if (again.error) return this.obs("refused: tls error (not resumed)", again.error.message);
        if (!again.reused) {
          const full = await this.judge(again, target, caPem);
          return this.obs(`${full.outcome} (not resumed)`, full.detail);
        }
        if (!again.staple)
          return this.obs(
            "connected (resumed, no staple seen)",
            `${again.protocol} session resumed: no certificate, no staple (RFC 8446 §2.2); when it was made: ${observation.outcome}, ${observation.detail}`,
          );
        const judged = await this.judge(again, target, caPem);
        return this.obs(`${judged.outcome} (resumed)`, judged.detail);
      },
      discard: async () => {
        used = true;
      },
    };
    return { observation, session };
  }

  /** The verdict on one handshake: its staple verified against the certificate it came with. */
  private async judge(handshake: Handshake, target: TlsTarget, caPem: string): Promise<ClientObservation> {
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

/** What one handshake of the Node client saw. */
interface Handshake {
  staple: Buffer | undefined;
  /** The peer's chain, leaf first (empty on a resumed session: no certificate was sent). */
  chain?: Buffer[];
  error?: Error;
  /** The server resumed the session offered (`socket.isSessionReused()`). */
  reused?: boolean;
  /** The negotiated protocol, e.g. TLSv1.3. */
  protocol?: string;
  /** With `keep`: the server's first session (ticket), for `tls.connect({ session })`. */
  session?: Buffer;
}

/**
 * One `tls.connect({ requestOCSP: true })` to `target`, offering `session` when given; with
 * `keep`, the socket stays open after the handshake until the server's first session arrives
 * (TLS 1.3 sends its NewSessionTicket after the handshake), at most HANDSHAKE_TIMEOUT_MS.
 */
function handshake(target: TlsTarget, caPem: string, opts: { session?: Buffer; keep?: boolean }): Promise<Handshake> {
  return new Promise((resolve) => {
    let staple: Buffer | undefined;
    let session: Buffer | undefined;
    let connected: Omit<Handshake, "staple" | "session"> | undefined;
    let settled = false;
    // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
    const options: ConnectionOptions & TLSSocketOptions = {
      host: target.host,
      port: target.port,
      servername: target.servername,
      ca: caPem,
      requestOCSP: true,
      timeout: HANDSHAKE_TIMEOUT_MS,
      ...(opts.session ? { session: opts.session } : {}),
    };
    const socket = connect(options);
    const finish = (extra: Partial<Handshake> = {}): void => {
      if (settled) return;
      settled = true;
      socket.end();
      resolve({ staple, ...connected, ...(session ? { session } : {}), ...extra });
    };
    // Emitted during the handshake, before secureConnect; `response` is null when none was stapled.
    socket.on("OCSPResponse", (response: Buffer | null) => {
      staple = response && response.length > 0 ? response : undefined;
    });
    socket.on("session", (s: Buffer) => {
      session ??= s;
      if (connected) finish();
    });
    socket.once("secureConnect", () => {
      connected = {
        chain: peerChain(socket.getPeerCertificate(true)),
        reused: socket.isSessionReused(),
        protocol: socket.getProtocol() ?? "TLS",
      };
      if (!opts.keep || session) finish();
    });
    socket.once("timeout", () => {
      if (connected) return finish();
      socket.destroy();
      finish({ error: new Error(`no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`) });
    });
    socket.once("close", () =>
      finish(connected ? {} : { error: new Error("the server closed the connection during the handshake") }),
    );
    socket.on("error", (error) => finish(connected ? {} : { error }));
  });
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
