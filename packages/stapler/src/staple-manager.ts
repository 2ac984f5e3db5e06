import { EventEmitter } from "node:events";
import type * as x509 from "@peculiar/x509";
import { pino, type Logger } from "pino";
import {
  MAX_TIMER_MS,
  OCSPResponseStatus,
  OcspResponse,
  OcspVerifyError,
  buildOcspRequest,
  defaultCrypto,
  normalizeSerial,
  responseStatusName,
  systemClock,
  toPkiCertificate,
  verifyOcspResponse,
  unsuccessfulResponse,
  type CertStatusName,
  type Clock,
  type Timer,
  type UnsuccessfulStatusName,
  type VerifiedOcspResponse,
} from "@ocsp-lab/ocsp";
import { FetchError } from "./errors.js";
import { fetchOcsp } from "./fetcher.js";
import type { PollingPolicy } from "./policy.js";
import {
  describeStapleSource,
  fetchesFromResponder,
  readStaple,
  readStapleFile,
  type StapleSourceKind,
  type StapleSourceSpec,
} from "./staple-source.js";
import type { StapleStore } from "./staple-store.js";

/** Unsuccessful responseStatus names (RFC 6960 §4.2.1) a `staple-errors` policy may staple. */
export type ResponseErrorName = UnsuccessfulStatusName;

/**
 * What a handshake gets: the status of the staple it would be sent, an error answer
 * (staple-errors, or an unsuccessful answer stapled as received), `unreadable` (unverified
 * bytes that do not decode as an OCSPResponse with a SingleResponse), or `none`.
 */
export type StapleState = CertStatusName | ResponseErrorName | "unreadable" | "none";

/**
 * Where the staple in memory came from: `fetched` from the responder, `persisted` (restored
 * from the state folder), `made-up` (staple-errors' tryLater), `configured` (a `bytes` or
 * `file` staple source).
 */
export type StapleSource = "fetched" | "persisted" | "made-up" | "configured";

/** The outcome of the last fetch. */
export interface FetchOutcome {
  at: Date;
  ok: boolean;
  /** For a failure: why (timeout, HTTP status, verification reason...). */
  error?: string;
  durationMs: number;
}

/** A status snapshot of one certificate's stapling (library API, admin endpoint, metrics). */
export interface StapleSnapshot {
  serial: string;
  subject: string;
  responderUrl: string;
  /** What the next handshake would be stapled with. */
  staple: StapleState;
  /** Where that staple came from (absent when `none`). */
  source?: StapleSource;
  producedAt?: Date;
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** Milliseconds since the staple's thisUpdate (how old the status it vouches for is). */
  stapleAgeMs?: number;
  lastFetch?: FetchOutcome;
  /** Failed queries in a row (0 after a success). */
  consecutiveFailures: number;
  /** When the next query is due (in handshake-driven modes: the first handshake after it triggers it). */
  nextFetch?: Date;
  mode: PollingPolicy["mode"];
  onFailure: PollingPolicy["onFailure"];
  /** The staple source in force (see STAPLE_SOURCE_KINDS); anything but `verified` is for testing clients. */
  stapleSource: StapleSourceKind;
  /** The file of a `file` staple source. */
  stapleFile?: string;
  /**
   * For a staple served without verification (any source but `verified`): why
   * verifyOcspResponse would refuse it; absent when it would pass.
   */
  verifyError?: string;
}

/** Events a StapleManager emits. */
export interface StapleManagerEvents {
  /** A fresh verified response (or, under staple-errors, an error answer) replaced the staple. */
  "staple:updated": [StapleSnapshot];
  /** The staple was dropped: recovery_max_tries failures in a row under `invalidate`. */
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
  /**
   * Time source and scheduler (default systemClock): "now" for verification and snapshots, and
   * every timer (refresh, retries, response_timeout of a query).
   */
  clock?: Clock;
  crypto?: Crypto;
  logger?: Logger;
  /** Send a nonce (RFC 8954) and require it back. Default false, as RFC 5019 clients do. */
  nonce?: boolean;
  /** Persist verified staples here and restore them (re-verified) at start (the `verified` source only). */
  store?: StapleStore;
  /** Where staples come from (default `{ kind: "verified" }`; see STAPLE_SOURCE_KINDS). */
  stapleSource?: StapleSourceSpec;
  /** For a `file` source: its bytes, already read (otherwise start() reads the file). */
  stapleDer?: Uint8Array;
}

