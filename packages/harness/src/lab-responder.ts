import { normalizeSerial } from "@ocsp-lab/ocsp";
import type { ActionInput, BehaviourInput, RequestLogEntry, RequestQuery, StartedOcspResponder } from "@ocsp-lab/responder";
import { parseLabState } from "./set.js";

/**
 * A certificate as the lab's methods take it: anything with a `serial` (an IssuedCertificate,
 * a LabServer, a CertificateRecord) or the serial itself, hex in any form normalizeSerial
 * accepts (`0a1b…`, `0A:1B:…`, `0x0a1b…`).
 */
export type LeafRef = string | { readonly serial: string };

/**
 * The canonical serial of a LeafRef.
 * @throws InvalidSerialError (@ocsp-lab/ocsp) when it is not hexadecimal.
 */
export function serialOf(leaf: LeafRef): string {
  return normalizeSerial(typeof leaf === "string" ? leaf : leaf.serial);
}

/**
 * What one certificate's responder answers should be (`lab.responder.set`):
 * - a state in the words of `ocsp-lab set` (LAB_STATES, parsed by parseLabState): `good`,
 *   `revoked`, `unknown`, `hang`, `down`, `slow <seconds>`, `http <status>`, `trylater`,
 *   `flaw <name>` (CONTENT_FLAWS), `clear`;
 * - or any responder action (ActionInput: `{ kind: "hang" }`, `{ kind: "drip", chunkBytes: 1 }`,
 *   `{ kind: "content", flaw: "stale" }`…), applied to every request for it;
 * - or a whole responder behaviour (BehaviourInput: `{ steps: [...], repeat }`), for sequences
 *   such as "two good answers, then hang".
 */
export type LabStateInput = string | ActionInput | BehaviourInput;

/** Options of LabResponder.set. */
export interface LabSetOptions {
  /** For `revoked`: the RFC 5280 CRLReason, a name (`keyCompromise`) or its code (1); default unspecified. */
  reason?: string | number;
}

/**
 * The responder of a StartedOcspLab, addressed per certificate. Changes apply to the next
 * request; the stapler sees them at its next query (`lab.staple(leaf).becomes(...)` queries
 * at once). For anything not per certificate (a global fault, a base delay, metrics) use
 * `server`, the StartedOcspResponder itself.
 */
export class LabResponder {
  private readonly started: StartedOcspResponder;
  private readonly changed: () => void;

  /** Made by OcspLab.start(); `changed` runs after every set() (it wakes pending staple waits). */
  constructor(started: StartedOcspResponder, changed: () => void) {
    this.started = started;
    this.changed = changed;
  }

  /** The StartedOcspResponder underneath (setFault, setDelay, behaviour, metrics, log…). */
  get server(): StartedOcspResponder {
    return this.started;
  }

  /** Base URL, the one issued certificates carry in their AIA OCSP field, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return this.started.url;
  }

  /** Bound host. */
  get host(): string {
    return this.started.host;
  }

  /** Bound port. */
  get port(): number {
    return this.started.port;
  }

  /**
   * Answer every request about `leaf` as `state` says (see LabStateInput), until another set()
   * or `clear`. The same vocabulary and mapping as `ocsp-lab set`: `revoked` is a reversible
   * status override (RFC 6960 §2.2 revoked with `options.reason`), leaving the CA's record
   * alone (`lab.revoke` is the permanent revocation); `down` resets the connection; `slow`
   * delays by seconds on the lab's clock; `http` answers that HTTP status without an OCSP
   * body; `trylater` the unsigned tryLater responseStatus (RFC 6960 §2.3); `flaw` signs a
   * defective response; `clear` returns to what the CA says.
   * @throws UsageError (code OCSP_LAB_USAGE) for an unknown state or a bad value;
   * InvalidReasonError for a bad reason; InvalidBehaviourError for a bad action or behaviour;
   * InvalidSerialError for a serial that is not hex.
   */
  set(leaf: LeafRef, state: LabStateInput, options: LabSetOptions = {}): void {
    const scope = { kind: "serial" as const, serial: serialOf(leaf) };
    if (typeof state === "string") {
      const reason = options.reason === undefined ? undefined : String(options.reason);
      const parsed = parseLabState(state.trim().split(/\s+/), reason);
      if (parsed.name === "clear") this.started.clearBehaviour(scope);
      else this.started.setBehaviour(scope, { steps: [{ actions: [(parsed as { action: ActionInput }).action] }] });
    } else if ("steps" in state) {
      this.started.setBehaviour(scope, state);
    } else {
      this.started.setBehaviour(scope, { steps: [{ actions: [state] }] });
    }
    this.changed();
  }

  /** Same as `set(leaf, "clear")`: the CA's own status for `leaf` again. */
  clear(leaf: LeafRef): void {
    this.set(leaf, "clear");
  }

  /**
   * The requests the responder logged about `leaf` (every request when omitted), oldest first;
   * `query.since` compares with arrival times on the lab's clock, `query.limit` keeps the last ones.
   */
  requests(leaf?: LeafRef, query: Omit<RequestQuery, "serial"> & { limit?: number } = {}): RequestLogEntry[] {
    return this.started.requests({ ...query, ...(leaf !== undefined ? { serial: serialOf(leaf) } : {}) });
  }

  /**
   * Resolve with the requests about `leaf` once there are `query.count` (default 1) of them.
   * @throws WaitTimeoutError (@ocsp-lab/responder) after `timeoutMs` real milliseconds (default 10,000).
   */
  waitForRequests(
    leaf: LeafRef,
    query: Omit<RequestQuery, "serial"> & { count?: number } = {},
    timeoutMs?: number,
  ): Promise<RequestLogEntry[]> {
    return this.started.waitForRequests({ ...query, serial: serialOf(leaf) }, timeoutMs);
  }
}
