import { createServer, type Server, type ServerResponse } from "node:http";
import express from "express";
import type { AddressInfo } from "node:net";
import { once, setMaxListeners } from "node:events";
import { pino, type Logger } from "pino";
import type { CertificateAuthority } from "@ocsp-lab/ca";
import { defaultCrypto, systemClock, type Clock } from "@ocsp-lab/ocsp";
import { readFile } from "node:fs/promises";
import { createAdminRouter } from "./admin.js";
import { createResponderApp, routeRequests, type CrlSource } from "./app.js";
import { Behaviour, type BehaviourInput, type Fault, type Scope, type StatusOverride } from "./behaviour.js";
import { createOcspHandler } from "./http-handler.js";
import { ResponderMetrics } from "./metrics.js";
import { describeSystemError, isLoopbackHost, isSystemError } from "@ocsp-lab/cli-support";
import { AdminExposedError, ListenError, ResponderStateError } from "./errors.js";
import { OcspService, type SigningOptions } from "./ocsp-service.js";
import { RequestLog, type RequestLogEntry, type RequestQuery } from "./request-log.js";
import { CaStatusSource, CompositeStatusSource, type ServedIssuer, type StatusSource } from "./status-source.js";

/** Where the admin API listens and what it asks of a request (see OcspResponder.withAdmin). */
export interface AdminOptions {
  /** Its own TCP port (0: any free one), always on 127.0.0.1; default: on the OCSP port, under /admin. */
  port?: number;
  /** Require `Authorization: Bearer <token>` on every admin request and on `/metrics`. */
  token?: string;
  /**
   * Serve the admin API without a token on an OCSP port that listens on a non-loopback address
   * (default false: start() refuses, AdminExposedError).
   */
  allowUnauthenticated?: boolean;
}

/**
 * Builder of an OCSP responder (testcontainers style): configure with `with*`, then `start()`
 * for a StartedOcspResponder. Binds 127.0.0.1 on an ephemeral port unless told otherwise.
 *
 * ```ts
 * const responder = await (await OcspResponder.forCa(ca)).withPort(0).start();
 * responder.setStatus(serial, { status: "revoked", revocationReason: CRLReason.keyCompromise });
 * ```
 */
export class OcspResponder {
  private host = "127.0.0.1";
  private port = 0;
  private clock: Clock = systemClock;
  private crypto: Crypto = defaultCrypto;
  private validitySeconds = 3600;
  private logger: Logger = pino({ level: "silent" });
  private signing: SigningOptions = {};
  private unknownIssuer: "unauthorized" | "unknown" = "unauthorized";
  private cache = true;
  private cacheMaxBytes: number | undefined;
  private admin: AdminOptions = {};
  private readonly source: StatusSource;
  private readonly crls: CrlSource | undefined;
  private readonly issuerList: () => ServedIssuer[];

  /** A responder answering from `source` (each issuer signed for by its own signer), serving CRLs from `crls` if given. */
  constructor(params: { source: StatusSource; crls?: CrlSource; issuers?: () => ServedIssuer[] }) {
    this.source = params.source;
    this.crls = params.crls;
    this.issuerList = params.issuers ?? (() => []);
  }

  /**
   * A responder for a lab CA: statuses from its store, signed by its delegated OCSP signer, and
   * the CA's CRLs at `/crl/<issuer serial>.crl` (full) and `/crl/<issuer serial>-delta.crl`.
   */
  static async forCa(ca: CertificateAuthority, crypto?: Crypto): Promise<OcspResponder> {
    return OcspResponder.forCas([ca], crypto);
  }

  /**
   * One endpoint for several lab CAs (each with its root and intermediates, each signed for by
   * its own delegated signer) and their CRLs.
   */
  static async forCas(cas: CertificateAuthority[], crypto?: Crypto): Promise<OcspResponder> {
    const sources = await Promise.all(cas.map((ca) => CaStatusSource.create(ca, crypto)));
    const crls: CrlSource = {
      async crl(issuerSerial, delta) {
        for (const ca of cas) {
          const rec = ca.get(issuerSerial);
          if (!rec || (rec.kind !== "root" && rec.kind !== "intermediate")) continue;
          const files = ca.crlFiles(issuerSerial);
          try {
            return new Uint8Array(await readFile(delta ? files.deltaDer : files.fullDer));
          } catch {
            return undefined;
          }
        }
        return undefined;
      },
    };
    const source = sources.length === 1 ? sources[0]! : new CompositeStatusSource(sources);
    return new OcspResponder({ source, crls, issuers: () => sources.flatMap((s) => s.issuers()) });
  }