type Held =
  | { kind: "verified"; der: Buffer; verified: VerifiedOcspResponse; source: "fetched" | "persisted" }
  | { kind: "error"; der: Buffer; status: ResponseErrorName; source: "fetched" | "made-up" }
  | {
      kind: "unverified";
      der: Buffer;
      read: ReturnType<typeof readStaple>;
      verifyError: string | undefined;
      source: "fetched" | "configured";
    };

/**
 * Keeps the OCSP staple of one certificate under a stapling policy (see `PollingPolicy`).
 *
 * In the default `eager` mode: query at start, then every `query_frequency` or at half the
 * response's thisUpdate→nextUpdate window if sooner (as certmagic does), so a staple never
 * expires while the responder is healthy; after a failure retry every `recovery_frequency`;
 * `on_failure` says what is stapled meanwhile. Only responses that pass `verifyOcspResponse`
 * (strict: one SingleResponse, about this certificate, not outliving it) are stapled as
 * statuses; a verified response is never served past its nextUpdate.
 *
 * `current()` is a lookup of bytes in memory; `handshake()` is what a TLS server calls for each
 * handshake: the same lookup in `eager` mode, and the emulated behaviour of other servers in
 * the `lazy`, `expire-then-fetch` and `in-handshake` modes.
 *
 * Every timer (refresh, retries, response_timeout, the expiry report) runs on the injected
 * Clock. Logs: a failed query at warn; a dropped staple (recovery_max_tries failures under
 * `invalidate`, or a staple past its serving limit) at warn with the reason and the failures in
 * a row; a change of what handshakes get (the first staple, good → revoked...) at info; a
 * refresh that changed nothing at debug.
 */
export class StapleManager extends EventEmitter<StapleManagerEvents> {
  private readonly opts: Required<Omit<StapleManagerOptions, "logger" | "store" | "stapleSource" | "stapleDer">> & {
    logger: Logger;
    store: StapleStore | undefined;
  };
  private readonly source: StapleSourceSpec;
  private configuredDer: Uint8Array | undefined;
  private held: Held | undefined;
  private failures = 0;
  private last: FetchOutcome | undefined;
  /** When the next query is due (ms since epoch); undefined: as soon as asked. */
  private dueAt: number | undefined;
  /** The next query (eager mode, and start-up retries), on the injected clock. */
  private timer: Timer | undefined;
  /** When the verified staple held stops being served (see armExpiry); never keeps the process alive. */
  private expiryTimer: Timer | undefined;
  private inFlight: Promise<boolean> | undefined;
  /** A fresh query waiting for the one under way to end (see queryNow). */
  private queued: Promise<boolean> | undefined;
  private stopped = false;
  private startingUp = false;
  private readonly stopWaiters = new Set<() => void>();
  /** Aborted by stop(): a query under way ends at once and changes nothing. */
  private aborter = new AbortController();
  /** Bumped by start(): a query begun before a stop() and a new start() is ignored. */
  private generation = 0;
  private readonly serialHex: string;

  /** A manager for one certificate; nothing is fetched until start(), queryNow() or a handshake. */
  constructor(options: StapleManagerOptions) {
    super();
    this.opts = {
      clock: systemClock,
      crypto: defaultCrypto,
      nonce: false,
      ...options,
      logger: options.logger ?? pino({ level: "silent" }),
      store: options.store,
    };
    this.source = options.stapleSource ?? { kind: "verified" };
    this.configuredDer = options.stapleDer;
    this.serialHex = normalizeSerial(options.certificate.serialNumber);
  }

  /** The certificate's canonical serial. */
  get serial(): string {
    return this.serialHex;
  }

  /** The certificate this manager staples for. */
  get certificate(): x509.X509Certificate {
    return this.opts.certificate;
  }

  /** The issuer's DER as a latin1 string (what a reload compares). */
  get issuerDer(): string {
    return Buffer.from(this.opts.issuer.rawData).toString("latin1");
  }

