import type { TlsTarget } from "../clients/client.js";

/** Whether a server can run on this machine; the reason when not (`nginx is not installed...`). */
export type ServerAvailability = { ok: true } | { ok: false; reason: string };

/**
 * The certificate a server under test serves, as files in the server's own folder (so a
 * renewal overwrites them in place, as an operator's deploy hook does): the leaf, its key, the
 * chain above it (its issuer first), the leaf followed by the chain, and the lab's root.
 */
export interface ServedFiles {
  certFile: string;
  keyFile: string;
  chainFile: string;
  fullchainFile: string;
  /** PEM of the trust anchor: what stapling servers verify responses against (nginx's ssl_trusted_certificate). */
  caFile: string;
}

/** What ServerDriver.start is given. */
export interface ServerSetup {
  /** An empty folder of the server's own: config, logs, pid, sockets. Removed by the caller afterwards. */
  dir: string;
  /** The certificate to serve (files in `dir`), whose AIA OCSP URL is `responderUrl`. */
  files: ServedFiles;
  /** The lab responder's base URL, e.g. `http://127.0.0.1:41234` (the certificate's AIA OCSP URL). */
  responderUrl: string;
  /** SNI name the certificate is for (localhost). */
  servername: string;
}

/**
 * A server under test as it runs: where clients connect, how to make it pick up a renewed
 * certificate (the files in ServerSetup.files were overwritten), and how to stop it.
 */
export interface StartedServerUnderTest {
  readonly target: TlsTarget;
  /**
   * Make the server serve the certificate now in its files, the way its operator would (nginx
   * `-s reload`, Apache graceful restart, HAProxy master reload after the cron job fetched the
   * new certificate's response, the stapler's reload()). Resolves once it serves it.
   * @throws ServerUnderTestError when the server did not pick it up within its deadline.
   */
  reload(): Promise<void>;
  /** Stop it and wait for its processes to exit. Idempotent; never throws. */
  stop(): Promise<void>;
  /** Its own log lines so far (error log), for a report's detail. */
  log(): Promise<string>;
}

/**
 * A server the harness can start and run server scenarios against (nginx, Apache httpd,
 * HAProxy, the lab's stapler; a server given as host:port). `documented` says in one line how
 * its documentation says it staples, with where to read it; the scenario files' expectations
 * for it follow from that.
 */
export interface ServerDriver {
  /** Short name used in reports and `--server`. */
  readonly name: string;
  /** One line: how it fetches and staples, per its documentation, with the source. */
  readonly documented: string;
  /** Whether it can run here (its binary is installed, a container engine is reachable...). */
  available(): Promise<ServerAvailability>;
  /**
   * Start it on 127.0.0.1 with a free port, serving `setup.files`, configured from its template
   * for stapling from `setup.responderUrl`; resolves once it accepts TLS connections.
   * @throws ServerUnderTestError when it exits or does not listen within its deadline (with its log).
   */
  start(setup: ServerSetup): Promise<StartedServerUnderTest>;
}
