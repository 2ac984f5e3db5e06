/** Where a client connects: a TLS server and the CA file that anchors it. */
export interface TlsTarget {
  /** IP or host to connect to, e.g. 127.0.0.1. */
  host: string;
  port: number;
  /** SNI and the name checked against the certificate, e.g. localhost. */
  servername: string;
  /** PEM file of the trust anchor (the lab's root CA). */
  caFile: string;
}

/**
 * What a client did. `outcome` is the short form compared with a scenario's expectation:
 * - strict clients: `connected` or `refused: <reason>` (reason: revoked, unknown, no staple,
 *   bad signature, stale, wrong certificate, unauthorized signer, not successful, tls error...);
 * - observing clients (openssl s_client): `staple: good|revoked|unknown` or `no staple`.
 * A handshake that offered a kept TLS session (KeptSession.resume) says how it went after the
 * outcome: `connected (resumed, no staple seen)` when the server resumed the session and the
 * client connected (a resumed handshake carries no certificate and so no staple: RFC 8446 §2.2,
 * RFC 6066 §1.1), `<outcome> (resumed)` otherwise (`refused: no staple (resumed)`, `no staple
 * (resumed)`), `<outcome> (not resumed)` when the server made a full handshake instead, and
 * `no session to resume` when the first handshake left none.
 * `detail` is the longer evidence (the client's own words).
 */
export interface ClientObservation {
  client: string;
  outcome: string;
  detail: string;
}

/**
 * A class of clients a scenario file's `expect` can name instead of each client: `strict`
 * (refuses anything but a verified good staple) or `soft-fail` (never refuses for the staple).
 */
export type ClientClass = "strict" | "soft-fail";

/** A TLS client the harness can drive. */
export interface ClientDriver {
  /** Short name used in reports and `--client`. */
  readonly name: string;
  /**
   * The class whose scenario expectations apply when a scenario names no entry for this client
   * (command clients; the built-in ones are listed in CLIENT_CLASSES); undefined: none.
   */
  readonly clientClass?: ClientClass | undefined;
  /** Whether the client exists on this machine (a binary on PATH...); the reason when not. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Connect once with OCSP stapling requested and report what happened. Never throws. */
  probe(target: TlsTarget): Promise<ClientObservation>;
  /**
   * Like probe, and keep the TLS session the server gave (a TLS 1.3 ticket, RFC 8446 §4.6.1; a
   * TLS 1.2 session ID or ticket) to resume it later against the same target. Absent for a
   * client that cannot keep a session. Never throws: when the server gave no session, the kept
   * one resumes as `no session to resume`.
   */
  probeKeepingSession?(target: TlsTarget): Promise<{ observation: ClientObservation; session: KeptSession }>;
}

/** A TLS session a client kept from one handshake (ClientDriver.probeKeepingSession). */
export interface KeptSession {
  /**
   * One handshake with OCSP stapling requested that offers the kept session to the server it
   * came from, reported as ClientObservation says for a resumption. At most once; never throws.
   */
  resume(): Promise<ClientObservation>;
  /** Forget the session and release what keeps it (a file, a process waiting to resume). Idempotent. */
  discard(): Promise<void>;
}