  /** The responder this manager asks. */
  get responderUrl(): string {
    return this.opts.responderUrl;
  }

  /** The policy in force (milliseconds). */
  get policy(): PollingPolicy {
    return this.opts.policy;
  }

  /** The staple source in force. */
  get stapleSource(): StapleSourceSpec {
    return this.source;
  }

  /**
   * The DER staple for a handshake, or undefined when there is none or it is past its limit:
   * nextUpdate (minus `expiry_margin` under `serve-until-expiry`). No side effect.
   */
  current(): Buffer | undefined {
    const h = this.held;
    if (!h) return undefined;
    if (h.kind !== "verified") return h.der;
    const margin = this.opts.policy.onFailure === "serve-until-expiry" ? this.opts.policy.expiryMarginMs : 0;
    if (h.verified.nextUpdate.getTime() - margin <= this.opts.clock.now().getTime()) return undefined;
    return h.der;
  }

  /**
   * What a TLS server staples for one handshake (the `OCSPRequest` event):
   * - `eager`: `current()`;
   * - `lazy` / `expire-then-fetch`: `current()`, and when a query is due a background fetch
   *   starts (the handshake does not wait; with no valid staple it gets none);
   * - `in-handshake` (Apache): `current()` while no query is due; when one is due (no staple,
   *   or its refresh time has come, as when Apache's cached response times out) a promise of
   *   the staple after the fetch, bounded by `response_timeout`.
   */
  handshake(): Buffer | undefined | Promise<Buffer | undefined> {
    const mode = this.opts.policy.mode;
    if (mode === "eager" || !fetchesFromResponder(this.source)) return this.current();
    const due = this.dueAt === undefined || this.opts.clock.now().getTime() >= this.dueAt;
    const now = this.current();
    if (!due || this.stopped) return now;
    if (mode === "in-handshake") return this.queryNow().then(() => this.current());
    this.queryNow().catch((err: unknown) => this.opts.logger.error({ err }, "OCSP query crashed"));
    return now;
  }

  /**
   * Start: restore the persisted staple (re-verified), then, in the modes that fetch at
   * start-up (`eager`, `expire-then-fetch`), query as `startup` says:
   * `wait-for-staple` resolves once a staple is in (or after recovery_max_tries failures);
   * `ready-after-timeout` resolves after the first query. `lazy` and `in-handshake` fetch on
   * the first handshake instead. Never rejects for a responder failure. A `bytes` or `file`
   * source holds its bytes (a file not read yet is read now) and asks no responder; `none`
   * holds nothing. Any source but `verified` is logged at warn.
   * @throws CertificateSetupError when the file of a `file` source cannot be read.
   */
  async start(): Promise<void> {
    this.stopped = false;
    if (this.aborter.signal.aborted) this.aborter = new AbortController();
    this.generation += 1;
    if (this.source.kind !== "verified")
      this.opts.logger.warn(
        { serial: this.serial, stapleSource: describeStapleSource(this.source) },
        "stapling unverified responses: for testing clients only",
      );
    if (!fetchesFromResponder(this.source)) {
      if (this.source.kind === "bytes") await this.useStapleBytes(this.source.der);
      else if (this.source.kind === "file")
        await this.useStapleBytes(this.configuredDer ?? (await readStapleFile(this.source.path)));
      return;
    }
    if (this.source.kind === "verified") await this.restore();
    this.armExpiry();
    const { mode, startup } = this.opts.policy;
    if (mode === "lazy" || mode === "in-handshake") return;
    if (this.held) {
      // A persisted staple bridges the restart; refresh on the usual schedule.
      if (mode === "eager") {
        const v = this.held.kind === "verified" ? this.held.verified : undefined;
        this.schedule(v ? this.refreshDelay(v) : 0);
      } else if (this.held.kind === "verified")
        this.dueAt = this.opts.clock.now().getTime() + this.refreshDelay(this.held.verified);
      return;
    }
    if (startup === "ready-after-timeout") {
      await this.queryNow();
      return;
    }
    this.startingUp = true;
    try {
      while (!this.stopped) {
        if (await this.queryNow()) return;
        if (this.stopped) return;
        if (this.failures >= this.opts.policy.recoveryMaxTries) {
          this.opts.logger.warn(
            { serial: this.serial, failures: this.failures },
            "no staple after recovery_max_tries queries; ready without one",
          );
          return;
        }
        await this.waitForNextQuery();
      }
    } finally {
      this.startingUp = false;
      this.timer?.unref();
      // expire-then-fetch polls only at start-up; from now on handshakes drive it.
      if (mode === "expire-then-fetch" && this.timer) {
        this.timer.cancel();
        this.timer = undefined;
      }
    }
  }

