import { createHash, randomBytes } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { generateKeyPair, signingAlgorithm, type SerialStatus, type Signer } from "@ocsp-lab/ca";
import {
  OID,
  OCSPResponseStatus,
  OcspRequestDecoder,
  OcspResponseGenerator,
  OcspResponseSigner,
  defaultCrypto,
  encodeExtension,
  encodeNonceExtension,
  otherSerialCertId,
  responseStatusName,
  systemClock,
  type CertIdFields,
  type CertStatus,
  type Clock,
  type ParsedOcspRequest,
} from "@ocsp-lab/ocsp";
import type { Action, Behaviour, ContentFlaw } from "./behaviour.js";
import type { ServedIssuer, StatusSource } from "./status-source.js";
import { MAX_CERT_IDS_PER_REQUEST } from "./limits.js";
import { AnswerCache, type CacheEntry, DEFAULT_CACHE_MAX_BYTES } from "./answer-cache.js";

/** RFC 8954 §2.1: nonces are 1 to 32 octets; longer ones are refused with malformedRequest. */
export const MAX_NONCE_LENGTH = 32;
const DAY_MS = 86_400_000;

/** How responses are signed (RFC 6960 §4.2.2.2, §4.2.2.3). */
export interface SigningOptions {
  /** `delegated` (default): the issuer's OCSP signer; `issuer`: the CA's own key. */
  by?: "delegated" | "issuer";
  /** ResponderID: `byKey` (default) or `byName`. */
  responderId?: "byKey" | "byName";
  /** Include the signer certificate in `certs` (default true; a delegated signer needs it). */
  includeSigner?: boolean;
  /** RSA signers sign with RSASSA-PSS instead of PKCS#1 v1.5. */
  rsaPss?: boolean;
}

/** Options of OcspService. */
export interface OcspServiceOptions {
  source: StatusSource;
  behaviour: Behaviour;
  clock?: Clock;
  crypto?: Crypto;
  /** nextUpdate − thisUpdate, in seconds. Default 3600. */
  validitySeconds?: number;
  signing?: SigningOptions;
  /** What to answer for a CertID of an issuer not served here: `unauthorized` (default, RFC 6960 §2.3) or a signed `unknown`. */
  unknownIssuer?: "unauthorized" | "unknown";
  /** Keep pre-signed answers to nonce-less single-CertID requests (RFC 5019 §2.2). Default true. */
  cache?: boolean;
  /** Bound of those answers, in bytes (see AnswerCache); default DEFAULT_CACHE_MAX_BYTES (128 MiB). */
  cacheMaxBytes?: number;
}

/** What the service decided for one request; the HTTP layer applies `transport`. */
export interface Answer {
  /** DER OCSPResponse. */
  der: Uint8Array;
  /** Per-CertID statuses joined by `,`, or the responseStatus name of an error answer. */
  outcome: string;
  serials: string[];
  hashes: string[];
  nonceLength: number;
  /** Transport actions (delay, hang, close, reset, drip, truncate, http, body/content-type faults). */
  transport: Action[];
  /** The behaviour that applied (`global`, `issuer:<serial>`, `serial:<serial>`), if any. */
  behaviour: string | undefined;
  /** For a successful answer: its window, and (without a nonce) an ETag, for RFC 5019 HTTP caching. */
  thisUpdate?: Date;
  nextUpdate?: Date;
  etag?: string;
  /** Served from the pre-signed cache. */
  cached: boolean;
  /** thisUpdate and nextUpdate as HTTP dates (precomputed for cached answers). */
  lastModified?: string;
  expires?: string;
}

const TRANSPORT_KINDS = new Set<Action["kind"]>([
  "delay",
  "hang",
  "close",
  "reset",
  "drip",
  "truncate",
  "http",
  "wrong-content-type",
  "empty-body",
  "garbage-body",
]);

/**
 * The protocol core of the responder, transport-free: request DER in, an Answer out
 * (RFC 6960 §2.1–2.3, RFC 5019). Decoding failures answer malformedRequest; CertIDs of an
 * issuer the source does not serve answer unauthorized (or unknown); otherwise a signed
 * BasicOCSPResponse with one SingleResponse per CertID and the nonce echoed. Behaviours
 * (status overrides, error answers, content flaws) are applied here; transport actions are
 * passed on. Nonce-less single-CertID answers are pre-signed and cached until half their
 * validity. A cached answer is never served across a change of its own certificate's status
 * or issuer (it is re-checked against the source after any change the source reports, and
 * dropped if its status differs); a change of behaviours drops every cached answer.
 */
