import { type ConnectionOptions, type PeerCertificate, type TLSSocketOptions, connect } from "node:tls";
import { OcspResponse, normalizeSerial, responseStatusName } from "@ocsp-lab/ocsp";
import type { TlsTarget } from "../clients/client.js";

/**
 * What one handshake with a server under test showed: the staple in one word, which
 * certificate the server sent, and how long the handshake took.
 * - `staple`: `good`, `revoked`, `unknown` (the CertStatus of the staple's first SingleResponse,
 *   RFC 6960 §4.2.1), an unsuccessful responseStatus name (`tryLater`, `internalError`...), `none`
 *   (nothing stapled), `garbage` (not an OCSPResponse), or `no handshake` (TLS failed: `error`).
 * - `expired`: the staple's nextUpdate is before `now` (RFC 6960 §4.2.2.1: a stale response).
 * - `forServed`: the staple's CertID serial is the served certificate's (RFC 6960 §4.1.1);
 *   false when it is about another certificate (a renewal the staple did not follow).
 */
export interface StapleObservation {
  staple: string;
  expired: boolean;
  forServed: boolean;
  /** Serial of the certificate the server sent, lower-case hex (normalizeSerial), or "" when none. */
  servedSerial: string;
  /** Serial in the staple's CertID, or undefined. */
  stapleSerial: string | undefined;
  /** From the TCP connect to the end of the handshake, in milliseconds. */
  handshakeMs: number;
  /** The TLS error, for `no handshake`. */
  error?: string;
}

/** How long one probe handshake may take before it is reported as `no handshake`, in ms: above Apache's 10 s default responder timeout. */
export const PROBE_TIMEOUT_MS = 15_000;

/**
 * One TLS handshake to `target` asking for a staple (status_request, RFC 6066 §8), verifying the
 * chain against `target.caFile` only so far as to learn which certificate came (the staple is
 * reported, not judged: a server scenario observes the server, not a client). Never throws.
 */
export async function probeStaple(target: TlsTarget, now: () => Date = () => new Date()): Promise<StapleObservation> {
  const began = performance.now();
  return new Promise((resolve) => {
    let staple: Buffer | undefined;
    let settled = false;
    // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
    // The certificate is read, not trusted: the observation is what the server sends. No
    // session is offered: a resumed handshake carries no staple.
    const options: ConnectionOptions & TLSSocketOptions = {
      host: target.host,
      port: target.port,
      servername: target.servername,
      requestOCSP: true,
      rejectUnauthorized: false,
    };
    const socket = connect(options);
    const finish = (obs: Omit<StapleObservation, "handshakeMs">): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...obs, handshakeMs: Math.round(performance.now() - began) });
    };
    const timer = setTimeout(() => finish(noHandshake(`no handshake within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
    socket.on("OCSPResponse", (der: Buffer) => {
      staple = der;
    });
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate() as PeerCertificate | undefined;
      const servedSerial = peer?.serialNumber ? normalizeSerial(peer.serialNumber) : "";
      finish(readStaple(staple, servedSerial, now()));
    });
    socket.once("error", (err) => finish(noHandshake(err.message)));
  });
}

function noHandshake(error: string): Omit<StapleObservation, "handshakeMs"> {
  return { staple: "no handshake", expired: false, forServed: false, servedSerial: "", stapleSerial: undefined, error };
}

/** The observation of a staple (or of none) sent with the certificate of serial `servedSerial`. */
function readStaple(der: Buffer | undefined, servedSerial: string, now: Date): Omit<StapleObservation, "handshakeMs"> {
  const base = { servedSerial, expired: false, forServed: false, stapleSerial: undefined };
  if (!der || der.length === 0) return { ...base, staple: "none" };
  let response: OcspResponse;
  try {
    response = OcspResponse.fromDer(der);
  } catch {
    return { ...base, staple: "garbage" };
  }
  const single = response.responses[0];
  if (!single) return { ...base, staple: responseStatusName(response.responseStatus) };
  const stapleSerial = single.certId.serial;
  return {
    servedSerial,
    staple: single.status,
    expired: single.nextUpdate !== undefined && single.nextUpdate.getTime() < now.getTime(),
    forServed: stapleSerial === servedSerial,
    stapleSerial,
  };
}
