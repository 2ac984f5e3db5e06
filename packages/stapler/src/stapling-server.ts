import { createServer as createHttpsServer } from "node:https";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createServer as createTlsServer, type SecureContext, type Server as TlsServer } from "node:tls";
import { constants, watchFile, unwatchFile, type Stats } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { EventEmitter, once } from "node:events";
import { pino, type Logger } from "pino";
import { defaultCrypto, normalizeSerial, systemClock, type Clock } from "@ocsp-lab/ocsp";
import { createAdminApp, type AdminOptions } from "./admin.js";
import { httpBackend, tcpBackend, type Backend } from "./backends.js";
import {
  checkNames,
  describeEntries,
  loadCertificate,
  readEntry,
  type CertificateEntry,
  type CertificateFiles,
  type LoadedCertificate,
  type LoadOptions,
  type ServedCertificate,
  type TlsVersions,
} from "./certificates.js";
import { describeSystemError, isLoopbackHost, isSystemError } from "@ocsp-lab/cli-support";
import { AdminExposedError, CertificateSetupError, ReloadError, StaplerError, StateDirError } from "./errors.js";
import { StaplerMetrics } from "./metrics.js";
import { parsePolicy, type PollingPolicy, type PollingPolicyInput } from "./policy.js";
import { StapleManager, type StapleManagerEvents, type StapleSnapshot } from "./staple-manager.js";
import { STAPLES_FOLDER, StapleStore } from "./staple-store.js";
import {
  sameStapleSource,
  toStapleSource,
  type StapleSourceInput,
  type StapleSourceKind,
  type StapleSourceSpec,
} from "./staple-source.js";

/**
 * Builder of a TLS server that staples OCSP responses for its certificates (testcontainers
 * style: `with*`, then `start()`). Binds 127.0.0.1 on an ephemeral port unless told otherwise.
 *
 * ```ts
 * const server = await new StaplingServer()
 *   .withCertificateFiles({ certFile: "rsa.pem", keyFile: "rsa.key" })
 *   .withCertificateFiles({ certFile: "ec.pem", keyFile: "ec.key" })
 *   .withPolicy({ query_frequency: 300, on_failure: "serve-until-expiry" })
 *   .withBackend({ kind: "tcp", host: "127.0.0.1", port: 6379 })
 *   .withStateDir(".ocsp-lab")
 *   .start();
 * ```
 */
export class StaplingServer {
  private readonly entries: CertificateEntry[] = [];
  private host = "127.0.0.1";
  private port = 0;
  private policyInput: PollingPolicyInput = {};
  private responderUrl: string | undefined;
  private clock: Clock = systemClock;
  private crypto: Crypto = defaultCrypto;
  private logger: Logger = pino({ level: "silent" });
  private backend: Backend = { kind: "status" };
  private tls: TlsVersions = {};
  private stateDir: string | undefined;
  private admin: AdminOptions | false = {};
  private watchMs = 1000;
  private stapleSource: StapleSourceSpec = { kind: "verified" };

  /** A server; give it certificates with withCertificate()/withCertificateFiles() (or here, for one). */
  constructor(material?: ServedCertificate) {
    if (material) this.entries.push({ kind: "pem", material });
  }

  /**
   * A server for one certificate from files (kept for the single-certificate case).
   * @throws CertificateSetupError when a file cannot be read.
   */
  static async fromFiles(files: CertificateFiles): Promise<StaplingServer> {
    await readEntry({ kind: "files", files });
    return new StaplingServer().withCertificateFiles(files);
  }

  /** Serve this certificate (PEM in memory); repeat for several, chosen by SNI. */
  withCertificate(material: ServedCertificate): this {
    this.entries.push({ kind: "pem", material });
    return this;
  }

