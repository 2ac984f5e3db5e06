import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { pino, type Logger } from "pino";
import { defaultCrypto, systemClock, type CertificateAuthority, type Clock, type Signer } from "@ocsp-lab/ca";
import { readFile } from "node:fs/promises";
import { createResponderApp, type CrlSource } from "./app.js";
import { Behaviour, type Fault, type StatusOverride } from "./behaviour.js";
import { ResponderStateError } from "./errors.js";
import { OcspService } from "./ocsp-service.js";
import { RequestLog, type RequestLogEntry, type RequestQuery } from "./request-log.js";
import { CaStatusSource, type StatusSource } from "./status-source.js";

/**
 * Builder of an OCSP responder (testcontainers style): configure with `with*`, then `start()`
 * for a StartedOcspResponder. Binds 127.0.0.1 on an ephemeral port unless told otherwise.
 *
 * ```ts
 * const responder = await (await OcspResponder.forCa(ca)).withPort(0).start();
 * responder.setStatus(serial, { status: "revoked", reason: CRLReason.keyCompromise });
 * ```
 */
export class OcspResponder {
  private host = "127.0.0.1";
  private port = 0;
  private clock: Clock = systemClock;
  private crypto: Crypto = defaultCrypto;
  private validitySeconds = 3600;
  private logger: Logger = pino({ level: "silent" });
  private readonly source: StatusSource;
  private readonly signer: Signer;
  private readonly crls: CrlSource | undefined;

  /** A responder answering from `source`, signing with `signer`, serving CRLs from `crls` if given. */
  constructor(params: { source: StatusSource; signer: Signer; crls?: CrlSource }) {
    this.source = params.source;
    this.signer = params.signer;
    this.crls = params.crls;
  }

  /**
   * A responder for a lab CA: statuses from its store, signed by its delegated OCSP signer, and
   * the CA's CRLs at `/crl/<issuer serial>.crl` (full) and `/crl/<issuer serial>-delta.crl`.
   */
  static async forCa(ca: CertificateAuthority, crypto?: Crypto): Promise<OcspResponder> {
    const crls: CrlSource = {
      async crl(issuerSerial, delta) {
        const rec = ca.get(issuerSerial);
        if (!rec || (rec.kind !== "root" && rec.kind !== "intermediate")) return undefined;
        const files = ca.crlFiles(issuerSerial);
        try {
          return new Uint8Array(await readFile(delta ? files.deltaDer : files.fullDer));
        } catch {
          return undefined;
        }
      },
    };
    return new OcspResponder({ source: await CaStatusSource.create(ca, crypto), signer: ca.ocspSigner, crls });
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

  /** Time source for producedAt/thisUpdate/nextUpdate. */
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

  /** A pino logger for request lines (default silent). */
  withLogger(logger: Logger): this {
    this.logger = logger;
    return this;
  }

  /** Listen; resolves once the port is bound. */
  async start(): Promise<StartedOcspResponder> {
    const behaviour = new Behaviour();
    const log = new RequestLog();
    const service = new OcspService({
      source: this.source,
      signer: this.signer,
      behaviour,
      clock: this.clock,
      crypto: this.crypto,
      validitySeconds: this.validitySeconds,
    });
    const app = createResponderApp({ service, behaviour, log, clock: this.clock, logger: this.logger, ...(this.crls ? { crls: this.crls } : {}) });
    const server = createServer(app);
    server.listen(this.port, this.host);
    await once(server, "listening");
    return new StartedOcspResponder(server, behaviour, log, this.host);
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
  private readonly server: Server;
  private readonly hostName: string;
  private stopped = false;

  /** Made by OcspResponder.start(); not meant to be called directly. */
  constructor(server: Server, behaviour: Behaviour, log: RequestLog, host: string) {
    this.server = server;
    this.behaviour = behaviour;
    this.log = log;
    this.hostName = host;
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

  /** Delay every answer by `ms` milliseconds (see Behaviour.setDelay). */
  setDelay(ms: number): void {
    this.behaviour.setDelay(ms);
  }

  /** See Behaviour.setFault; `undefined` clears. */
  setFault(fault: Fault | undefined): void {
    this.behaviour.setFault(fault);
  }

  /** Logged requests matching `query`. */
  requests(query?: RequestQuery): RequestLogEntry[] {
    return this.log.list(query);
  }

  /** Resolve once `count` (default 1) matching requests were answered; see RequestLog.waitFor. */
  waitForRequests(query: RequestQuery & { count?: number } = {}, timeoutMs?: number): Promise<RequestLogEntry[]> {
    return this.log.waitFor(query, timeoutMs);
  }

  /** Stop listening and drop every open connection (hung requests included). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** `await using` support: same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
