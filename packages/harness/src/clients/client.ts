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
 * `detail` is the longer evidence (the client's own words).
 */
export interface ClientObservation {
  client: string;
  outcome: string;
  detail: string;
}

/** A TLS client the harness can drive. */
export interface ClientDriver {
  /** Short name used in reports and `--client`. */
  readonly name: string;
  /** Whether the client exists on this machine (a binary on PATH...); the reason when not. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Connect once with OCSP stapling requested and report what happened. Never throws. */
  probe(target: TlsTarget): Promise<ClientObservation>;
}