  /**
   * Staple these bytes from now on (a `bytes` or `file` source; a reload hands a `file`
   * source its re-read bytes), unverified; what verification would say is in the snapshot's
   * `verifyError`. Emits `staple:updated`.
   */
  async useStapleBytes(der: Uint8Array): Promise<void> {
    this.configuredDer = der;
    const before = this.servedState();
    const verifyError = await this.verify(der).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    this.hold({
      kind: "unverified",
      der: Buffer.from(der),
      read: readStaple(der, this.serial),
      verifyError,
      source: "configured",
    });
    this.logChange(before);
    this.safeEmit("staple:updated", this.snapshot());
  }

  /**
   * Query the responder now (a "query now" action), then reschedule. Concurrent calls share
   * one query. With `fresh`, the answer must be one asked for after this call: a query already
   * under way (sent before whatever change the caller just made, such as a responder that hung
   * and no longer does) is waited for, then a new one is sent, shared by every fresh call made
   * meanwhile. Resolves true when a response was stapled (verified, or as received under
   * `as-received`). With a source that asks no responder (`bytes`, `file`, `none`): no query;
   * resolves with whether a staple is held.
   */
  queryNow(options: { fresh?: boolean } = {}): Promise<boolean> {
    if (!fetchesFromResponder(this.source)) return Promise.resolve(this.held !== undefined);
    if (this.inFlight && options.fresh) {
      const under = this.inFlight;
      this.queued ??= under
        .catch(() => false)
        .then(() => {
          this.queued = undefined;
          return this.startQuery();
        });
      return this.queued;
    }
    return this.startQuery();
  }

  /** The query under way, or a new one. */
  private startQuery(): Promise<boolean> {
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
    this.aborter.abort();
    this.timer?.cancel();
    this.timer = undefined;
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    this.dueAt = undefined;
    for (const wake of this.stopWaiters) wake();
  }

  /** The snapshot of this certificate's stapling. */
  snapshot(): StapleSnapshot {
    const served = this.current() ? this.held : undefined;
    const snap: StapleSnapshot = {
      serial: this.serial,
      subject: this.opts.certificate.subject,
      responderUrl: this.opts.responderUrl,
      staple: stateOf(served),
      consecutiveFailures: this.failures,
      mode: this.opts.policy.mode,
      onFailure: this.opts.policy.onFailure,
      stapleSource: this.source.kind,
    };
    if (this.source.kind === "file") snap.stapleFile = this.source.path;
    if (served) snap.source = served.source;
    if (served?.kind === "unverified") {
      const r = served.read;
      if (r.producedAt) snap.producedAt = r.producedAt;
      if (r.thisUpdate) snap.thisUpdate = r.thisUpdate;
      if (r.nextUpdate) snap.nextUpdate = r.nextUpdate;
      if (r.thisUpdate) snap.stapleAgeMs = Math.max(0, this.opts.clock.now().getTime() - r.thisUpdate.getTime());
      if (served.verifyError !== undefined) snap.verifyError = served.verifyError;
    }
    if (served?.kind === "verified") {
      snap.producedAt = served.verified.producedAt;
      snap.thisUpdate = served.verified.thisUpdate;
      snap.nextUpdate = served.verified.nextUpdate;
      snap.stapleAgeMs = Math.max(0, this.opts.clock.now().getTime() - served.verified.thisUpdate.getTime());
    }
    if (this.last) snap.lastFetch = { ...this.last };
    if (this.dueAt !== undefined) snap.nextFetch = new Date(this.dueAt);
    return snap;
  }