export class OcspService {
  private readonly source: StatusSource;
  private readonly behaviour: Behaviour;
  private readonly clock: Clock;
  private readonly crypto: Crypto;
  private readonly validityMs: number;
  /** A cached answer is signed again this long after its thisUpdate: half its validity (RFC 5019 §6.1 leaves it open). */
  private readonly refreshAfterMs: number;
  private readonly signing: Required<SigningOptions>;
  private readonly unknownIssuer: "unauthorized" | "unknown";
  private readonly cacheEnabled: boolean;
  private readonly cache: AnswerCache;
  private readonly thisUpdateMemo = new SecondMemo();
  private readonly nextUpdateMemo = new SecondMemo();
  private rogue: Promise<Signer> | undefined;
  /** Decodes requests; a repeated request with a fresh nonce is not decoded again (see OcspRequestDecoder). */
  private readonly decoder = new OcspRequestDecoder();
  /** Bumped by every clear: an answer signed across a behaviour change must not be cached. */
  private generation = 0;
  /**
   * Bumped whenever the source reports a change (any serial's status, the issuers loaded). A
   * cached answer whose `version` is current is served as is; an older one is checked again
   * against the source once (its status and issuer), so one revocation does not drop the
   * answers about every other certificate (which would re-sign all of them under load, and
   * give clients holding an ETag a new one for an unchanged answer).
   */
  private sourceVersion = 0;
  /** A source that cannot report changes is checked on every hit. */
  private readonly sourceReportsChanges: boolean;

  /** A service answering from `options.source` under `options.behaviour`. */
  constructor(options: OcspServiceOptions) {
    this.source = options.source;
    this.behaviour = options.behaviour;
    this.clock = options.clock ?? systemClock;
    this.crypto = options.crypto ?? defaultCrypto;
    this.validityMs = (options.validitySeconds ?? 3600) * 1000;
    this.refreshAfterMs = this.validityMs / 2;
    this.signing = { by: "delegated", responderId: "byKey", includeSigner: true, rsaPss: false, ...options.signing };
    this.unknownIssuer = options.unknownIssuer ?? "unauthorized";
    this.cacheEnabled = options.cache ?? true;
    this.cache = new AnswerCache(options.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES);
    this.sourceReportsChanges = this.source.onChange !== undefined;
    this.source.onChange?.(() => {
      this.sourceVersion += 1;
    });
    this.behaviour.onChange(() => this.clearCache());
  }

  /** Number of pre-signed answers held. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** Bytes the pre-signed answers count against their bound (see AnswerCache.bytes). */
  get cacheBytes(): number {
    return this.cache.bytes;
  }

  /**
   * The hot path: the answer cached for these exact request bytes (`rawKey`, as the HTTP layer
   * received them: a GET path or a POST body), when nothing in force could change it. A client
   * repeats its nonce-less request byte for byte, so this skips decoding altogether.
   */
  lookup(rawKey: string): Answer | undefined {
    if (!this.cacheEnabled || !this.behaviour.idle) return undefined;
    const hit = this.cache.getByRequest(rawKey);
    return hit && this.fresh(hit, this.clock.now().getTime()) ? hit.answer : undefined;
  }

  /**
   * Whether a cached entry may still be served at `now` (ms since the epoch): inside its window
   * (less than refreshAfterMs after its thisUpdate; not before it, so a clock set back gets no answer from its
   * future), and still what the source says of its certificate.
   */
  private fresh(entry: CacheEntry, now: number): boolean {
    // thisUpdate in whole seconds (shared by the answers of a second): no HeapNumbers per entry.
    const thisUpdateMs = entry.answer.thisUpdate!.getTime();
    if (now >= thisUpdateMs + this.refreshAfterMs || now < thisUpdateMs) return false;
    if (entry.version === this.sourceVersion && this.sourceReportsChanges) return true;
    const version = this.sourceVersion;
    if (this.source.issuer({ ...entry.issuerIds, serial: entry.serial }) !== entry.issuer) return false;
    if (statusKey(this.source.status(entry.issuer, entry.serial)) !== entry.statusKey) return false;
    entry.version = version;
    return true;
  }