  /** Interface to bind; default 127.0.0.1 (nothing listens beyond this machine unless asked). */
  withHost(host: string): this {
    this.host = host;
    return this;
  }

  /** TCP port; default 0 (the OS picks a free one; read it from `StartedOcspResponder.port`). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  /**
   * Time source and scheduler (default systemClock) of everything time-dependent: producedAt,
   * thisUpdate and nextUpdate, the pre-signed cache (re-signed at half validity, never answered
   * from the clock's future), RFC 5019 caching headers (Date, max-age, Expires, Last-Modified),
   * arrival times in the request log (what `since` compares with), and the waits of `delay`,
   * the base delay and `drip`. With a ManualClock those waits last until the clock is advanced.
   */
  withClock(clock: Clock): this {
    this.clock = clock;
    return this;
  }

  /** WebCrypto implementation used to sign. */
  withCrypto(crypto: Crypto): this {
    this.crypto = crypto;
    return this;
  }

  /** nextUpdate − thisUpdate of every response, in seconds (default 3600). */
  withValidity(seconds: number): this {
    this.validitySeconds = seconds;
    return this;
  }

  /**
   * A pino logger (default silent): handler failures at `error`, one `debug` line per OCSP
   * request (the request log and the metrics keep every request whatever the level).
   */
  withLogger(logger: Logger): this {
    this.logger = logger;
    return this;
  }

  /** How responses are signed: by the delegated signer or the CA, responderID byKey or byName, signer certificate included, RSA-PSS. */
  withSigning(signing: SigningOptions): this {
    this.signing = signing;
    return this;
  }

  /** Answer CertIDs of issuers not served here `unauthorized` (default) or with a signed `unknown`. */
  withUnknownIssuer(mode: "unauthorized" | "unknown"): this {
    this.unknownIssuer = mode;
    return this;
  }

  /**
   * Keep pre-signed answers for nonce-less requests (default true), at most `maxBytes` of them
   * (default DEFAULT_CACHE_MAX_BYTES, 128 MiB; the oldest are dropped first, see AnswerCache).
   */
  withCache(enabled: boolean, options: { maxBytes?: number } = {}): this {
    this.cache = enabled;
    if (options.maxBytes !== undefined) this.cacheMaxBytes = options.maxBytes;
    return this;
  }

  /**
   * The admin API: on the OCSP port under /admin (default) or on its own `port`, which binds
   * 127.0.0.1 whatever withHost says; optionally behind `Authorization: Bearer <token>` (then
   * `/metrics` needs it too). Without a token, start() refuses to serve it on an OCSP port that
   * listens on a non-loopback address unless `allowUnauthenticated` is true. Every admin
   * request passes adminGuard (body size, Host, token, Origin).
   */
  withAdmin(options: AdminOptions): this {
    this.admin = options;
    return this;
  }

