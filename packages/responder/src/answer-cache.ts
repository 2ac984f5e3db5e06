import type { CertIdFields } from "@ocsp-lab/ocsp";
import type { Answer } from "./ocsp-service.js";
import { plainCertIdKey } from "./request-key.js";
import type { ServedIssuer } from "./status-source.js";

/**
 * Default bound of the answer cache, in bytes (see AnswerCache.bytes for what is counted).
 *
 * Why 128 MiB: it holds the pre-signed answers of a 100,000-certificate CA at once, so RFC 5019
 * clients polling every certificate are answered from the cache (bench:scale): about 1,000
 * bytes counted each with an ECDSA P-256 delegated signer (a head of its own, 350–410 bytes, its
 * CertID key, ENTRY_OVERHEAD_BYTES; the signer's certificate is held once), 100 MB; about 1,200
 * with RSA-2048. What the heap and the Buffers really hold for them was 89 MB in bench:scale:
 * the count errs on the high side.
 */
export const DEFAULT_CACHE_MAX_BYTES = 128 * 1024 * 1024;

/**
 * What one entry costs beyond its own DER and its CertID key, in bytes: the CachedAnswer and
 * entry objects, the Buffer object of its head, the ETag and serial strings, the map slot.
 * Measured with bench/responder-scale.mjs: the heap after a full collection grew by about 580
 * bytes per entry over 100,000 entries, of which about 100 are the key string; rounded up.
 */
export const ENTRY_OVERHEAD_BYTES = 500;

/**
 * Plain GET paths kept read (AnswerCache.getByRequest), apart from the bound in bytes: reading
 * one is a base64 decoding (about 3 µs, on every cached GET otherwise). Why 4,096: the clients
 * polling one responder repeat a few thousand paths at most; at ~250 bytes each it is 1 MB, and
 * past it the map starts over.
 */
const GET_PATHS_KEPT = 4096;

/** Bytes a map key of `key` costs (a one-byte string: its characters and a header). */
const keyBytes = (key: string): number => key.length + 24;

/** The issuer half of a CertID (RFC 6960 §4.1.1: hashAlgorithm, issuerNameHash, issuerKeyHash). */
export type IssuerIds = Omit<CertIdFields, "serial">;

/** One pre-signed answer and what it was signed from. */
export interface CacheEntry {
  /** The answer as served from the cache (built once). */
  answer: Answer;
  /** What it was signed from: re-checked against the source after a change. */
  issuerIds: IssuerIds;
  serial: string;
  issuer: ServedIssuer;
  statusKey: string;
  /** The source's change count when it was last known to match (see OcspService). */
  version: number;
  /** The CertID DER key it is held under. */
  key: string;
  /**
   * Exact request bytes that found it (see AnswerCache.remember), dropped with it: one string
   * (a client's one encoding, the usual case) or several (POST and GET, other encodings).
   */
  requestKeys: string | string[] | undefined;
  /** Bytes of DER this entry holds alone (a tail shared with other answers is not counted). */
  derBytes: number;
  /** What it counts against the bound. */
  bytes: number;
}

/**
 * The responder's pre-signed answers (RFC 5019 §2.2, §6.1): keyed by the CertID's DER as
 * received. A client repeats its nonce-less request byte for byte, so the hot path answers
 * without decoding it: a plain request's bytes are its CertID behind four SEQUENCE headers
 * (plainCertIdKey), and the bytes of requests of any other encoding that found an answer are
 * remembered with it.
 *
 * Bounded by `maxBytes`: each entry counts its DER, its keys and ENTRY_OVERHEAD_BYTES; past the
 * bound the oldest entries are dropped first (the ones nearest their refresh), one at a time,
 * never the whole cache at once (which would have every client's next request re-signed at the
 * same moment).
 */
export class AnswerCache {
  private readonly byCertId = new Map<string, CacheEntry>();
  private readonly byRequestKey = new Map<string, CacheEntry>();
  private readonly maxBytes: number;
  private used = 0;
  /** Plain GET request keys already read, and the CertID key each stands for (see getByRequest). */
  private readonly getPaths = new Map<string, string>();
  /** Issuer halves of CertIDs, shared by every entry of the same issuer and hash. */
  private readonly issuerIdsMemo = new Map<string, IssuerIds>();

