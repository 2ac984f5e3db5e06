import { EventEmitter } from "node:events";
import * as x509 from "@peculiar/x509";
import { pino, type Logger } from "pino";
import {
  OcspVerifyError,
  buildOcspRequest,
  defaultCrypto,
  normalizeSerial,
  systemClock,
  toPkiCertificate,
  verifyOcspResponse,
  type CertStatusName,
  type Clock,
  type VerifiedOcspResponse,
} from "@ocsp-lab/ca";
import { FetchError } from "./errors.js";
import { fetchOcsp } from "./fetcher.js";
import type { PollingPolicy } from "./policy.js";

/** What a handshake gets: the status of the staple it would be sent, or `none`. */
export type StapleState = CertStatusName | "none";

/** The outcome of the last fetch. */
export interface FetchOutcome {
  at: Date;
  ok: boolean;
  /** For a failure: why (timeout, HTTP status, verification reason...). */
  error?: string;
  durationMs: number;
}

/** A status snapshot of one certificate's stapling (library API, admin endpoint, CLI). */
export interface StapleSnapshot {
  serial: string;
  subject: string;
  responderUrl: string;
  /** What the next handshake would be stapled with. */
  staple: StapleState;
  producedAt?: Date;
  thisUpdate?: Date;
  nextUpdate?: Date;
  lastFetch?: FetchOutcome;
  /** Failed queries in a row (0 after a success). */
  consecutiveFailures: number;
  /** When the next query is due. */
  nextFetch?: Date;
}

/** Events a StapleManager emits. */
export interface StapleManagerEvents {
  /** A fresh verified response replaced the staple. */
  "staple:updated": [StapleSnapshot];
  /** recovery_max_tries failures in a row: the staple was dropped. */
  "staple:invalidated": [StapleSnapshot];
  /** One query failed (timeout, network, HTTP, verification). */
  "fetch:failed": [{ error: FetchError; snapshot: StapleSnapshot }];
}

/** Options of StapleManager. */
export interface StapleManagerOptions {
  certificate: x509.X509Certificate;
  issuer: x509.X509Certificate;
  /** Responder to ask; the certificate's AIA OCSP URL is used by whoever builds the manager. */
  responderUrl: string;
  policy: PollingPolicy;
  clock?: Clock;
  crypto?: Crypto;
  logger?: Logger;
  /** Send a nonce (RFC 8954) and require it back. Default false, as RFC 5019 clients do. */
  nonce?: boolean;
}

/**
 * Keeps a verified OCSP staple for one certificate under the polling policy:
 * query at start, then every `query_frequency` (or at half the response's
 * thisUpdate→nextUpdate window if sooner, as certmagic does, so a staple never expires while
 * the responder is healthy); after a failure retry every `recovery_frequency`; after
 * `recovery_max_tries` consecutive failures drop the staple so strict clients refuse the
 * connection; the next success restores it. Only responses that pass `verifyOcspResponse` are
 * ever kept, and a kept response is never served past its nextUpdate.
 *
 * `current()` is what a handshake calls: a lookup of bytes in memory, never a wait on the responder.
 */
export class StapleManager extends EventEmitter<StapleManagerEvents> {
  private readonly opts: Required<Omit<StapleManagerOptions, "logger">> & { logger: Logger };
  private staple: { der: Buffer; verified: VerifiedOcspResponse } | undefined;
  private failures = 0;
  private last: FetchOutcome | undefined;
  private nextAt: Date | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<boolean> | undefined;
  private stopped = false;

  /** A manager for one certificate; nothing is fetched until start() or queryNow(). */
  constructor(options: StapleManagerOptions) {
    super();
    this.opts = {
      clock: systemClock,
      crypto: defaultCrypto,
      nonce: false,
      ...options,
      logger: options.logger ?? pino({ level: "silent" }),
    };
  }

  /** The certificate's canonical serial. */
  get serial(): string {
    return normalizeSerial(this.opts.certificate.serialNumber);
  }

  /**
   * The DER staple for a handshake, or undefined when there is none or it has passed its
   * nextUpdate (never serve a stale staple, even if the poller is late).
   */
  current(): Buffer | undefined {
    const s = this.staple;
    if (!s) return undefined;
    if (s.verified.nextUpdate.getTime() <= this.opts.clock.now().getTime()) return undefined;
    return s.der;
  }

