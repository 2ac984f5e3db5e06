import type { ClientDriver, ClientObservation, TlsTarget } from "./client.js";
import { commandAvailable, execCapture } from "./exec.js";

/**
 * How gnutls-cli (GnuTLS 3.7) words a failed verification with `--ocsp`, mapped to the
 * harness' reasons. First match wins. The verification messages are GnuTLS's
 * gnutls_certificate_verification_status_print (lib/cert-session.c); "Cannot contact OCSP
 * server" is gnutls-cli's own query (src/ocsp-common.c) when the server stapled nothing.
 */
const GNUTLS_REASONS: Array<[RegExp, string]> = [
  [/certificate chain is revoked/i, "revoked"],
  // RFC 7633 must-staple: the TLS feature asks for a staple and none came.
  [/OCSP status is missing/i, "no staple"],
  // Nothing stapled, and gnutls-cli's own query failed: unreachable, not DER (an HTTP error page), or unsuccessful.
  [/Cannot contact OCSP server|importing response:|Got OCSP response with no data/i, "no staple, own OCSP query failed"],
  [/OCSP data are old/i, "stale"],
  [/OCSP status response is invalid/i, "invalid staple"],
  [/certificate is NOT trusted/i, "untrusted certificate"],
  [/Fatal error/i, "tls error"],
];
/**
 * How long one gnutls-cli run may take, in ms. A handshake and gnutls-cli's own OCSP query on
 * 127.0.0.1 take milliseconds; gnutls-cli sets no timeout on that query, so against a hung
 * responder only this deadline ends it (5 s: far above a busy CI machine's loopback, and it
 * keeps a catalogue run short).
 */
const GNUTLS_DEADLINE_MS = 5_000;

/**
 * `gnutls-cli --ocsp` (from gnutls-bin): asks for a staple (status_request) and verifies the
 * chain with it; when the server staples nothing, it asks the certificate's AIA OCSP responder
 * itself. Reports `connected` when the handshake completed and verification passed (exit 0),
 * else `refused: <reason>` (GNUTLS_REASONS). As GnuTLS documents and the lab observes, a
 * stapled `unknown` is accepted: only `revoked` fails the OCSP check (the detail says what the
 * staple said). The detail is the staple's Certificate Status, or gnutls-cli's own query's
 * result, or the failing line.
 */
export class GnutlsClient implements ClientDriver {
  readonly name = "gnutls";

  /** gnutls-cli on PATH. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return commandAvailable("gnutls-cli", ["--version"]);
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const r = await execCapture(
      "gnutls-cli",
      [
        "-V",
        "--ocsp",
        "--x509cafile",
        target.caFile,
        "--port",
        String(target.port),
        "--sni-hostname",
        target.servername,
        "--verify-hostname",
        target.servername,
        target.host,
      ],
      GNUTLS_DEADLINE_MS,
    );
    if (r.spawnError) return this.obs("error", r.spawnError.message);
    const out = `${r.stdout}\n${r.stderr}`;
    const staple = /Certificate Status: (\w+)/.exec(out)?.[1];
    const ownQuery = /OCSP server flags certificate (.*)$/m.exec(out)?.[0] ?? /Cannot contact OCSP server/.exec(out)?.[0];
    // gnutls-cli prints the staple's contents only after a completed handshake; its own query only when there was none.
    const seen = staple ? `staple ${staple}` : ownQuery ? `no staple; its own query: ${ownQuery.trim()}` : undefined;
    if (r.code === 0 && /Handshake was completed/.test(out)) return this.obs("connected", seen ?? "no staple");
    // Killed at GNUTLS_DEADLINE_MS: gnutls-cli sets no timeout on its own OCSP query.
    if (r.code === null)
      return this.obs(
        "refused: timed out",
        /Connecting to OCSP server/.test(out)
          ? `no staple; gnutls-cli was still waiting on its own OCSP query after ${GNUTLS_DEADLINE_MS / 1000} s`
          : `gnutls-cli did not finish within ${GNUTLS_DEADLINE_MS / 1000} s`,
      );
    const reason = GNUTLS_REASONS.find(([re]) => re.test(out))?.[1] ?? `exit ${r.code}`;
    // The most telling line: the verification status, else gnutls-cli's own verdict.
    const lines = out.split("\n");
    const line =
      lines.find((l) => /^- Status: .*NOT/.test(l)) ??
      lines
        .find((l) => /importing response:|Got OCSP response with no data/.test(l))
        ?.replace(/^.*?(importing response:|\*\*\* Got)/, "$1") ??
      lines.find((l) => /^\*\*\* /.test(l) && !/Fatal error/.test(l)) ??
      lines.find((l) => /^\*\*\* /.test(l)) ??
      `exit ${r.code}`;
    return this.obs(`refused: ${reason}`, seen ? `${seen}; ${line.trim()}` : line.trim());
  }

  private obs(outcome: string, detail: string): ClientObservation {
    return { client: this.name, outcome, detail };
  }
}