  /** Resolve at the next scheduled query's end, or when stopped. */
  private waitForNextQuery(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) {
        resolve();
        return;
      }
      const done = (): void => {
        this.off("staple:updated", done);
        this.off("fetch:failed", done);
        this.stopWaiters.delete(done);
        resolve();
      };
      this.on("staple:updated", done);
      this.on("fetch:failed", done);
      this.stopWaiters.add(done);
    });
  }

  private async restore(): Promise<void> {
    const store = this.opts.store;
    if (!store || this.held) return;
    const der = await store.load(this.opts.certificate.rawData);
    if (!der) return;
    try {
      const verified = await this.verify(der);
      this.hold({ kind: "verified", der: Buffer.from(der), verified, source: "persisted" });
      this.opts.logger.info(
        { serial: this.serial, status: verified.status, nextUpdate: verified.nextUpdate },
        "persisted staple restored",
      );
    } catch (err) {
      this.opts.logger.info(
        { serial: this.serial, reason: err instanceof Error ? err.message : String(err) },
        "persisted staple not used",
      );
    }
  }

  private async query(): Promise<boolean> {
    this.timer?.cancel();
    this.timer = undefined;
    const { clock, policy, responderUrl } = this.opts;
    const generation = this.generation;
    const started = clock.now();
    const t0 = performance.now();
    let fresh: Held;
    try {
      fresh = this.source.kind === "as-received" ? await this.fetchAsReceived() : await this.fetchAndVerify();
    } catch (err) {
      // Stopped (or restarted) meanwhile: nothing to record, nothing to announce.
      if (this.stopped || generation !== this.generation) return false;
      const error = err instanceof FetchError ? err : new FetchError("network", String(err), { cause: err });
      this.failures += 1;
      this.last = { at: started, ok: false, error: error.message, durationMs: Math.round(performance.now() - t0) };
      let invalidated = false;
      let updated = false;
      const before = this.servedState();
      const errorStaple = policy.onFailure === "staple-errors" ? errorAnswer(error) : undefined;
      if (errorStaple) {
        this.hold(errorStaple);
        updated = true;
      } else if (this.failures >= policy.recoveryMaxTries && policy.onFailure !== "serve-until-expiry" && this.held) {
        this.hold(undefined);
        invalidated = true;
      }
      this.schedule(policy.recoveryFrequencyMs);
      this.opts.logger.warn(
        { serial: this.serial, responderUrl, failures: this.failures, err: error.message },
        "OCSP fetch failed",
      );
      if (updated) this.logChange(before);
      if (invalidated) {
        const reason = `${this.failures} failed queries in a row (recovery_max_tries ${policy.recoveryMaxTries}), the last: ${error.message}`;
        // An expired staple was already reported dropped when it expired.
        if (before !== "none")
          this.opts.logger.warn({ serial: this.serial, staple: before, reason, failures: this.failures }, "staple dropped");
        else this.opts.logger.debug({ serial: this.serial, reason, failures: this.failures }, "expired staple discarded");
      }
      this.safeEmit("fetch:failed", { error, snapshot: this.snapshot() });
      if (updated) this.safeEmit("staple:updated", this.snapshot());
      if (invalidated) this.safeEmit("staple:invalidated", this.snapshot());
      return false;
    }
    if (this.stopped || generation !== this.generation) return false;
    const der = fresh.der;
    const before = this.servedState();
    this.hold(fresh);
    this.failures = 0;
    this.last = { at: started, ok: true, durationMs: Math.round(performance.now() - t0) };
    // An answer held as received is not trusted for its times: refreshed every query_frequency.
    this.schedule(fresh.kind === "verified" ? this.refreshDelay(fresh.verified) : policy.queryFrequencyMs);
    this.logChange(before);
    if (this.opts.store && fresh.kind === "verified") {
      await this.opts.store
        .save(this.opts.certificate.rawData, der)
        .catch((err: unknown) =>
          this.opts.logger.warn(
            { serial: this.serial, err: err instanceof Error ? err.message : String(err) },
            "staple not persisted",
          ),
        );
    }
    this.safeEmit("staple:updated", this.snapshot());
    return true;
  }

  /** What a handshake would be stapled with now (the snapshot's `staple`). */
  private servedState(): StapleState {
    return stateOf(this.current() ? this.held : undefined);
  }

  /** Replace the staple held (undefined: none), and re-arm the expiry report for it. */
  private hold(held: Held | undefined): void {
    this.held = held;
    this.armExpiry();
  }

  /**
   * Log a new staple against what was served `before`: at info when what handshakes get
   * changed (the first staple, good → revoked, a staple after none), at debug for a refresh
   * that changed nothing.
   */
  private logChange(before: StapleState): void {
    const after = this.servedState();
    const h = this.held;
    const nextUpdate = h?.kind === "verified" ? h.verified.nextUpdate : h?.kind === "unverified" ? h.read.nextUpdate : undefined;
    if (after !== before)
      this.opts.logger.info({ serial: this.serial, from: before, to: after, nextUpdate }, "staple status changed");
    else this.opts.logger.debug({ serial: this.serial, status: after, nextUpdate }, "staple refreshed");
  }

  /**
   * A timer (on the clock, unref'd: it only reports) at the moment the verified staple held
   * stops being served: its nextUpdate, minus expiry_margin under serve-until-expiry. If that
   * staple is still held then, handshakes get none from now on: logged at warn with the reason
   * and the failed queries in a row. A new staple re-arms it; stop() cancels it.
   */
  private armExpiry(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    const h = this.held;
    if (this.stopped || h?.kind !== "verified") return;
    const { policy, clock } = this.opts;
    const margin = policy.onFailure === "serve-until-expiry" ? policy.expiryMarginMs : 0;
    const limit = h.verified.nextUpdate.getTime() - margin;
    this.expiryTimer = clock.setTimeout(
      () => {
        this.expiryTimer = undefined;
        if (this.held !== h || this.stopped) return;
        // Fired early (a limit beyond the longest timer): wait on.
        if (this.current()) {
          this.armExpiry();
          return;
        }
        const when = h.verified.nextUpdate.toISOString();
        const reason =
          margin > 0 ? `nextUpdate ${when} minus expiry_margin ${margin / 1000} s reached` : `nextUpdate ${when} passed`;
        // expire-then-fetch (a CDN) lets staples expire by design: that is news, not a warning,
        // unless queries are failing.
        const expected = this.opts.policy.mode === "expire-then-fetch" && this.failures === 0;
        this.opts.logger[expected ? "info" : "warn"](
          { serial: this.serial, staple: h.verified.status, reason, failures: this.failures },
          "staple dropped",
        );
      },
      Math.min(Math.max(0, limit - clock.now().getTime()), MAX_TIMER_MS),
    );
    this.expiryTimer.unref();
  }

  /**
   * Milliseconds until the next regular query. `eager` and `in-handshake`: query_frequency, or
   * the middle of the response's thisUpdate→nextUpdate window if that comes first (a pre-signed
   * response may already be half spent when it arrives), never later than its nextUpdate (minus
   * the margin under serve-until-expiry) and never sooner than 1 s, so a responder handing out
   * nearly-expired responses is not hammered. `lazy` (nginx): query_frequency or nextUpdate.
   * `expire-then-fetch`: nextUpdate.
   */
  private refreshDelay(v: VerifiedOcspResponse): number {
    const { policy, clock } = this.opts;
    const now = clock.now().getTime();
    const end = v.nextUpdate.getTime() - (policy.onFailure === "serve-until-expiry" ? policy.expiryMarginMs : 0);
    if (policy.mode === "expire-then-fetch") return Math.max(0, end - now);
    if (policy.mode === "lazy") return Math.max(0, Math.min(policy.queryFrequencyMs, end - now));
    const middle = v.thisUpdate.getTime() + (v.nextUpdate.getTime() - v.thisUpdate.getTime()) / 2;
    return Math.max(1000, Math.min(policy.queryFrequencyMs, middle - now, end - now));
  }

  /** Emit without letting a throwing listener break the poller. */
  private safeEmit<K extends keyof StapleManagerEvents>(event: K, ...args: StapleManagerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: StapleManagerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.opts.logger.error({ err, event }, "a stapler event listener threw");
    }
  }

  private verify(der: Uint8Array, nonce?: Uint8Array): Promise<VerifiedOcspResponse> {
    const { certificate, issuer, clock, crypto, policy } = this.opts;
    return verifyOcspResponse(der, {
      certificate,
      issuer,
      now: clock.now(),
      maxSkewMs: policy.maxSkewMs,
      strict: true,
      crypto,
      ...(nonce ? { nonce } : {}),
    });
  }

  /** One query: the request's nonce and the DER body of the 200 answer. @throws FetchError as fetchOcsp. */
  private async fetch(): Promise<{ der: Uint8Array; nonce: Uint8Array | undefined }> {
    const { certificate, issuer, responderUrl, policy, crypto } = this.opts;
    const request = await buildOcspRequest({
      certificate: toPkiCertificate(certificate),
      issuer: toPkiCertificate(issuer),
      hash: policy.certIdHash,
      nonce: this.opts.nonce,
      crypto,
    });
    const der = await fetchOcsp(responderUrl, request.der, policy.responseTimeoutMs, this.aborter.signal, this.opts.clock);
    return { der, nonce: request.nonce };
  }

  /** `as-received`: whatever body came, held unverified with what verification says of it. */
  private async fetchAsReceived(): Promise<Held> {
    const { der, nonce } = await this.fetch();
    const verifyError = await this.verify(der, nonce).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    return { kind: "unverified", der: Buffer.from(der), read: readStaple(der, this.serial), verifyError, source: "fetched" };
  }

  private async fetchAndVerify(): Promise<Held> {
    const { responderUrl } = this.opts;
    const { der, nonce } = await this.fetch();
    try {
      const verified = await this.verify(der, nonce);
      return { kind: "verified", der: Buffer.from(verified.response.der), verified, source: "fetched" };
    } catch (cause) {
      const reason = cause instanceof OcspVerifyError ? cause.message : String(cause);
      throw new FetchError("invalid", `response from ${responderUrl} not stapled: ${reason}`, { cause, response: der });
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.dueAt = this.opts.clock.now().getTime() + delayMs;
    // Handshake-driven modes check dueAt on each handshake; only eager (and start-up) use a timer.
    if (this.opts.policy.mode !== "eager" && !this.startingUp) return;
    this.timer?.cancel();
    // On the injected clock (a ManualClock in tests); node timers hold at most 2^31 − 1 ms,
    // which no policy period exceeds (MAX_SECONDS).
    this.timer = this.opts.clock.setTimeout(
      () => {
        this.queryNow().catch((err: unknown) => this.opts.logger.error({ err }, "OCSP query crashed"));
      },
      Math.min(delayMs, MAX_TIMER_MS),
    );
    // A poller must not keep a process alive, except while start() waits on it: then nothing
    // else may hold the event loop yet (a CLI would exit silently).
    if (!this.startingUp) this.timer.unref();
  }
}