  /** Run the first query and schedule the next; resolves when the first query is settled (bounded by response_timeout). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.queryNow();
  }

  /**
   * Query the responder now (a "query now" action), then reschedule. Concurrent calls share
   * one query. Resolves true when a verified response was stapled.
   */
  queryNow(): Promise<boolean> {
    if (!this.inFlight) {
      this.inFlight = this.query().finally(() => {
        this.inFlight = undefined;
      });
    }
    return this.inFlight;
  }

  /** Stop polling (the staple in memory is kept). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextAt = undefined;
  }

  /** The snapshot of this certificate's stapling. */
  snapshot(): StapleSnapshot {
    const served = this.current() ? this.staple : undefined;
    const snap: StapleSnapshot = {
      serial: this.serial,
      subject: this.opts.certificate.subject,
      responderUrl: this.opts.responderUrl,
      staple: served ? served.verified.status : "none",
      consecutiveFailures: this.failures,
    };
    if (served) {
      snap.producedAt = served.verified.producedAt;
      snap.thisUpdate = served.verified.thisUpdate;
      snap.nextUpdate = served.verified.nextUpdate;
    }
    if (this.last) snap.lastFetch = { ...this.last };
    if (this.nextAt) snap.nextFetch = this.nextAt;
    return snap;
  }

  private async query(): Promise<boolean> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const { clock, policy, responderUrl } = this.opts;
    const started = clock.now();
    const t0 = performance.now();
    let verified: VerifiedOcspResponse;
    try {
      verified = await this.fetchAndVerify();
    } catch (err) {
      const error = err instanceof FetchError ? err : new FetchError("network", String(err), { cause: err });
      this.failures += 1;
      this.last = { at: started, ok: false, error: error.message, durationMs: Math.round(performance.now() - t0) };
      const invalidate = this.failures >= policy.recoveryMaxTries && this.staple !== undefined;
      if (invalidate) this.staple = undefined;
      this.schedule(policy.recoveryFrequencyMs);
      this.opts.logger.warn({ serial: this.serial, responderUrl, failures: this.failures, err: error.message }, "OCSP fetch failed");
      this.safeEmit("fetch:failed", { error, snapshot: this.snapshot() });
      if (invalidate) this.safeEmit("staple:invalidated", this.snapshot());
      return false;
    }
    this.staple = { der: Buffer.from(verified.response.der), verified };
    this.failures = 0;
    this.last = { at: started, ok: true, durationMs: Math.round(performance.now() - t0) };
    this.schedule(this.refreshDelay(verified));
    this.opts.logger.info({ serial: this.serial, status: verified.status, nextUpdate: verified.nextUpdate }, "staple updated");
    this.safeEmit("staple:updated", this.snapshot());
    return true;
  }

  /**
   * Milliseconds until the next regular query: query_frequency, or the middle of the response's
   * thisUpdate→nextUpdate window if that comes first (a pre-signed response may already be half
   * spent when it arrives), never later than its nextUpdate and never sooner than 1 s, so a
   * responder handing out nearly-expired responses is not hammered.
   */
  private refreshDelay(v: VerifiedOcspResponse): number {
    const now = this.opts.clock.now().getTime();
    const middle = v.thisUpdate.getTime() + (v.nextUpdate.getTime() - v.thisUpdate.getTime()) / 2;
    return Math.max(1000, Math.min(this.opts.policy.queryFrequencyMs, middle - now, v.nextUpdate.getTime() - now));
  }

  /** Emit without letting a throwing listener break the poller. */
  private safeEmit<K extends keyof StapleManagerEvents>(event: K, ...args: StapleManagerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: StapleManagerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.opts.logger.error({ err, event }, "a stapler event listener threw");
    }
  }

  private async fetchAndVerify(): Promise<VerifiedOcspResponse> {
    const { certificate, issuer, responderUrl, policy, clock, crypto } = this.opts;
    const request = await buildOcspRequest({
      certificate: toPkiCertificate(certificate.rawData),
      issuer: toPkiCertificate(issuer.rawData),
      nonce: this.opts.nonce,
      crypto,
    });
    const der = await fetchOcsp(responderUrl, request.der, policy.responseTimeoutMs);
    try {
      return await verifyOcspResponse(der, { certificate, issuer, now: clock.now(), nonce: request.nonce, crypto });
    } catch (cause) {
      const reason = cause instanceof OcspVerifyError ? cause.message : String(cause);
      throw new FetchError("invalid", `response from ${responderUrl} not stapled: ${reason}`, { cause });
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.nextAt = new Date(this.opts.clock.now().getTime() + delayMs);
    this.timer = setTimeout(() => {
      this.queryNow().catch((err: unknown) => this.opts.logger.error({ err }, "OCSP query crashed"));
    }, delayMs);
    this.timer.unref();
  }
}