  /**
   * Listen; resolves once the port(s) are bound.
   * @throws AdminExposedError (before anything binds) for an admin API without a token on a
   * non-loopback OCSP listener, unless allowUnauthenticated; ListenError for a port in use, an
   * address not of this machine, a privileged port (nothing is left bound).
   */
  async start(): Promise<StartedOcspResponder> {
    const separateAdmin = this.admin.port !== undefined;
    assertAdminProtected(this.host, this.admin);
    const behaviour = new Behaviour();
    const log = new RequestLog();
    const service = new OcspService({
      source: this.source,
      behaviour,
      clock: this.clock,
      crypto: this.crypto,
      validitySeconds: this.validitySeconds,
      signing: this.signing,
      unknownIssuer: this.unknownIssuer,
      cache: this.cache,
      ...(this.cacheMaxBytes !== undefined ? { cacheMaxBytes: this.cacheMaxBytes } : {}),
    });
    const metrics = new ResponderMetrics(
      () => service.cacheSize,
      () => service.cacheBytes,
    );
    const hung = new Set<ServerResponse>();
    const stopping = new AbortController();
    // Every delayed answer in flight listens for the stop (then removes its listener): under load
    // that is many more than the default 10, and no leak.
    setMaxListeners(0, stopping.signal);
    const ocsp = createOcspHandler({
      service,
      log,
      clock: this.clock,
      logger: this.logger,
      metrics,
      hung,
      stopping: stopping.signal,
    });
    let adminServer: Server | undefined;
    const bound = (s: Server | undefined) => (): { address: string; port: number } | undefined =>
      (s?.address() as AddressInfo | null | undefined) ?? undefined;
    const admin = createAdminRouter({
      behaviour,
      log,
      issuers: this.issuerList,
      ...(this.admin.token !== undefined ? { token: this.admin.token } : {}),
      // The listener it is served on: its own, or the OCSP port's.
      listener: () => (separateAdmin ? bound(adminServer)() : bound(server)()),
    });
    const app = createResponderApp({
      metrics,
      ...(this.crls ? { crls: this.crls } : {}),
      issuerCertificates: this.issuerList,
      ...(separateAdmin ? {} : { admin }),
      ...(this.admin.token !== undefined ? { metricsToken: this.admin.token } : {}),
    });
    const server = createServer(routeRequests(ocsp, app));
    await listen(server, this.port, this.host, "listen.port (--port)", "listen.host (--host)");
    if (separateAdmin) {
      const adminApp = express();
      adminApp.disable("x-powered-by");
      adminApp.use("/admin", admin);
      adminServer = createServer(adminApp);
      try {
        // 127.0.0.1 whatever the OCSP port binds: the admin API changes every answer.
        await listen(adminServer, this.admin.port!, "127.0.0.1", "admin.port", undefined);
      } catch (err) {
        server.close();
        throw err;
      }
    }
    return new StartedOcspResponder({
      server,
      adminServer,
      behaviour,
      log,
      host: this.host,
      hung,
      metrics,
      issuers: this.issuerList,
      stopping,
    });
  }
}

/**
 * Refuse an admin API that other machines could reach without a token: on the OCSP port (no
 * `admin.port`) that listens on `host`, not a loopback address, with no token and no
 * `allowUnauthenticated`. Run by start() before anything binds, and by `ocsp-responder --check`.
 * @throws AdminExposedError
 */
export function assertAdminProtected(host: string, admin: AdminOptions): void {
  if (admin.port === undefined && admin.token === undefined && !admin.allowUnauthenticated && !isLoopbackHost(host))
    throw new AdminExposedError(host);
}

/**
 * Bind `server`; a listen error becomes a ListenError naming the config key to change
 * (`portKey`, `hostKey`) and the fix.
 */
async function listen(server: Server, port: number, host: string, portKey: string, hostKey: string | undefined): Promise<void> {
  server.listen(port, host);
  try {
    await once(server, "listening");
  } catch (err) {
    if (!isSystemError(err)) throw err;
    const setting = err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" ? (hostKey ?? portKey) : portKey;
    throw new ListenError(describeSystemError(err, { setting })!, { cause: err });
  }
}

/**
 * A running responder: its address, its run-time behaviour (status overrides, delay, faults)
 * and its request log. Stop it with `stop()` or `await using`.
 */
export class StartedOcspResponder {
  /** Run-time behaviour; the set* methods below are shortcuts to it. */
  readonly behaviour: Behaviour;
  /** What the responder was asked. */
  readonly log: RequestLog;
  /** Prometheus metrics of this responder. */
  readonly metrics: ResponderMetrics;
  private readonly server: Server;
  private readonly adminServer: Server | undefined;
  private readonly hostName: string;
  private readonly hung: Set<ServerResponse>;
  private readonly issuerList: () => ServedIssuer[];
  private readonly stopping: AbortController;
  private stopped = false;