  /**
   * Answer one DER request (undefined: the HTTP layer could not extract one). `rawKey`, when
   * given, lets `lookup` find the answer next time. Never throws for bad input; more than
   * MAX_CERT_IDS_PER_REQUEST CertIDs is malformedRequest.
   */
  async answer(requestDer: Uint8Array | undefined, rawKey?: string): Promise<Answer> {
    const requestKey = this.cacheEnabled && this.behaviour.idle ? rawKey : undefined;
    let request: ParsedOcspRequest | undefined;
    if (requestDer !== undefined) {
      try {
        request = this.decoder.decode(requestDer);
      } catch {
        request = undefined;
      }
      // More CertIDs than MAX_CERT_IDS_PER_REQUEST (limits.ts): malformedRequest, like bad DER.
      if (request && request.certIds.length > MAX_CERT_IDS_PER_REQUEST) request = undefined;
    }
    const first = request?.certIds[0];
    const firstIssuer = first ? this.source.issuer(first) : undefined;
    const resolved = this.behaviour.idle
      ? { actions: [], from: undefined }
      : this.behaviour.resolve(first?.serial, firstIssuer?.id);
    const transport = resolved.actions.filter((a) => TRANSPORT_KINDS.has(a.kind));
    const base = {
      serials: request?.certIds.map((c) => c.serial) ?? [],
      hashes: request?.certIds.map((c) => c.hash ?? c.hashOid) ?? [],
      nonceLength: request?.nonce?.byteLength ?? 0,
      transport,
      behaviour: resolved.from,
      cached: false,
    };
    const error = (status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): Answer => ({
      ...base,
      der: OcspResponseGenerator.error(status),
      outcome: responseStatusName(status),
    });

    const forced = resolved.actions.find((a) => a.kind === "responseStatus");
    if (forced?.kind === "responseStatus") return error(OCSPResponseStatus[forced.responseStatus]);
    if (!request) return error(OCSPResponseStatus.malformedRequest);
    if (request.nonceExtension && (base.nonceLength === 0 || base.nonceLength > MAX_NONCE_LENGTH))
      return error(OCSPResponseStatus.malformedRequest);

    // Which issuer answers; every CertID must name one we serve (or be answered unknown).
    let issuers = request.certIds.map((c) => this.source.issuer(c));
    // An issuer created a moment ago may still be loading: look again once it is.
    if (issuers.some((i) => i === undefined) && this.source.settled) {
      await this.source.settled();
      issuers = request.certIds.map((c) => this.source.issuer(c));
    }
    const signingIssuer =
      issuers.find((i) => i !== undefined) ?? (this.unknownIssuer === "unknown" ? this.source.defaultIssuer?.() : undefined);
    if (!signingIssuer || (this.unknownIssuer === "unauthorized" && issuers.some((i) => i === undefined))) {
      return error(OCSPResponseStatus.unauthorized);
    }

    const generation = this.generation;
    // Read before the statuses: a change while signing leaves the entry older than the source.
    const version = this.sourceVersion;
    const statusAction = resolved.actions.find((a) => a.kind === "status");
    const flaws = new Set(resolved.actions.filter((a) => a.kind === "content").map((a) => (a as { flaw: ContentFlaw }).flaw));
    const cacheKey =
      this.cacheEnabled && resolved.actions.length === 0 && !request.nonceExtension && request.certIds.length === 1
        ? keyOf(request.certIdDers[0]!)
        : undefined;
    const now = this.clock.now();
    if (cacheKey) {
      const hit = this.cache.get(cacheKey);
      if (hit && this.fresh(hit, now.getTime())) {
        if (requestKey !== undefined) this.cache.remember(requestKey, hit);
        return hit.answer;
      }
    }

    // A status override answers for the CertIDs in its scope only; whole-response actions
    // (content flaws, errors, transport) follow the first CertID's behaviour.
    const inScope = (c: CertIdFields, i: number): boolean =>
      resolved.from === undefined ||
      resolved.from === "global" ||
      resolved.from === `serial:${c.serial}` ||
      resolved.from === `issuer:${issuers[i]?.id}`;
    let signedFrom: string | undefined;
    const statuses: CertStatus[] = request.certIds.map((c, i) => {
      const own = i === 0 || this.behaviour.idle ? undefined : this.behaviour.peekStatus(c.serial, issuers[i]?.id);
      const override = own ?? (statusAction?.kind === "status" && inScope(c, i) ? statusAction : undefined);
      if (override) {
        return override.status === "revoked"
          ? {
              status: "revoked",
              revocationTime: override.revocationTime ?? now,
              ...(override.revocationReason !== undefined ? { revocationReason: override.revocationReason } : {}),
            }
          : { status: override.status };
      }
      const issuer = issuers[i];
      if (!issuer) return { status: "unknown" };
      const status = this.source.status(issuer, c.serial);
      if (i === 0) signedFrom = statusKey(status);
      return toCertStatus(status);
    });

    let thisUpdate = now;
    let nextUpdate: Date | undefined = new Date(now.getTime() + this.validityMs);
    if (flaws.has("stale")) {
      thisUpdate = new Date(now.getTime() - 2 * this.validityMs);
      nextUpdate = new Date(now.getTime() - this.validityMs);
    }
    if (flaws.has("not-yet-valid")) {
      thisUpdate = new Date(now.getTime() + DAY_MS);
      nextUpdate = new Date(now.getTime() + 2 * DAY_MS);
    }
    if (flaws.has("long-validity")) nextUpdate = new Date(now.getTime() + 3650 * DAY_MS);
    if (flaws.has("no-next-update")) nextUpdate = undefined;

    const signer = await OcspResponseSigner.for(await this.signerFor(signingIssuer, flaws), {
      responderId: this.signing.responderId,
      rsaPss: this.signing.rsaPss,
      crypto: this.crypto,
    });
    const nonceExtension = this.nonceFor(request, flaws);
    const der = await signer.sign({
      producedAt: now,
      ...(nonceExtension ? { nonceExtension } : {}),
      includeSignerCertificate: this.signing.includeSigner && !flaws.has("signer-not-included"),
      tamperSignature: flaws.has("bad-signature"),
      ...(flaws.has("critical-extension") ? { extraExtensions: [CRITICAL_EXTENSION] } : {}),
      responses: request.certIdDers.flatMap((certId, i) => {
        const single = {
          certId: flaws.has("wrong-serial") ? otherSerialCertId(certId) : certId,
          status: statuses[i]!,
          thisUpdate,
          ...(nextUpdate ? { nextUpdate } : {}),
        };
        // Another certificate's answer first: a client must pick its own by CertID.
        return flaws.has("extra-single-response")
          ? [{ ...single, certId: otherSerialCertId(certId), status: { status: "good" as const } }, single]
          : [single];
      }),
    });
    // One CertID (the usual case): the status name itself, one string shared by every answer.
    const outcome = statuses.length === 1 ? statuses[0]!.status : statuses.map((s) => s.status).join(",");
    // An answer with a nonce is never kept by an HTTP cache: no ETag for it.
    // JSON.stringify quotes it as one flat string (a template would keep three linked pieces per answer).
    const etag = request.nonceExtension
      ? undefined
      : JSON.stringify(createHash("sha256").update(der).digest().subarray(0, 16).toString("hex"));
    // `unknown` is not kept: a scanner asking about serials never issued would push every real
    // answer out of the cache (and grow it to its bound); each such request is signed.
    if (
      cacheKey &&
      etag &&
      nextUpdate &&
      generation === this.generation &&
      signedFrom !== undefined &&
      issuers[0] &&
      statuses[0]!.status !== "unknown"
    ) {
      // One CachedAnswer per cached answer (one hidden class for all of them), its times shared
      // by every answer of the same second.
      const thisTime = this.thisUpdateMemo.of(thisUpdate);
      const nextTime = this.nextUpdateMemo.of(nextUpdate);
      // The signer's `certs` field ends every answer it signs: held once per signer, not per answer.
      const tail = sharedTail(signer, der);
      const head = tail ? Buffer.from(der.subarray(0, der.byteLength - tail.byteLength)) : Buffer.from(der);
      const answer = new CachedAnswer({
        head,
        tail,
        serial: first!.serial,
        outcome,
        hashes: sharedHashes(base.hashes),
        thisUpdate: thisTime.date,
        nextUpdate: nextTime.date,
        etag,
        lastModified: thisTime.http,
        expires: nextTime.http,
      });
      const entry = this.cache.set({
        answer,
        derBytes: head.byteLength,
        issuerIds: this.cache.issuerIdsOf(first!),
        serial: first!.serial,
        issuer: issuers[0],
        statusKey: signedFrom,
        version,
        key: cacheKey,
      });
      if (requestKey !== undefined) this.cache.remember(requestKey, entry);
    }
    return { ...base, der, outcome, thisUpdate, ...(nextUpdate ? { nextUpdate } : {}), ...(etag ? { etag } : {}), cached: false };
  }

