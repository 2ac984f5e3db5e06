import { createServer, type Server } from "node:https";
import { promises as fs } from "node:fs";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import * as x509 from "@peculiar/x509";
import { pino, type Logger } from "pino";
import { defaultCrypto, systemClock, type Clock } from "@ocsp-lab/ca";
import { CertificateSetupError, StaplerError } from "./errors.js";
import { parsePolicy, type PollingPolicy, type PollingPolicyInput } from "./policy.js";
import { StapleManager, type StapleSnapshot } from "./staple-manager.js";

/** PEM material of the served certificate. */
export interface ServedCertificate {
  /** Leaf PEM, optionally followed by its chain (a fullchain file). */
  cert: string;
  /** Private key PEM. */
  key: string;
  /** Issuer PEM; default the second certificate of `cert`. */
  issuer?: string;
}

/**
 * Builder of a TLS (HTTPS) server that staples OCSP responses for its certificate
 * (testcontainers style: `with*`, then `start()`). Binds 127.0.0.1 on an ephemeral port unless
 * told otherwise; serves a one-line status page on every path.
 *
 * ```ts
 * const server = await StaplingServer.fromFiles({ certFile, keyFile, chainFile })
 *   .then((s) => s.withPolicy({ query_frequency: 5 }).start());
 * ```
 */
export class StaplingServer {
  private readonly material: ServedCertificate;
  private host = "127.0.0.1";
  private port = 0;
  private policyInput: PollingPolicyInput = {};
  private responderUrl: string | undefined;
  private clock: Clock = systemClock;
  private crypto: Crypto = defaultCrypto;
  private logger: Logger = pino({ level: "silent" });

  /** A server for this certificate, key and (optional) issuer, all PEM. */
  constructor(material: ServedCertificate) {
    this.material = material;
  }

  /**
   * Read certificate (leaf or fullchain), key and optional chain (issuer) PEM files.
   * @throws CertificateSetupError when a file cannot be read.
   */
  static async fromFiles(files: { certFile: string; keyFile: string; chainFile?: string }): Promise<StaplingServer> {
    const read = async (f: string): Promise<string> => {
      try {
        return await fs.readFile(f, "utf8");
      } catch (cause) {
        throw new CertificateSetupError("cannot read", f, "check the path and its permissions", { cause });
      }
    };
    return new StaplingServer({
      cert: await read(files.certFile),
      key: await read(files.keyFile),
      ...(files.chainFile ? { issuer: await read(files.chainFile) } : {}),
    });
  }

  /** Interface to bind; default 127.0.0.1. */
  withHost(host: string): this {
    this.host = host;
    return this;
  }

  /** TCP port; default 0 (ephemeral; read it from `StartedStaplingServer.port`). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  /** Polling policy in seconds (query_frequency, response_timeout, recovery_frequency, recovery_max_tries). */
  withPolicy(policy: PollingPolicyInput): this {
    this.policyInput = policy;
    return this;
  }

  /** Ask this responder instead of the certificate's AIA OCSP URL. */
  withResponderUrl(url: string): this {
    this.responderUrl = url;
    return this;
  }

  /** Time source for verification windows and snapshot times. */
  withClock(clock: Clock): this {
    this.clock = clock;
    return this;
  }

  /** WebCrypto implementation used to verify responses. */
  withCrypto(crypto: Crypto): this {
    this.crypto = crypto;
    return this;
  }

  /** A pino logger (default silent). */
  withLogger(logger: Logger): this {
    this.logger = logger;
    return this;
  }