  /** A cache holding at most `maxBytes` (default DEFAULT_CACHE_MAX_BYTES). */
  constructor(maxBytes = DEFAULT_CACHE_MAX_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** Entries held. */
  get size(): number {
    return this.byCertId.size;
  }

  /** Bytes counted against the bound (DER, keys and ENTRY_OVERHEAD_BYTES per entry). */
  get bytes(): number {
    return this.used;
  }

  /** The entry for a CertID's DER key. */
  get(key: string): CacheEntry | undefined {
    return this.byCertId.get(key);
  }

  /**
   * The entry for these exact request bytes (a request key, see request-key.ts): a plain
   * request (one CertID and nothing else, what RFC 5019 clients send) finds its CertID's entry
   * directly; another encoding finds the entry it found before (see remember).
   */
  getByRequest(requestKey: string): CacheEntry | undefined {
    const remembered = this.byRequestKey.get(requestKey);
    if (remembered) return remembered;
    // A GET path costs a base64 decoding to read: the last GET_PATHS_KEPT paths are kept read.
    const isGet = requestKey.charCodeAt(0) === 0x47; /* G */
    let certIdKey = isGet ? this.getPaths.get(requestKey) : undefined;
    if (certIdKey === undefined) {
      certIdKey = plainCertIdKey(requestKey);
      if (certIdKey === undefined) return undefined;
      if (isGet) {
        if (this.getPaths.size >= GET_PATHS_KEPT) this.getPaths.clear();
        this.getPaths.set(requestKey, certIdKey);
      }
    }
    return this.byCertId.get(certIdKey);
  }

  /** The issuer half of `certId`, one object per distinct issuer and hash. */
  issuerIdsOf(certId: CertIdFields): IssuerIds {
    const k = `${certId.hashOid}|${certId.issuerNameHash}|${certId.issuerKeyHash}`;
    let ids = this.issuerIdsMemo.get(k);
    if (!ids) {
      ids = {
        hashOid: certId.hashOid,
        hash: certId.hash,
        issuerNameHash: certId.issuerNameHash,
        issuerKeyHash: certId.issuerKeyHash,
      };
      // CertIDs naming issuers not served are answered before caching; this bounds the rest.
      if (this.issuerIdsMemo.size >= 1024) this.issuerIdsMemo.clear();
      this.issuerIdsMemo.set(k, ids);
    }
    return ids;
  }

  /** Hold `entry` (its `key`, `bytes` and `requestKeys` are set here), replacing one under the same key. */
  set(entry: Omit<CacheEntry, "bytes" | "requestKeys">): CacheEntry {
    const old = this.byCertId.get(entry.key);
    if (old) this.drop(old);
    // Built field by field, always in this order: every entry shares one hidden class.
    const held: CacheEntry = {
      answer: entry.answer,
      issuerIds: entry.issuerIds,
      serial: entry.serial,
      issuer: entry.issuer,
      statusKey: entry.statusKey,
      version: entry.version,
      key: entry.key,
      requestKeys: undefined,
      derBytes: entry.derBytes,
      bytes: entry.derBytes + keyBytes(entry.key) + ENTRY_OVERHEAD_BYTES,
    };
    this.byCertId.set(held.key, held);
    this.used += held.bytes;
    this.evict();
    return held;
  }

  /**
   * Let `requestKey` find `entry` (when it is still held). A plain request finds its entry
   * without being remembered: only other encodings (extensions, long-form lengths, several
   * CertIDs' worth of wrapping) cost a key of their own.
   */
  remember(requestKey: string, entry: CacheEntry): void {
    if (this.byCertId.get(entry.key) !== entry) return;
    if (plainCertIdKey(requestKey) === entry.key) return;
    const old = this.byRequestKey.get(requestKey);
    if (old === entry) return;
    if (old) this.forget(old, requestKey);
    this.byRequestKey.set(requestKey, entry);
    const keys = entry.requestKeys;
    entry.requestKeys = keys === undefined ? requestKey : typeof keys === "string" ? [keys, requestKey] : [...keys, requestKey];
    const bytes = keyBytes(requestKey) + 16;
    entry.bytes += bytes;
    this.used += bytes;
    this.evict();
  }

  /** Drop every entry. */
  clear(): void {
    this.byCertId.clear();
    this.byRequestKey.clear();
    this.used = 0;
  }

  private evict(): void {
    while (this.used > this.maxBytes && this.byCertId.size > 0) {
      const oldest = this.byCertId.values().next().value as CacheEntry;
      this.drop(oldest);
    }
  }

  private drop(entry: CacheEntry): void {
    this.byCertId.delete(entry.key);
    const keys = entry.requestKeys;
    for (const k of keys === undefined ? [] : typeof keys === "string" ? [keys] : keys) {
      if (this.byRequestKey.get(k) === entry) this.byRequestKey.delete(k);
    }
    this.used -= entry.bytes;
  }

  private forget(entry: CacheEntry, requestKey: string): void {
    const keys = entry.requestKeys;
    if (keys === undefined) return;
    if (typeof keys === "string") {
      if (keys !== requestKey) return;
      entry.requestKeys = undefined;
    } else {
      const rest = keys.filter((k) => k !== requestKey);
      if (rest.length === keys.length) return;
      entry.requestKeys = rest.length === 1 ? rest[0] : rest;
    }
    const bytes = keyBytes(requestKey) + 16;
    entry.bytes -= bytes;
    this.used -= bytes;
  }
}
