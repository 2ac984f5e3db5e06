/**
 * The client under test: a tiny HTTPS-style client that insists on a good OCSP staple, the kind
 * of code a service or a database driver carries. It is what you would replace with your own
 * client; the tests beside it show how to prove it refuses what it should.
 */
import { type ConnectionOptions, connect } from "node:tls";
import * as x509 from "@peculiar/x509";
import { verifyOcspResponse } from "@ocsp-lab/ocsp";

/** What the client decided: connected, or refused with a reason. */
export type Outcome = { connected: true } | { connected: false; reason: string };

/**
 * Connect to host:port with TLS, ask for a staple (RFC 6066 status_request), and accept the
 * connection only with a verified, fresh staple saying `good` for the server's certificate.
 * `caPem` is the trust anchor (PEM); `servername` the name to check. Never throws: every failure
 * is a refusal with a reason.
 */
export async function strictConnect(options: {
  host: string;
  port: number;
  servername: string;
  caPem: string;
}): Promise<Outcome> {
  return new Promise((resolve) => {
    let staple: Buffer | null = null;
    // requestOCSP is a real tls.connect option that @types/node does not list.
    const socket = connect({
      host: options.host,
      port: options.port,
      servername: options.servername,
      ca: options.caPem,
      requestOCSP: true,
    } as ConnectionOptions);
    socket.on("OCSPResponse", (r: Buffer) => {
      staple = r;
    });
    socket.once("error", (err) => resolve({ connected: false, reason: `tls: ${err.message}` }));
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate(true);
      socket.destroy();
      if (!staple || staple.length === 0) return resolve({ connected: false, reason: "no staple" });
      const certificate = new x509.X509Certificate(new Uint8Array(peer.raw));
      const issuer = new x509.X509Certificate(new Uint8Array((peer.issuerCertificate ?? peer).raw));
      verifyOcspResponse(new Uint8Array(staple), { certificate, issuer, now: new Date() }).then(
        (v) => resolve(v.status === "good" ? { connected: true } : { connected: false, reason: v.status }),
        (err: unknown) => resolve({ connected: false, reason: (err as { reason?: string }).reason ?? String(err) }),
      );
    });
  });
}