  private clearCache(): void {
    this.generation += 1;
    this.cache.clear();
  }

  private async signerFor(issuer: ServedIssuer, flaws: Set<ContentFlaw>): Promise<Signer> {
    if (flaws.has("unauthorized-key")) {
      this.rogue ??= selfSignedSigner(this.clock, this.crypto).catch((err: unknown) => {
        this.rogue = undefined;
        throw err;
      });
      return this.rogue;
    }
    const defect = flaws.has("signer-no-eku")
      ? "no-eku"
      : flaws.has("signer-expired")
        ? "expired"
        : flaws.has("signer-other-ca")
          ? "other-ca"
          : undefined;
    if (defect) {
      if (!this.source.flawedSigner) throw new Error(`this status source cannot make a signer with defect ${defect}`);
      return this.source.flawedSigner(issuer, defect);
    }
    return this.signing.by === "issuer" ? issuer.self : issuer.delegated;
  }

  /** DER of the nonce extension to answer with: the request's as received, none, or a wrong one (content flaws). */
  private nonceFor(request: ParsedOcspRequest, flaws: Set<ContentFlaw>): Uint8Array | undefined {
    if (!request.nonceExtension || flaws.has("nonce-omitted")) return undefined;
    const length = flaws.has("nonce-overlong") ? 64 : flaws.has("nonce-wrong") ? (request.nonce?.byteLength ?? 32) : 0;
    if (length === 0) return request.nonceExtension;
    return encodeNonceExtension(new Uint8Array(randomBytes(length)));
  }
}

