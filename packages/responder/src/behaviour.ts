import { CRLReason, normalizeSerial } from "@ocsp-lab/ca";
import { InvalidBehaviourError } from "./errors.js";

/** A per-serial status that replaces what the StatusSource says. */
export type StatusOverride =
  | { status: "good" }
  | { status: "revoked"; reason?: CRLReason; revocationTime?: Date }
  | { status: "unknown" };

/**
 * A failure the responder produces instead of a real answer:
 * - `tryLater`, `internalError`, `malformedRequest`, `sigRequired`, `unauthorized`: an unsigned
 *   OCSP response with that responseStatus (RFC 6960 §2.3), HTTP 200;
 * - `http-500`, `http-503`: an HTTP error with no OCSP body;
 * - `close`: the TCP connection is destroyed without an answer;
 * - `hang`: the request is read and never answered (until the responder stops).
 */
export type FaultKind =
  | "tryLater"
  | "internalError"
  | "malformedRequest"
  | "sigRequired"
  | "unauthorized"
  | "http-500"
  | "http-503"
  | "close"
  | "hang";

/** Every fault kind, for validation and help texts. */
export const FAULT_KINDS: readonly FaultKind[] = [
  "tryLater",
  "internalError",
  "malformedRequest",
  "sigRequired",
  "unauthorized",
  "http-500",
  "http-503",
  "close",
  "hang",
];

/** A fault and how many requests it applies to. */
export interface Fault {
  kind: FaultKind;
  /** Apply to the next `count` requests, then answer normally again. Absent: until cleared. */
  count?: number;
}

/**
 * The run-time behaviour of a responder: status overrides per serial, a delay before every
 * answer, and a fault. Changed through the library API while the responder serves; every
 * request reads it afresh.
 */
export class Behaviour {
  private readonly overrides = new Map<string, StatusOverride>();
  private delay = 0;
  private fault: { kind: FaultKind; remaining: number } | undefined;

  /**
   * Answer `serial` with `override` whatever the CA says.
   * @throws InvalidBehaviourError for an unknown status; InvalidSerialError (from @ocsp-lab/ca) for a non-hex serial.
   */
  setStatus(serial: string, override: StatusOverride): void {
    if (!["good", "revoked", "unknown"].includes(override.status)) {
      throw new InvalidBehaviourError("status", override.status, "use good, revoked or unknown");
    }
    this.overrides.set(normalizeSerial(serial), override);
  }

  /** Drop the override of `serial` (the StatusSource answers again). */
  clearStatus(serial: string): void {
    this.overrides.delete(normalizeSerial(serial));
  }

  /** The override of a canonical serial, if any. */
  override(serial: string): StatusOverride | undefined {
    return this.overrides.size === 0 ? undefined : this.overrides.get(serial);
  }

  /**
   * Wait `ms` milliseconds before answering every request (a slow responder).
   * @throws InvalidBehaviourError when ms is negative or not finite.
   */
  setDelay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidBehaviourError("delay (ms)", ms, "give a number of milliseconds ≥ 0");
    this.delay = ms;
  }

  /** The current delay in milliseconds. */
  get delayMs(): number {
    return this.delay;
  }

  /**
   * Fail the next `fault.count` requests (or all, until cleared) with `fault.kind`; `undefined` clears.
   * @throws InvalidBehaviourError for an unknown kind or a count that is not a positive integer.
   */
  setFault(fault: Fault | undefined): void {
    if (!fault) {
      this.fault = undefined;
      return;
    }
    if (!FAULT_KINDS.includes(fault.kind)) throw new InvalidBehaviourError("fault", fault.kind, `use one of ${FAULT_KINDS.join(", ")}`);
    if (fault.count !== undefined && !(Number.isInteger(fault.count) && fault.count > 0)) {
      throw new InvalidBehaviourError("fault count", fault.count, "give a positive integer, or omit it for 'until cleared'");
    }
    this.fault = { kind: fault.kind, remaining: fault.count ?? Infinity };
  }

  /** The fault in force, without consuming it. */
  get currentFault(): Fault | undefined {
    if (!this.fault) return undefined;
    return Number.isFinite(this.fault.remaining) ? { kind: this.fault.kind, count: this.fault.remaining } : { kind: this.fault.kind };
  }

  /** Take the fault for one request (decrementing its count), or undefined. */
  takeFault(): FaultKind | undefined {
    if (!this.fault) return undefined;
    const { kind } = this.fault;
    this.fault.remaining -= 1;
    if (this.fault.remaining <= 0) this.fault = undefined;
    return kind;
  }

  /** Back to a plain responder: no overrides, no delay, no fault. */
  reset(): void {
    this.overrides.clear();
    this.delay = 0;
    this.fault = undefined;
  }
}