  /** Serve this certificate from files, reloaded when they change; repeat for several, chosen by SNI. */
  withCertificateFiles(files: CertificateFiles): this {
    this.entries.push({ kind: "files", files });
    return this;
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

  /** Stapling policy in seconds (see PollingPolicyInput: query_frequency, on_failure, mode...). */
  withPolicy(policy: PollingPolicyInput): this {
    this.policyInput = policy;
    return this;
  }

  /**
   * Where the staples of every certificate without its own `stapleSource` come from (default
   * `verified`, the production behaviour): `as-received` (whatever the responder answered,
   * unverified, fetched under the same policy), `{ kind: "bytes", der }` (exactly these DER
   * bytes), `{ kind: "file", path }` (a DER file, re-read on reload and watched with the
   * certificate files), `none` (never staple). Anything but `verified` is for testing TLS
   * clients and logged at warn at start. See STAPLE_SOURCE_KINDS.
   * @throws InvalidStapleSourceError for an unknown kind, bytes without `der`, file without `path`.
   */
  withStapleSource(source: StapleSourceInput): this {
    this.stapleSource = toStapleSource(source);
    return this;
  }

  /** Ask this responder for every certificate instead of their AIA OCSP URLs. */
  withResponderUrl(url: string): this {
    this.responderUrl = url;
    return this;
  }

  /** What to do with connections: status page (default), HTTP reverse proxy or TCP proxy. */
  withBackend(backend: Backend): this {
    this.backend = backend;
    return this;
  }

  /** TLS versions offered (default TLSv1.2 to TLSv1.3). */
  withTls(versions: TlsVersions): this {
    this.tls = versions;
    return this;
  }

  /** Persist staples under `<dir>/staples/` and restore them at start (default: not persisted). */
  withStateDir(dir: string): this {
    this.stateDir = dir;
    return this;
  }

  /**
   * The admin endpoint (default: on, 127.0.0.1, ephemeral port), on `options.host` when given;
   * false turns it off. Without `token`, start() refuses a host that is not loopback unless
   * `allowUnauthenticated` is true. Its requests pass adminGuard (body size, Host, token, Origin).
   */
  withAdmin(options: AdminOptions | false): this {
    this.admin = options;
    return this;
  }

  /** An admin endpoint without a token on a host other machines reach, unless allowUnauthenticated: AdminExposedError. */
  private checkAdmin(): void {
    if (!this.admin || this.admin.token !== undefined || this.admin.allowUnauthenticated) return;
    const host = this.admin.host ?? "127.0.0.1";
    if (!isLoopbackHost(host)) throw new AdminExposedError(host);
  }

  /** Check certificate files for changes every `ms` milliseconds (default 1000; 0: only reload() and SIGHUP). */
  withWatch(ms: number): this {
    this.watchMs = ms;
    return this;
  }

  /**
   * Time source and scheduler (default the system clock): verification windows, snapshot
   * times, and every timer of the staple managers (refresh, retries at recovery_frequency,
   * response_timeout). A ManualClock makes all of them move only when the test advances it.
   * The certificate-file watch (withWatch) polls on real time whatever the clock.
   */
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
   * Validate policy and certificates as start() would (files readable, PEM parses, an issuer
   * and an OCSP URL for each, key matches, no two certificates for one name) without fetching
   * or listening; resolves with what would be served.
   * @throws AdminExposedError, InvalidPolicyError, CertificateSetupError as start().
   */
  async check(): Promise<
    {
      serial: string;
      subject: string;
      names: string[];
      responderUrl: string;
      stapleSource: StapleSourceKind;
      stapleFile?: string;
    }[]
  > {
    this.checkAdmin();
    parsePolicy(this.policyInput);
    if (this.entries.length === 0)
      throw new CertificateSetupError(
        "no certificate given to",
        "StaplingServer",
        "add one with withCertificate() or withCertificateFiles()",
      );
    const options = {
      tls: this.tls,
      responderUrl: this.responderUrl,
      crypto: this.crypto,
      stapleSource: this.stapleSource,
    };
    const loaded = await Promise.all(this.entries.map(async (e) => loadCertificate(await readEntry(e), options)));
    checkNames(loaded);
    return loaded.map((l) => ({
      serial: normalizeSerial(l.leaf.serialNumber),
      subject: l.leaf.subject,
      names: l.names,
      responderUrl: l.url,
      stapleSource: l.stapleSource.kind,
      ...(l.stapleSource.kind === "file" ? { stapleFile: l.stapleSource.path } : {}),
    }));
  }

  /**
   * Validate policy and certificates, restore persisted staples, run the first OCSP queries as
   * the policy's `mode` and `startup` say, then listen. Handshakes never wait on the responder
   * (except in the `in-handshake` emulation).
   * @throws AdminExposedError (before anything is read or bound) for an admin endpoint without a
   * token on a non-loopback host, unless allowUnauthenticated; InvalidPolicyError for a bad
   * policy; StateDirError for a state folder that cannot hold staples (a file, read-only, not
   * ours); CertificateSetupError for an unreadable file, a certificate without issuer or OCSP
   * URL, a key that does not match, two certificates for one name; StaplerError
   * `OCSP_LAB_STAPLER_PORT` for a port in use or an address not of this machine.
   */
  async start(): Promise<StartedStaplingServer> {
    this.checkAdmin();
    const policy = parsePolicy(this.policyInput);
    if (this.stateDir) await checkStateDir(this.stateDir);
    if (this.entries.length === 0)
      throw new CertificateSetupError(
        "no certificate given to",
        "StaplingServer",
        "add one with withCertificate() or withCertificateFiles()",
      );
    let started: StartedStaplingServer | undefined;
    const services: Services = {
      metrics: new StaplerMetrics(() => started?.status() ?? []),
      pending: new Set(),
      policy,
      clock: this.clock,
      crypto: this.crypto,
      logger: this.logger,
      tls: this.tls,
      responderUrl: this.responderUrl,
      stapleSource: this.stapleSource,
      store: this.stateDir ? new StapleStore(this.stateDir) : undefined,
    };
    const loaded = await Promise.all(this.entries.map(async (e) => loadCertificate(await readEntry(e), services)));
    const state = await buildState(loaded, undefined, services);
    try {
      started = new StartedStaplingServer({
        entries: this.entries,
        state,
        services,
        backend: this.backend,
        host: this.host,
        watchMs: this.watchMs,
      });
      await started.listen(this.port, this.admin);
      return started;
    } catch (err) {
      for (const m of state.managers) m.stop();
      throw err;
    }
  }
}

/**
 * Make sure staples can be persisted under `<stateDir>/staples/`: create it, and check it is
 * a writable folder. A staple that cannot be written later is logged and the server goes on;
 * at start the operator is there to fix it.
 * @throws StateDirError naming the folder, what is wrong and the fix.
 */
async function checkStateDir(stateDir: string): Promise<void> {
  const dir = join(stateDir, STAPLES_FOLDER);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const problem = describeSystemError(err, { fix: "give another state_dir, or persist: false" });
    throw new StateDirError(`state folder ${stateDir}: ${problem ?? String(err)}`, { cause: err });
  }
}