/** The parts of a cached answer (see CachedAnswer). */
interface CachedAnswerParts {
  head: Buffer;
  tail: Buffer | undefined;
  serial: string;
  outcome: string;
  hashes: string[];
  thisUpdate: Date;
  nextUpdate: Date;
  etag: string;
  lastModified: string;
  expires: string;
}

/**
 * A pre-signed answer as the cache holds it, one CertID and no nonce: the bytes of its own
 * (`head`: everything up to the signature) and the `certs` field its signer ends every answer
 * with (`tail`, one Buffer shared by all of them; RFC 6960 §4.2.1 puts `certs` last in
 * BasicOCSPResponse, which is last in OCSPResponse). `der` joins them on each read (a copy of
 * about a kilobyte, far cheaper than holding the signer's certificate once per answer: about
 * 450 of an ECDSA answer's 860 bytes). What every cached answer has alike (no nonce, no
 * transport action, no behaviour) is read from the prototype, and its times are shared by the
 * answers of the same second: 100,000 of them are about 100,000 small objects, not 500,000.
 */
export class CachedAnswer implements Answer {
  readonly head: Buffer;
  readonly tail: Buffer | undefined;
  /** The one serial asked about (canonical hex). */
  readonly serial: string;
  readonly outcome: string;
  readonly hashes: string[];
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly etag: string;
  readonly lastModified: string;
  readonly expires: string;

  /** The answer made of `parts` (the Buffers are kept, not copied). */
  constructor(parts: CachedAnswerParts) {
    this.head = parts.head;
    this.tail = parts.tail;
    this.serial = parts.serial;
    this.outcome = parts.outcome;
    this.hashes = parts.hashes;
    this.thisUpdate = parts.thisUpdate;
    this.nextUpdate = parts.nextUpdate;
    this.etag = parts.etag;
    this.lastModified = parts.lastModified;
    this.expires = parts.expires;
  }

  /** The DER OCSPResponse: head and tail joined into a new Buffer (the head itself without a tail). */
  get der(): Buffer {
    return this.tail ? Buffer.concat([this.head, this.tail], this.head.byteLength + this.tail.byteLength) : this.head;
  }

  /** `[serial]`, a new array on each read (the request log keeps one per request). */
  get serials(): string[] {
    return [this.serial];
  }

  /** No nonce: an answer with one is never cached. */
  get nonceLength(): number {
    return 0;
  }