  /**
   * Validate the policy and certificate, run the first OCSP query (bounded by
   * response_timeout), then listen. The listener is up whether or not the first query succeeded;
   * handshakes never wait on the responder.
   * @throws InvalidPolicyError for a bad policy; CertificateSetupError when the certificate has
   * no issuer or no OCSP URL.
   */
  async start(): Promise<StartedStaplingServer> {
    const policy = parsePolicy(this.policyInput);
    const certs = splitPem(this.material.cert);
    if (certs.length === 0) throw new CertificateSetupError("no certificate in", this.material.cert.slice(0, 40), "give a PEM certificate");
    const leaf = parseCert(certs[0]!);
    const issuerPem = this.material.issuer ? splitPem(this.material.issuer)[0] : certs[1];
    if (!issuerPem) {
      throw new CertificateSetupError("no issuer for", leaf.subject, "give the issuer certificate (chain file) or a fullchain certificate");
    }
    const issuer = parseCert(issuerPem);
    const url = this.responderUrl ?? aiaOcspUrl(leaf);
    if (!url) {
      throw new CertificateSetupError("no OCSP URL in", leaf.subject, "the certificate has no AIA OCSP URL; set one with withResponderUrl()");
    }
    const manager = new StapleManager({
      certificate: leaf,
      issuer,
      responderUrl: url,
      policy,
      clock: this.clock,
      crypto: this.crypto,
      logger: this.logger,
    });
    await manager.start();
    // Whatever fails from here on (a key that does not match, a port in use) must not leave the poller running.
    try {
      // Send the chain with the leaf: clients such as curl look for the issuer among the
      // certificates the server sends to compute the CertID of the staple.
      const chain = certs.includes(issuerPem) ? certs : [...certs, issuerPem];
      const server = createServer({ cert: chain.join("\n") + "\n", key: this.material.key }, (req, res) => {
        const snap = manager.snapshot();
        res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
        res.end(`ocsp-lab stapler: ${snap.subject} serial ${snap.serial} staple ${snap.staple}\n`);
      });
      // The handshake path: bytes already in memory, or nothing.
      server.on("OCSPRequest", (_cert: Buffer, _issuer: Buffer, callback: (err: Error | null, resp?: Buffer) => void) => {
        callback(null, manager.current());
      });
      // A client that aborts its handshake is its own business.
      server.on("tlsClientError", (err) => this.logger.debug({ err: err.message }, "TLS client error"));
      server.listen(this.port, this.host);
      await once(server, "listening");
      return new StartedStaplingServer(server, manager, this.host, policy);
    } catch (err) {
      manager.stop();
      throw err;
    }
  }
}

/**
 * A running stapling server: address, status snapshot, "query now", events of its
 * StapleManager (`staple:updated`, `staple:invalidated`, `fetch:failed`). Stop with `stop()`
 * or `await using`.
 */
export class StartedStaplingServer {
  /** The staple manager; subscribe to its events. */
  readonly manager: StapleManager;
  /** The policy in force, in milliseconds. */
  readonly policy: PollingPolicy;
  private readonly server: Server;
  private readonly hostName: string;
  private stopped = false;

  /** Made by StaplingServer.start(); not meant to be called directly. */
  constructor(server: Server, manager: StapleManager, host: string, policy: PollingPolicy) {
    this.server = server;
    this.manager = manager;
    this.hostName = host;
    this.policy = policy;
  }

  /** Bound host. */
  get host(): string {
    return this.hostName;
  }

  /** Bound port. */
  get port(): number {
    const address = this.server.address() as AddressInfo | null;
    if (!address) throw new StaplerError("OCSP_LAB_STAPLER_STATE", "the stapler is not listening (stopped?)");
    return address.port;
  }

  /** Per-certificate status snapshots (one certificate in this version). */
  status(): StapleSnapshot[] {
    return [this.manager.snapshot()];
  }

  /** Query the responder now; resolves true when a verified response was stapled. */
  queryNow(): Promise<boolean> {
    return this.manager.queryNow();
  }

  /** Stop polling and listening; open connections are closed. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.manager.stop();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The PEM certificate blocks of a text, in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function parseCert(pem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new CertificateSetupError("unreadable certificate", pem.slice(0, 60), "give a PEM X.509 certificate", { cause });
  }
}

/** The first OCSP URL of a certificate's AuthorityInfoAccess (RFC 5280 §4.2.2.1), if any. */
export function aiaOcspUrl(cert: x509.X509Certificate): string | undefined {
  const aia = cert.getExtension(x509.AuthorityInfoAccessExtension);
  const name = aia?.ocsp.find((g) => g.type === "url");
  return name?.value;
}