/** The StapleState of a held staple (undefined: `none`). */
function stateOf(held: Held | undefined): StapleState {
  if (!held) return "none";
  if (held.kind === "unverified") return held.read.state;
  return held.kind === "verified" ? held.verified.status : held.status;
}

/**
 * What `staple-errors` staples for a failure: an unsuccessful OCSPResponse as the responder
 * sent it, or a made-up tryLater when it could not be reached (Apache's
 * SSLStaplingFakeTryLater). Undefined for a response that failed verification otherwise: a
 * bad signature, a wrong certificate or a stale answer is never stapled.
 */
function errorAnswer(error: FetchError): Held | undefined {
  if (error.kind === "invalid") {
    if (!(error.cause instanceof OcspVerifyError) || error.cause.reason !== "not successful" || !error.response) return undefined;
    try {
      const status = OcspResponse.fromDer(error.response).responseStatus;
      if (status === OCSPResponseStatus.successful) return undefined;
      return {
        kind: "error",
        der: Buffer.from(error.response),
        status: responseStatusName(status) as ResponseErrorName,
        source: "fetched",
      };
    } catch {
      return undefined;
    }
  }
  return { kind: "error", der: Buffer.from(unsuccessfulResponse("tryLater")), status: "tryLater", source: "made-up" };
}