/** What the certificate loads and the staple managers of one server share. */
interface Services extends LoadOptions {
  metrics: StaplerMetrics;
  stapleSource: StapleSourceSpec;
  /** Managers being started (at start or by a reload), not yet serving: stop() stops them too. */
  pending: Set<StapleManager>;
  policy: PollingPolicy;
  clock: Clock;
  logger: Logger;
  store: StapleStore | undefined;
}

/** What the listener serves right now; replaced as a whole on reload. */
interface ServingState {
  /** With a single certificate: its manager and DER, for the handshake path. */
  only: { manager: StapleManager; der: Buffer } | undefined;
  loaded: LoadedCertificate[];
  managers: StapleManager[];
  byDer: Map<string, StapleManager>;
  byName: Map<string, SecureContext>;
}

/**
 * The serving state for `loaded`: reuse the managers of certificates already served (their
 * staples carry over), start new ones (their first fetch runs before they are served, as the
 * policy's startup says).
 */
async function buildState(
  loaded: LoadedCertificate[],
  previous: ServingState | undefined,
  services: Services,
): Promise<ServingState> {
  const byName = checkNames(loaded);
  const managers: StapleManager[] = [];
  const byDer = new Map<string, StapleManager>();
  const fresh: StapleManager[] = [];
  for (const l of loaded) {
    // Reuse a manager only for the same certificate, issuer and responder: a corrected chain
    // file or responder URL gets a fresh manager (and a fresh fetch).
    const reusable = (c: StapleManager | undefined): StapleManager | undefined =>
      c && c.issuerDer === l.issuerDer && c.responderUrl === l.url && sameStapleSource(c.stapleSource, l.stapleSource)
        ? c
        : undefined;
    let m = reusable(previous?.byDer.get(l.derKey)) ?? reusable(byDer.get(l.derKey));
    if (!m) {
      m = new StapleManager({
        certificate: l.leaf,
        issuer: l.issuer,
        responderUrl: l.url,
        policy: services.policy,
        clock: services.clock,
        crypto: services.crypto,
        logger: services.logger,
        stapleSource: l.stapleSource,
        ...(l.stapleDer ? { stapleDer: l.stapleDer } : {}),
        ...(services.store ? { store: services.store } : {}),
      });
      countFetches(m, services.metrics);
      fresh.push(m);
    }
    if (!byDer.has(l.derKey)) managers.push(m);
    byDer.set(l.derKey, m);
  }
  for (const m of fresh) services.pending.add(m);
  try {
    await Promise.all(fresh.map((m) => m.start()));
  } catch (err) {
    for (const m of fresh) m.stop();
    throw err;
  } finally {
    for (const m of fresh) services.pending.delete(m);
  }
  // A `file` source kept across a reload staples the bytes just re-read.
  for (const l of loaded) {
    const m = byDer.get(l.derKey)!;
    if (!fresh.includes(m) && l.stapleDer) await m.useStapleBytes(l.stapleDer);
  }
  const only = managers.length === 1 ? { manager: managers[0]!, der: Buffer.from(loaded[0]!.leaf.rawData) } : undefined;
  return { only, loaded, managers, byDer, byName };
}

