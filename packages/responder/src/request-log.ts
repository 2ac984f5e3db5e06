import { EventEmitter, once } from "node:events";
import { WaitTimeoutError } from "./errors.js";

/** One request as the responder saw and answered it. */
export interface RequestLogEntry {
  /** When the request arrived, on the responder's clock. */
  time: Date;
  method: string;
  /** Canonical serials asked about (empty when the request did not decode). */
  serials: string[];
  /** CertID hash algorithms asked with, e.g. `SHA-1`. */
  hashes: string[];
  /** Nonce length in bytes, or 0 when the request had none. */
  nonceLength: number;
  /**
   * What was answered: `good`/`revoked`/`unknown` per CertID joined by `,`, an OCSP
   * responseStatus name (`malformedRequest`, `unauthorized`...), or `fault:<kind>`.
   */
  outcome: string;
  /** HTTP status sent, or 0 when none was (close, hang). */
  httpStatus: number;
  /**
   * Time from arrival to the answer (or to the fault), in milliseconds: processing time plus
   * the time waited on the responder's clock (delay, drip).
   */
  latencyMs: number;
  /** The behaviour that applied: `global`, `issuer:<serial>` or `serial:<serial>`. */
  behaviour?: string;
  /** Served from the pre-signed cache. */
  cached?: boolean;
}

/** A filter for waitForRequests. */
export interface RequestQuery {
  /** Only requests about this canonical serial. */
  serial?: string;
  /** Only requests that arrived at or after this time (compared with `time`, the responder's clock). */
  since?: Date;
}

/**
 * The in-memory record of what the responder was asked, awaitable so tests synchronise on
 * events instead of sleeping. Keeps the last `capacity` entries (default 10,000).
 */
export class RequestLog {
  private readonly entries: RequestLogEntry[] = [];
  private readonly events = new EventEmitter();
  private readonly capacity: number;

  /** A log keeping the last `capacity` entries. */
  constructor(capacity = 10_000) {
    this.capacity = capacity;
    this.events.setMaxListeners(0);
  }

  /** Append an entry and wake waiters. */
  add(entry: RequestLogEntry): void {
    this.entries.push(entry);
    // Trim in batches: shifting a 10,000-entry array on every request would cost the hot path.
    if (this.entries.length > this.capacity * 1.5) this.entries.splice(0, this.entries.length - this.capacity);
    if (this.events.listenerCount("entry") > 0) this.events.emit("entry", entry);
  }

  /** Entries matching `query`, oldest first (the last `query.limit` when given), among the last `capacity`. */
  list(query: RequestQuery & { limit?: number } = {}): RequestLogEntry[] {
    const recent = this.entries.length > this.capacity ? this.entries.slice(-this.capacity) : this.entries;
    const found = recent.filter((e) => matches(e, query));
    return query.limit !== undefined ? found.slice(-query.limit) : found;
  }

  /**
   * Resolve with the matching entries once there are at least `count` of them.
   * @throws WaitTimeoutError after `timeoutMs` (default 10,000).
   */
  async waitFor(query: RequestQuery & { count?: number }, timeoutMs = 10_000): Promise<RequestLogEntry[]> {
    const count = query.count ?? 1;
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const found = this.list(query);
      if (found.length >= count) return found;
      try {
        await once(this.events, "entry", { signal });
      } catch {
        throw new WaitTimeoutError(`${count} request(s) matching ${JSON.stringify(query)} (saw ${found.length})`, timeoutMs);
      }
    }
  }
}

function matches(e: RequestLogEntry, q: RequestQuery): boolean {
  if (q.serial !== undefined && !e.serials.includes(q.serial)) return false;
  if (q.since !== undefined && e.time < q.since) return false;
  return true;
}
