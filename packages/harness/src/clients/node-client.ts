import { connect, type ConnectionOptions, type TLSSocketOptions } from "node:tls";
import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { OcspVerifyError, systemClock, verifyOcspResponse, type Clock } from "@ocsp-lab/ocsp";
import type { ClientDriver, ClientObservation, TlsTarget } from "./client.js";

/** Handshake deadline of the Node client, in milliseconds. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A strict Node.js client: `tls.connect({ requestOCSP: true })`, then verifies the stapled
 * response exactly as the stapler does (verifyOcspResponse: signer, signature, CertID, time
 * window) and refuses the connection unless the staple says good. Reports `connected` or
 * `refused: <reason>` with reason revoked, unknown, no staple, bad signature, stale, wrong
 * certificate, unauthorized signer, not yet valid, not successful, malformed, or tls error.
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
    const handshake = await new Promise<{ staple: Buffer | undefined; leaf?: Buffer; error?: Error }>((resolve) => {
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
        const leaf = socket.getPeerX509Certificate()?.raw;
        socket.end();
        resolve({ staple, leaf });
      });
      socket.once("timeout", () => {
        socket.destroy();
        resolve({ staple, error: new Error(`no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`) });
      });
      socket.once("error", (error) => resolve({ staple, error }));
    });
    if (handshake.error) return this.obs("refused: tls error", handshake.error.message);
    if (!handshake.staple) return this.obs("refused: no staple", "the server stapled no OCSP response");
    const certificate = new x509.X509Certificate(new Uint8Array(handshake.leaf!));
    const issuer = new x509.X509Certificate(caPem);
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