/** Count a manager's queries in the metrics from its very first one (the start-up fetch included). */
function countFetches(m: StapleManager, metrics: StaplerMetrics): void {
  m.on("fetch:failed", (e) => {
    metrics.fetches.inc({ serial: e.snapshot.serial, outcome: e.error.kind });
    if (e.snapshot.lastFetch)
      metrics.fetchDuration.observe({ serial: e.snapshot.serial }, e.snapshot.lastFetch.durationMs / 1000);
  });
  m.on("staple:updated", (s) => {
    if (s.lastFetch?.ok) {
      metrics.fetches.inc({ serial: s.serial, outcome: "ok" });
      metrics.fetchDuration.observe({ serial: s.serial }, s.lastFetch.durationMs / 1000);
    }
  });
  m.on("staple:invalidated", (s) => metrics.invalidations.inc({ serial: s.serial }));
}

/**
 * A listen error as a StaplerError `OCSP_LAB_STAPLER_PORT` saying what is wrong and which
 * setting to change (`portKey` for a port in use or privileged, `hostKey` for an address that
 * is not this machine's); anything else unchanged.
 */
function listenError(err: unknown, portKey: string, hostKey: string): unknown {
  if (!isSystemError(err)) return err;
  const setting = err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" ? hostKey : portKey;
  return new StaplerError("OCSP_LAB_STAPLER_PORT", describeSystemError(err, { setting })!, { cause: err });
}

/** Events of a running stapling server: its managers' events, and reloads. */
export interface StaplingServerEvents extends StapleManagerEvents {
  /** Certificates were reloaded; the snapshots of what is served now. */
  reload: [StapleSnapshot[]];
  /** A reload failed; the previous certificates stay in service. */
  "reload:failed": [ReloadError | StaplerError];
}

/**
 * A running stapling server: address, per-certificate status snapshots, "query now", reload,
 * the admin endpoint and metrics, and events (`staple:updated`, `staple:invalidated`,
 * `fetch:failed` of every certificate; `reload`, `reload:failed`). Stop with `stop()` or
 * `await using`.
 */
export class StartedStaplingServer extends EventEmitter<StaplingServerEvents> {
  /** The policy in force, in milliseconds. */
  readonly policy: PollingPolicy;
  /** Prometheus metrics of this server. */
  readonly metrics: StaplerMetrics;
  private readonly server: TlsServer;
  private adminServer: HttpServer | undefined;
  private readonly hostName: string;
  private readonly entries: CertificateEntry[];
  private readonly services: Services;
  private readonly backend: Backend;
  private readonly watchMs: number;
  private state: ServingState;
  private reloading: Promise<void> = Promise.resolve();
  private readonly watched: string[] = [];
  private readonly forwarded = new WeakSet<StapleManager>();
  /** Open connections (TCP proxy: both ends), destroyed by stop(). */
  private readonly sockets = new Set<Socket>();
  private stopped = false;