  /** Made by OcspResponder.start(); not meant to be called directly. */
  constructor(p: {
    server: Server;
    adminServer: Server | undefined;
    behaviour: Behaviour;
    log: RequestLog;
    host: string;
    hung: Set<ServerResponse>;
    metrics: ResponderMetrics;
    issuers: () => ServedIssuer[];
    stopping: AbortController;
  }) {
    this.stopping = p.stopping;
    this.server = p.server;
    this.adminServer = p.adminServer;
    this.behaviour = p.behaviour;
    this.log = p.log;
    this.hostName = p.host;
    this.hung = p.hung;
    this.metrics = p.metrics;
    this.issuerList = p.issuers;
  }

  /** Bound host. */
  get host(): string {
    return this.hostName;
  }

  /** Bound port. */
  get port(): number {
    const address = this.server.address() as AddressInfo | null;
    if (!address) throw new ResponderStateError("the responder is not listening (stopped?)");
    return address.port;
  }

  /** Base URL to put in AuthorityInfoAccess, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    const host = this.hostName.includes(":") ? `[${this.hostName}]` : this.hostName;
    return `http://${host}:${this.port}`;
  }

  /** Base URL of the admin API (`…/admin`): on the OCSP port, or on its own port on 127.0.0.1. */
  get adminUrl(): string {
    if (!this.adminServer) return `${this.url}/admin`;
    const { address, port } = this.adminServer.address() as AddressInfo;
    return `http://${address}:${port}/admin`;
  }

  /** The issuers served (root and intermediates of every CA), with their signers. */
  issuers(): ServedIssuer[] {
    return this.issuerList();
  }

  /** Apply a behaviour (see Behaviour.set) to `scope`. */
  setBehaviour(scope: Scope, behaviour: BehaviourInput): void {
    this.behaviour.set(scope, behaviour);
  }

  /** Remove the behaviour of `scope`. */
  clearBehaviour(scope: Scope): void {
    this.behaviour.clear(scope);
  }

  /**
   * URL of the certificate of the CA `issuerSerial` (DER), to put in AuthorityInfoAccess
   * caIssuers (RFC 5280 §4.2.2.1), served by responders that know their issuers (forCa, forCas).
   */
  caIssuersUrl(issuerSerial: string): string {
    return `${this.url}/ca/${issuerSerial}.der`;
  }

  /** URL of the full CRL of the CA `issuerSerial`, to put in CRLDistributionPoints (served by forCa responders). */
  crlUrl(issuerSerial: string, delta = false): string {
    return `${this.url}/crl/${issuerSerial}${delta ? "-delta" : ""}.crl`;
  }

  /** See Behaviour.setStatus. */
  setStatus(serial: string, override: StatusOverride): void {
    this.behaviour.setStatus(serial, override);
  }

  /** See Behaviour.clearStatus. */
  clearStatus(serial: string): void {
    this.behaviour.clearStatus(serial);
  }

  /** Delay every answer by `ms` milliseconds of the responder's clock (see Behaviour.setDelay). */
  setDelay(ms: number): void {
    this.behaviour.setDelay(ms);
  }

  /** See Behaviour.setFault; `undefined` clears. */
  setFault(fault: Fault | undefined): void {
    this.behaviour.setFault(fault);
  }

  /** Logged requests matching `query`. */
  requests(query?: RequestQuery & { limit?: number }): RequestLogEntry[] {
    return this.log.list(query);
  }

  /** Resolve once `count` (default 1) matching requests were answered; see RequestLog.waitFor. */
  waitForRequests(query: RequestQuery & { count?: number } = {}, timeoutMs?: number): Promise<RequestLogEntry[]> {
    return this.log.waitFor(query, timeoutMs);
  }

  /**
   * Stop listening and drop every open connection (hung requests included); pending delays and
   * drips end, their clock timers cancelled. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    for (const res of this.hung) res.destroy();
    const close = (server: Server | undefined): Promise<void> =>
      server
        ? new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          })
        : Promise.resolve();
    await Promise.all([close(this.server), close(this.adminServer)]);
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