  /** No transport actions: an answer a behaviour shaped is never cached. */
  get transport(): Action[] {
    return NO_ACTIONS;
  }

  get behaviour(): undefined {
    return undefined;
  }

  get cached(): true {
    return true;
  }
}

/** Each prepared signer's `certs` field as a Buffer, made once (see CachedAnswer). */
const tails = new WeakMap<OcspResponseSigner, Buffer>();

/** The signer's `certs` field when `der` ends with it, else undefined. */
function sharedTail(signer: OcspResponseSigner, der: Uint8Array): Buffer | undefined {
  let tail = tails.get(signer);
  if (!tail) {
    tail = Buffer.from(signer.certsDer);
    tails.set(signer, tail);
  }
  if (der.byteLength <= tail.byteLength) return undefined;
  const end = Buffer.from(der.buffer, der.byteOffset + der.byteLength - tail.byteLength, tail.byteLength);
  return end.equals(tail) ? tail : undefined;
}

/** No transport actions (shared by every cached answer: nothing may push to it). */
const NO_ACTIONS: Action[] = [];

/**
 * A time as a Date and an HTTP date (RFC 9110 §5.6.7) in whole seconds, the same objects for
 * every time of one second: cached answers signed in the same second share them.
 */
class SecondMemo {
  private last = { ms: Number.NaN, date: new Date(0), http: "" };
  of(time: Date): { date: Date; http: string } {
    const ms = Math.floor(time.getTime() / 1000) * 1000;
    if (ms !== this.last.ms) {
      const date = new Date(ms);
      this.last = { ms, date, http: date.toUTCString() };
    }
    return this.last;
  }
}

/** One array per hash-name list of a single CertID (cached answers share it: nothing may push to it). */
const singleHashes = new Map<string, string[]>();
function sharedHashes(hashes: string[]): string[] {
  if (hashes.length !== 1) return hashes;
  let shared = singleHashes.get(hashes[0]!);
  if (!shared) {
    shared = [hashes[0]!];
    if (singleHashes.size < 64) singleHashes.set(hashes[0]!, shared);
  }
  return shared;
}

/** The CertID exactly as received: the cached DER echoes these bytes, so differently encoded serials must not share an entry. */
function keyOf(certId: Uint8Array): string {
  return Buffer.from(certId.buffer, certId.byteOffset, certId.byteLength).toString("latin1");
}

/** `critical-extension`: an unknown extension marked critical (RFC 5280 §4.2: a client must refuse the answer). */
const CRITICAL_EXTENSION = encodeExtension("1.3.6.1.4.1.55555.1", true, Uint8Array.of(0x05, 0x00));

/** The CertStatus to sign for what the CA knows (its invalidity date is not part of RFC 6960 RevokedInfo). */
/** A status as a string that differs whenever what an answer says about it would. */
function statusKey(s: SerialStatus): string {
  if (s.status !== "revoked") return s.status;
  return `revoked:${s.revocationTime.getTime()}:${s.revocationReason ?? ""}:${s.invalidityDate?.getTime() ?? ""}`;
}

function toCertStatus(s: SerialStatus): CertStatus {
  return s.status === "revoked"
    ? {
        status: "revoked",
        revocationTime: s.revocationTime,
        ...(s.revocationReason !== undefined ? { revocationReason: s.revocationReason } : {}),
      }
    : { status: s.status };
}

/**
 * A signer whose self-signed certificate no issuer ever authorised (`unauthorized-key`): a fresh
 * P-256 key, valid from a day before `clock`'s now for a year, with the OCSPSigning EKU (RFC 6960
 * §4.2.2.2) so only the missing authorisation makes it wrong.
 */
async function selfSignedSigner(clock: Clock, crypto: Crypto): Promise<Signer> {
  const keys = await generateKeyPair("ecdsa-p256", crypto);
  const now = clock.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: "01",
      name: "CN=ocsp-lab unauthorized signer, O=ocsp-lab",
      notBefore: new Date(now.getTime() - DAY_MS),
      notAfter: new Date(now.getTime() + 365 * DAY_MS),
      keys,
      signingAlgorithm: signingAlgorithm("ecdsa-p256"),
      extensions: [new x509.ExtendedKeyUsageExtension([OID.kpOcspSigning], false)],
    },
    crypto,
  );
  return { certificate, key: keys.privateKey, keyType: "ecdsa-p256" };
}