  /** Made by StaplingServer.start(); not meant to be called directly. */
  constructor(p: {
    entries: CertificateEntry[];
    state: ServingState;
    services: Services;
    backend: Backend;
    host: string;
    watchMs: number;
  }) {
    super();
    this.entries = p.entries;
    this.state = p.state;
    this.services = p.services;
    this.policy = p.services.policy;
    this.backend = p.backend;
    this.hostName = p.host;
    this.watchMs = p.watchMs;
    this.metrics = p.services.metrics;
    for (const m of this.state.managers) this.forward(m);
    const first = this.state.loaded[0]!;
    // With one certificate there is nothing to choose: no SNICallback, so a handshake does not
    // pay a round trip into JavaScript for it (the OCSPRequest one is the price of stapling).
    const options = {
      ...first.pem,
      ...p.services.tls,
      ...(p.entries.length > 1
        ? {
            SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) =>
              cb(null, this.contextFor(servername)),
          }
        : {}),
    };
    // A TCP client may half-close after sending (redis-cli < file, socat): keep the other
    // direction open until the backend has answered and ended.
    this.server =
      this.backend.kind === "tcp"
        ? createTlsServer(
            { ...options, allowHalfOpen: true },
            tcpBackend(this.backend, { sockets: this.sockets, stopped: () => this.stopped, logger: p.services.logger }),
          )
        : createHttpsServer(
            options,
            httpBackend(this.backend, () => this.status(), p.services.logger),
          );
    // The handshake path: bytes already in memory (or, emulating Apache, a bounded fetch).
    this.server.on(
      "OCSPRequest",
      (certificate: Buffer, _issuer: Buffer, callback: (err: Error | null, resp?: Buffer) => void) => {
        // One certificate served: compare bytes (a memcmp) instead of building a lookup key. A
        // handshake begun before a reload still names the old certificate and gets no staple.
        const state = this.state;
        const only = state.only;
        const manager = only
          ? certificate.equals(only.der)
            ? only.manager
            : undefined
          : state.byDer.get(certificate.toString("latin1"));
        const staple = manager?.handshake();
        if (staple instanceof Promise) {
          staple.then(
            (b) => {
              this.metrics.handshake(b !== undefined);
              callback(null, b);
            },
            () => callback(null, undefined),
          );
          return;
        }
        this.metrics.handshake(staple !== undefined);
        callback(null, staple);
      },
    );
    // A client that aborts its handshake is its own business.
    this.server.on("tlsClientError", (err) => this.services.logger.debug({ err: err.message }, "TLS client error"));
  }

  /** Bind the listener (and the admin endpoint), start watching files. Called by start(). */
  async listen(port: number, admin: AdminOptions | false): Promise<void> {
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.server.listen(port, this.hostName);
    await once(this.server, "listening").catch((err: unknown) => {
      throw listenError(err, "listen.port (--port)", "listen.host (--host)");
    });
    if (admin) {
      try {
        this.adminServer = createHttpServer(
          createAdminApp({
            token: admin.token,
            status: () => this.status(),
            policy: this.policy,
            queryNow: (serial) => this.queryNow(serial),
            reload: () => this.reload(),
            metrics: this.metrics,
            listener: () => (this.adminServer?.address() as AddressInfo | null | undefined) ?? undefined,
          }),
        );
        this.adminServer.listen(admin.port ?? 0, admin.host ?? "127.0.0.1");
        await once(this.adminServer, "listening");
      } catch (err) {
        this.server.close();
        throw listenError(err, "admin.port", "admin.host");
      }
    }
    if (this.watchMs > 0) {
      const stapleFiles = this.state.loaded.flatMap((l) => (l.stapleSource.kind === "file" ? [l.stapleSource.path] : []));
      for (const e of [...this.entries, { kind: "staple-files" as const, files: stapleFiles }]) {
        const files =
          e.kind === "staple-files" ? e.files : e.kind === "files" ? [e.files.certFile, e.files.keyFile, e.files.chainFile] : [];
        for (const f of files) {
          if (!f || this.watched.includes(f)) continue;
          this.watched.push(f);
          watchFile(f, { interval: this.watchMs, persistent: false }, (curr: Stats, prev: Stats) => {
            if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) {
              this.reload().catch(() => {
                /* reported through reload:failed and the log */
              });
            }
          });
        }
      }
    }
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

  /** `https://host:port` of the listener (meaningful for the status and http backends). */
  get url(): string {
    return `https://${this.hostName}:${this.port}`;
  }

  /** `http://127.0.0.1:port` of the admin endpoint, or undefined when it is off. */
  get adminUrl(): string | undefined {
    const address = this.adminServer?.address() as AddressInfo | null | undefined;
    return address
      ? `http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`
      : undefined;
  }

  /** The staple manager of the first (default) certificate; subscribe to its events. */
  get manager(): StapleManager {
    return this.state.managers[0]!;
  }

  /** The staple managers of every served certificate, in the order given. */
  get managers(): readonly StapleManager[] {
    return this.state.managers;
  }

  /** Per-certificate status snapshots, in the order given. */
  status(): StapleSnapshot[] {
    return this.state.managers.map((m) => m.snapshot());
  }

  /**
   * Query the responder now for every certificate (or the one with this serial, in any form
   * normalizeSerial accepts: `0a1b...`, `0A:1B:...`, `0x0a1b...`); resolves with whether each
   * got a verified staple (empty when no served certificate has the serial). The answer is
   * always one asked for after the call: a query under way is waited for, then another is
   * sent (StapleManager.queryNow `fresh`). Redis Enterprise's `POST /v1/ocsp/test`.
   * @throws InvalidSerialError (rejects) for a serial that is not hexadecimal.
   */
  async queryNow(serial?: string): Promise<{ serial: string; stapled: boolean }[]> {
    const managers = this.state.managers.filter((m) => serial === undefined || m.serial === normalizeSerial(serial));
    // Asked for after a change (a responder set right again): a query sent before it cannot say.
    return Promise.all(managers.map(async (m) => ({ serial: m.serial, stapled: await m.queryNow({ fresh: true }) })));
  }

  /**
   * Re-read every certificate and key; certificates that changed get a fresh fetch before they
   * are served (so they are served with a staple when the responder answers), unchanged ones
   * keep their staple; a `file` staple source is re-read (its new bytes served from then on).
   * Serialised: concurrent calls run one after the other. Also run on a change of a certificate
   * or staple file and (by the CLI) on SIGHUP.
   * @throws ReloadError (also emitted as `reload:failed`) when a file cannot be read or served;
   * the previous certificates stay in service.
   */
  reload(): Promise<void> {
    const run = this.reloading.then(() => this.reloadOnce());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadOnce(): Promise<void> {
    if (this.stopped) return;
    let next: ServingState;
    try {
      const loaded = await Promise.all(this.entries.map(async (e) => loadCertificate(await readEntry(e), this.services)));
      if (this.stopped) return;
      next = await buildState(loaded, this.state, this.services);
    } catch (cause) {
      const err =
        cause instanceof StaplerError && !(cause instanceof CertificateSetupError)
          ? cause
          : new ReloadError(describeEntries(this.entries), (cause as Error).message, { cause });
      this.services.logger.error({ err: err.message }, "reload failed; previous certificates kept");
      this.emit("reload:failed", err);
      throw err;
    }
    if (this.stopped) {
      for (const m of next.managers) if (!this.state.managers.includes(m)) m.stop();
      return;
    }
    const old = this.state;
    this.state = next;
    this.server.setSecureContext({ ...next.loaded[0]!.pem, ...this.services.tls });
    for (const m of next.managers) this.forward(m);
    for (const m of old.managers) if (!next.managers.includes(m)) m.stop();
    const snapshots = this.status();
    this.services.logger.info(
      { certificates: snapshots.map((s) => ({ serial: s.serial, staple: s.staple })) },
      "certificates reloaded",
    );
    this.emit("reload", snapshots);
  }

  /** Stop polling, watching and listening; open connections are closed. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const f of this.watched) unwatchFile(f);
    for (const m of this.state.managers) m.stop();
    for (const m of this.services.pending) m.stop();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if ("closeAllConnections" in this.server) (this.server as unknown as HttpServer).closeAllConnections();
    for (const s of this.sockets) s.destroy();
    if (this.adminServer) {
      const admin = this.adminServer;
      const adminClosed = new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections();
      await adminClosed;
    }
    await closed;
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private contextFor(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const exact = this.state.byName.get(name);
    if (exact) return exact;
    const dot = name.indexOf(".");
    // undefined: the listener's default context (the first certificate).
    return dot > 0 ? this.state.byName.get(`*${name.slice(dot)}`) : undefined;
  }

  private forward(m: StapleManager): void {
    if (this.forwarded.has(m)) return;
    this.forwarded.add(m);
    m.on("staple:updated", (s) => this.emit("staple:updated", s));
    m.on("staple:invalidated", (s) => this.emit("staple:invalidated", s));
    m.on("fetch:failed", (e) => this.emit("fetch:failed", e));
  }
}
