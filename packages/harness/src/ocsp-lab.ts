import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import * as x509 from "@peculiar/x509";
import {
  CertificateAuthority,
  parseKeyType,
  type CertificateRecord,
  type IssueServerOptions,
  type IssuedCertificate,
  type KeyType,
} from "@ocsp-lab/ca";
import { normalizeSerial, parseCrlReason, systemClock, type Clock } from "@ocsp-lab/ocsp";
import { OcspResponder, type RequestLogEntry, type StartedOcspResponder } from "@ocsp-lab/responder";
import {
  StaplingServer,
  parsePolicy,
  toStapleSource,
  type PollingPolicyInput,
  type StapleSourceInput,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import type { TlsTarget } from "./clients/client.js";
import { LabOptionError, LabStateError } from "./errors.js";
import { LAB_SERVER_NAME } from "./lab.js";
import { LabResponder, serialOf, type LeafRef } from "./lab-responder.js";
import { StapleWatch } from "./staple-watch.js";

/** The default certificate's names when none are given: DNS localhost and IP 127.0.0.1. */
const DEFAULT_NAMES = { dnsNames: [LAB_SERVER_NAME], ipAddresses: ["127.0.0.1"] };

/** Options of StartedOcspLab.serve. */
export interface ServeOptions {
  /** What this server staples (see StapleSourceInput); default the lab's (withStapleSource), `verified`. */
  stapleSource?: StapleSourceInput;
  /** This server's polling policy, in seconds; default the lab's (withPolicy). */
  policy?: PollingPolicyInput;
  /** TCP port; default 0 (ephemeral). */
  port?: number;
  /** The name clients send as SNI and check; default the certificate's first DNS name, else its first IP, else localhost. */
  servername?: string;
}

/**
 * Builder of an in-process OCSP lab for a user's own test suite (testcontainers style): a
 * private CA in a folder, an OCSP responder for it that misbehaves on demand, and stapling
 * TLS servers, all bound to 127.0.0.1 on ephemeral ports. No YAML, no child process, nothing
 * happens before start().
 *
 * ```ts
 * await using lab = await new OcspLab().withPolicy({ query_frequency: 2 }).start();
 * const leaf = await lab.issue({ dnsNames: ["localhost"] });
 * const server = await lab.serve(leaf);                  // its own port; a TlsTarget
 * await lab.revoke(leaf, "keyCompromise");
 * await lab.staple(leaf).becomes("revoked");             // queries now, awaits the stapler's events
 * ```
 *
 * start() also issues a default certificate (DNS localhost, IP 127.0.0.1, unless
 * withDefaultLeaf says otherwise) and serves it, so `lab.host`, `lab.port`, `lab.servername`
 * and `lab.caFile` (the lab itself is a TlsTarget) are ready for a client at once.
 */
export class OcspLab {
  private keyType: KeyType | undefined;
  private policy: PollingPolicyInput = {};
  private stapleSource: StapleSourceInput = "verified";
  private stateDir: string | undefined;
  private clock: Clock = systemClock;
  private logger: Logger | undefined;
  private host = "127.0.0.1";
  private validitySeconds = 3600;
  private defaultLeaf: IssueServerOptions | false = DEFAULT_NAMES;

  /**
   * Key type of a new CA's root and OCSP signer, and the default for certificates it issues
   * (KEY_TYPES: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519); default
   * ecdsa-p256. Ignored for a CA that already exists in withStateDir's folder.
   * @throws InvalidArgumentError (@ocsp-lab/ca) for another name.
   */
  withKeyType(keyType: string): this {
    this.keyType = parseKeyType(keyType);
    return this;
  }

  /**
   * Polling policy of every stapler the lab starts, in seconds, as the stapler's config takes
   * it (query_frequency, response_timeout, recovery_frequency, recovery_max_tries, on_failure,
   * mode, startup…; see PollingPolicyInput); default the stapler's defaults.
   * @throws InvalidPolicyError (@ocsp-lab/stapler) for an unknown field or a bad value.
   */
  withPolicy(policy: PollingPolicyInput): this {
    parsePolicy(policy);
    this.policy = policy;
    return this;
  }

  /**
   * What every stapler the lab starts staples, unless serve() says otherwise: `verified`
   * (default, the production behaviour), or for testing clients `as-received` (whatever the
   * responder answers, a flawed response included), `none`, `{ kind: "bytes", der }`,
   * `{ kind: "file", path }`.
   * @throws InvalidStapleSourceError (@ocsp-lab/stapler) for anything else.
   */
  withStapleSource(source: StapleSourceInput): this {
    toStapleSource(source);
    this.stapleSource = source;
    return this;
  }

  /**
   * Keep the CA in this folder (opened, or created when it holds none) and leave it there at
   * stop(); the CA then follows changes other processes make to it (`ocsp-lab revoke
   * --state-dir <dir>`…). Default: a fresh temp folder, removed at stop().
   */
  withStateDir(dir: string): this {
    this.stateDir = dir;
    return this;
  }

  /**
   * Time source and scheduler of the CA (notBefore, revocation times), the responder
   * (producedAt, thisUpdate, nextUpdate, delays) and the staplers (freshness, refresh,
   * retries, response_timeout); default the system clock. With a ManualClock nothing moves
   * until the test advances it; the deadlines of `staple().becomes()` stay real milliseconds.
   */
  withClock(clock: Clock): this {
    this.clock = clock;
    return this;
  }

  /** A pino logger for the responder and the staplers; default silent. */
  withLogger(logger: Logger): this {
    this.logger = logger;
    return this;
  }

  /**
   * Interface the responder and the staplers bind, and the host clients are told to connect to;
   * default 127.0.0.1.
   * @throws LabOptionError (code OCSP_LAB_OPTION) for an empty host.
   */
  withHost(host: string): this {
    if (typeof host !== "string" || host === "") throw new LabOptionError("withHost", host, "give an interface, e.g. 127.0.0.1");
    this.host = host;
    return this;
  }

  /**
   * nextUpdate − thisUpdate of the responder's answers, in seconds; default 3600. A short one
   * makes the stapler refresh at half of it (sooner than query_frequency).
   * @throws LabOptionError (code OCSP_LAB_OPTION) for a value that is not a positive number.
   */
  withResponseValidity(seconds: number): this {
    if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0)
      throw new LabOptionError("withResponseValidity", seconds, "give a positive number of seconds");
    this.validitySeconds = seconds;
    return this;
  }

  /**
   * The certificate start() issues and serves at `lab.port`: options of issue() (its names
   * default to DNS localhost and IP 127.0.0.1; mustStaple, keyType, issuer…), or `false` for
   * no default server (then `lab.port`, `lab.leaf`… throw LabStateError; use serve()).
   */
  withDefaultLeaf(options: IssueServerOptions | false): this {
    this.defaultLeaf = options;
    return this;
  }

  /**
   * Create or open the CA, start the responder, then (unless withDefaultLeaf(false)) issue the
   * default certificate and start its stapler, which has its first staple when this resolves
   * (under the default `startup: wait-for-staple`). On failure whatever was started is stopped
   * (and the temp folder removed) before the error is rethrown.
   * @throws the CA's errors (StateCorruptError…), the listen error (EADDRINUSE…), the
   * stapler's (InvalidPolicyError, CertificateSetupError).
   */
  async start(): Promise<StartedOcspLab> {
    const ownDir = this.stateDir === undefined;
    const dir = this.stateDir ?? (await fs.mkdtemp(join(tmpdir(), "ocsp-lab-")));
    const logger = this.logger ?? pino({ level: "silent" });
    let ca: CertificateAuthority | undefined;
    let responder: StartedOcspResponder | undefined;
    try {
      ca = await CertificateAuthority.openOrInit(dir, {
        clock: this.clock,
        watch: !ownDir,
        ...(this.keyType !== undefined ? { keyType: this.keyType } : {}),
      });
      responder = await (await OcspResponder.forCa(ca))
        .withHost(this.host)
        .withClock(this.clock)
        .withLogger(logger)
        .withValidity(this.validitySeconds)
        .start();
      const caPem = await fs.readFile(ca.rootFile, "utf8");
      const lab = new StartedOcspLab({
        ca,
        caPem,
        responder,
        dir,
        ownDir,
        clock: this.clock,
        logger,
        host: this.host,
        policy: this.policy,
        stapleSource: this.stapleSource,
      });
      if (this.defaultLeaf !== false) {
        try {
          await lab.startDefault(this.defaultLeaf);
        } catch (err) {
          await lab.stop();
          throw err;
        }
      }
      return lab;
    } catch (err) {
      // lab.stop() already did this when the lab existed; both steps are idempotent.
      await responder?.stop();
      ca?.close();
      if (ownDir) await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }
}

/** What a StartedOcspLab is made of; see OcspLab.start(). */
interface LabParams {
  ca: CertificateAuthority;
  caPem: string;
  responder: StartedOcspResponder;
  dir: string;
  ownDir: boolean;
  clock: Clock;
  logger: Logger;
  host: string;
  policy: PollingPolicyInput;
  stapleSource: StapleSourceInput;
}

/**
 * One stapling TLS server of a lab serving one certificate (StartedOcspLab.serve). It is a
 * TlsTarget (host, port, servername, caFile) and a LeafRef (serial), so it can be handed to a
 * client driver or to `lab.staple(server)` as it is.
 */
export class LabServer implements TlsTarget {
  /** The certificate served, with its files. */
  readonly leaf: IssuedCertificate;
  /** The StartedStaplingServer itself (status(), queryNow(), events, metrics…). */
  readonly stapler: StartedStaplingServer;
  /** PEM file of the lab's root CA, the trust anchor clients need. */
  readonly caFile: string;
  /** SNI and the name clients check. */
  readonly servername: string;
  private readonly aborter = new AbortController();
  private readonly onStop: (s: LabServer) => void;
  private stopping: Promise<void> | undefined;

  /** Made by StartedOcspLab.serve(); not meant to be called directly. */
  constructor(p: {
    leaf: IssuedCertificate;
    stapler: StartedStaplingServer;
    caFile: string;
    servername: string;
    onStop: (s: LabServer) => void;
  }) {
    this.leaf = p.leaf;
    this.stapler = p.stapler;
    this.caFile = p.caFile;
    this.servername = p.servername;
    this.onStop = p.onStop;
  }

  /** Canonical serial of the certificate served. */
  get serial(): string {
    return this.leaf.serial;
  }

  /** Bound host, where clients connect. */
  get host(): string {
    return this.stapler.host;
  }

  /** Bound port. */
  get port(): number {
    return this.stapler.port;
  }

  /** `https://host:port` (the default certificate carries IP 127.0.0.1, so it verifies as is). */
  get url(): string {
    return this.stapler.url;
  }

  /** Aborted once this server stops (pending staple waits reject). */
  get stopped(): AbortSignal {
    return this.aborter.signal;
  }

  /** Stop the stapler (open connections are closed). Idempotent; the lab's stop() calls it too. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.aborter.abort();
      this.onStop(this);
      await this.stapler.stop();
    })();
    return this.stopping;
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * A running lab (OcspLab.start()): the CA, its responder, the default stapling server and any
 * started with serve(). It is a TlsTarget of the default server. Stop it with stop() or
 * `await using`: every server, the responder, the CA's watcher, and the temp folder.
 */
export class StartedOcspLab implements TlsTarget {
  /** The lab's responder, addressed per certificate (set, clear, requests). */
  readonly responder: LabResponder;
  private readonly p: LabParams;
  private readonly servers: LabServer[] = [];
  /** Run by revoke() and responder.set(): pending staple waits query again. */
  private readonly wakers = new Set<() => void>();
  private readonly stopCrls: () => void;
  private defaultServer: LabServer | undefined;
  private stopping: Promise<void> | undefined;

  /** Made by OcspLab.start(); not meant to be called directly. */
  constructor(p: LabParams) {
    this.p = p;
    this.responder = new LabResponder(p.responder, () => this.wake());
    // Keep the CA's CRLs fresh while the lab runs (republished at half their validity, on the lab's clock).
    this.stopCrls = p.ca.scheduleCrlRefresh((err) => p.logger.warn({ err }, "CRL refresh failed"));
  }

  /** The CertificateAuthority itself (intermediates, holds, CRLs, client certificates…). */
  get ca(): CertificateAuthority {
    return this.p.ca;
  }

  /** Path of the root CA certificate (PEM): the trust anchor to give a TLS client. */
  get caFile(): string {
    return this.p.ca.rootFile;
  }

  /** The root CA certificate, PEM. */
  get caPem(): string {
    return this.p.caPem;
  }

  /** The CA's state folder (a temp folder removed at stop(), unless withStateDir gave one). */
  get stateDir(): string {
    return this.p.dir;
  }

  /** The clock every part of the lab runs on. */
  get clock(): Clock {
    return this.p.clock;
  }

  /** Base URL of the responder, the AIA OCSP URL of every certificate issue() makes. */
  get responderUrl(): string {
    return this.p.responder.url;
  }

  /**
   * The default server (see withDefaultLeaf).
   * @throws LabStateError when the lab was started without one, or it was stopped.
   */
  get server(): LabServer {
    if (!this.defaultServer)
      throw new LabStateError("this lab has no default server (withDefaultLeaf(false)): use lab.serve(leaf)");
    return this.defaultServer;
  }

  /** The default server's certificate. @throws LabStateError as `server`. */
  get leaf(): IssuedCertificate {
    return this.server.leaf;
  }

  /** Where clients connect to the default server. @throws LabStateError as `server`. */
  get host(): string {
    return this.server.host;
  }

  /** The default server's port. @throws LabStateError as `server`. */
  get port(): number {
    return this.server.port;
  }

  /** `https://host:port` of the default server. @throws LabStateError as `server`. */
  get url(): string {
    return this.server.url;
  }

  /** The name the default certificate is for (localhost). @throws LabStateError as `server`. */
  get servername(): string {
    return this.server.servername;
  }

  /**
   * Issue a server certificate whose AIA OCSP URL is the lab's responder (and caIssuers its copy
   * of the issuer's certificate, `/ca/<issuer serial>.der`): options of
   * CertificateAuthority.issueServer (dnsNames, ipAddresses, mustStaple (RFC 7633), keyType,
   * validityDays, notBefore/notAfter, issuer (an intermediate's serial), serial…). Without
   * dnsNames or ipAddresses it is for DNS localhost and IP 127.0.0.1.
   * @throws LabStateError after stop(); the CA's errors (InvalidArgumentError…).
   */
  async issue(options: IssueServerOptions = {}): Promise<IssuedCertificate> {
    this.assertRunning("issue");
    const named = (options.dnsNames?.length ?? 0) + (options.ipAddresses?.length ?? 0) > 0;
    const issuer = options.issuer ?? this.p.ca.rootSerial;
    return this.p.ca.issueServer({
      ...(named ? {} : DEFAULT_NAMES),
      ocspUrl: this.p.responder.url,
      caIssuersUrl: this.p.responder.caIssuersUrl(normalizeSerial(issuer)),
      ...options,
    });
  }

  /**
   * Start a stapling TLS server for `leaf` (an IssuedCertificate with its key) on its own port,
   * without an admin endpoint; it has its first staple when this resolves (under the default
   * `startup: wait-for-staple`; put the responder in a state first with responder.set to
   * start it against a failing responder). Stopped by the lab's stop(), or by its own.
   * @throws LabStateError after stop(); the stapler's errors (CertificateSetupError,
   * InvalidPolicyError, InvalidStapleSourceError, EADDRINUSE).
   */
  async serve(leaf: IssuedCertificate, options: ServeOptions = {}): Promise<LabServer> {
    this.assertRunning("serve");
    const stapler = await (
      await StaplingServer.fromFiles({ certFile: leaf.certFile, keyFile: leaf.keyFile, chainFile: leaf.chainFile })
    )
      .withHost(this.p.host)
      .withPort(options.port ?? 0)
      .withPolicy(options.policy ?? this.p.policy)
      .withStapleSource(options.stapleSource ?? this.p.stapleSource)
      .withClock(this.p.clock)
      .withLogger(this.p.logger)
      .withAdmin(false)
      .withWatch(0)
      .start();
    const server = new LabServer({
      leaf,
      stapler,
      caFile: this.caFile,
      servername: options.servername ?? nameOf(leaf.certificate),
      onStop: (s) => {
        const i = this.servers.indexOf(s);
        if (i >= 0) this.servers.splice(i, 1);
        if (this.defaultServer === s) this.defaultServer = undefined;
      },
    });
    if (this.stopping) {
      // stop() began while this server was starting.
      await server.stop();
      this.assertRunning("serve");
    }
    this.servers.push(server);
    return server;
  }

  /**
   * Revoke `leaf` in the CA (RFC 5280 CRLReason `reason`: a name such as `keyCompromise`, in
   * any case, or its code; default unspecified), for good: the responder answers revoked and
   * the CRLs list it. Pending staple waits query again. A certificate on hold may be revoked
   * for a final reason (RFC 5280 §5.3.1); one revoked already keeps its first reason and time
   * unless `options.force` (then the new ones replace them).
   * @throws InvalidReasonError for a bad reason; UnknownSerialError when the CA did not issue
   * it; AlreadyRevokedError when it is revoked already (without force); LabStateError after stop().
   */
  async revoke(
    leaf: LeafRef,
    reason: string | number = "unspecified",
    options: { force?: boolean } = {},
  ): Promise<CertificateRecord> {
    this.assertRunning("revoke");
    const record = await this.p.ca.revoke(serialOf(leaf), {
      reason: parseCrlReason(reason),
      ...(options.force ? { force: true } : {}),
    });
    this.wake();
    return record;
  }

  /** The responder's request log entries about `leaf`, oldest first (see LabResponder.requests). */
  requests(leaf: LeafRef): RequestLogEntry[] {
    return this.responder.requests(leaf);
  }

  /**
   * What a server of this lab staples for `leaf`, and waits for it to change (StapleWatch:
   * `becomes("revoked")`, `state`, `snapshot()`). Given a LabServer, that server; given a
   * certificate or serial, the server started last for it.
   * @throws LabStateError when no running server of this lab serves it.
   */
  staple(leaf: LeafRef | LabServer): StapleWatch {
    const serial = serialOf(leaf);
    const server = leaf instanceof LabServer ? leaf : [...this.servers].reverse().find((s) => s.serial === serial);
    if (!server || server.stopped.aborted)
      throw new LabStateError(`serial ${serial} is not served by a running server of this lab: serve it with lab.serve(leaf)`);
    return new StapleWatch({
      stapler: server.stapler,
      serial,
      where: `serial ${serial} at ${server.host}:${server.port}`,
      wakers: this.wakers,
      stopped: server.stopped,
    });
  }

  /**
   * Stop every server, then the responder, the CA's watcher and CRL refresh, and remove the
   * temp folder (not a withStateDir one). Pending staple waits reject. Idempotent: every call
   * returns the same promise.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.servers].map((s) => s.stop()));
      await this.p.responder.stop();
      this.stopCrls();
      this.p.ca.close();
      if (this.p.ownDir) await fs.rm(this.p.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * @internal Issue and serve the default certificate; called once by OcspLab.start().
   * @throws LabStateError when the lab already has one.
   */
  async startDefault(options: IssueServerOptions): Promise<void> {
    if (this.defaultServer) throw new LabStateError("this lab already has its default server");
    this.defaultServer = await this.serve(await this.issue(options));
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  private assertRunning(what: string): void {
    if (this.stopping) throw new LabStateError(`lab.${what}(): the lab is stopped`);
  }
}

/** The name a client should ask for: the certificate's first DNS name, else its first IP, else localhost. */
function nameOf(certificate: x509.X509Certificate): string {
  const items = certificate.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  return items.find((n) => n.type === "dns")?.value ?? items.find((n) => n.type === "ip")?.value ?? LAB_SERVER_NAME;
}
