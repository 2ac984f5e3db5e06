import {
  OCSPResponseStatus,
  defaultCrypto,
  parseOcspRequest,
  responseStatusName,
  systemClock,
  type Clock,
  type Signer,
} from "@ocsp-lab/ca";
import type { Behaviour } from "./behaviour.js";
import { OcspResponseGenerator, type SingleStatus } from "./response-generator.js";
import type { StatusSource } from "./status-source.js";

/** RFC 8954 §2.1: nonces are 1 to 32 octets; longer ones are refused with malformedRequest. */
export const MAX_NONCE_LENGTH = 32;

/** What the service answered to one request. */
export interface ServiceAnswer {
  /** DER OCSPResponse. */
  der: Uint8Array;
  /** Per-CertID statuses joined by `,`, or the responseStatus name of an error answer. */
  outcome: string;
  serials: string[];
  hashes: string[];
  nonceLength: number;
  /** nextUpdate of a successful answer, for HTTP caching headers. */
  nextUpdate?: Date;
  thisUpdate?: Date;
}

/** Options of OcspService. */
export interface OcspServiceOptions {
  source: StatusSource;
  signer: Signer;
  behaviour: Behaviour;
  clock?: Clock;
  crypto?: Crypto;
  /** nextUpdate − thisUpdate, in seconds. Default 3600. */
  validitySeconds?: number;
}

/**
 * The protocol core of the responder, transport-free: request DER in, response DER out
 * (RFC 6960 §2.1–2.3). Decoding failures answer malformedRequest, CertIDs of an issuer the
 * source does not serve answer unauthorized, anything else a signed BasicOCSPResponse with one
 * SingleResponse per requested CertID and the nonce echoed.
 */
export class OcspService {
  private readonly opts: Required<Omit<OcspServiceOptions, "crypto" | "clock">> & { clock: Clock; crypto: Crypto };

  /** A service answering from `options.source`, signing with `options.signer`; validity defaults to 3600 s. */
  constructor(options: OcspServiceOptions) {
    this.opts = {
      ...options,
      clock: options.clock ?? systemClock,
      crypto: options.crypto ?? defaultCrypto,
      validitySeconds: options.validitySeconds ?? 3600,
    };
  }

  /** What a request asks (serials, hashes, nonce length) without answering it; empty when it does not decode. */
  describe(requestDer: Uint8Array): Pick<ServiceAnswer, "serials" | "hashes" | "nonceLength"> {
    try {
      const request = parseOcspRequest(requestDer);
      return {
        serials: request.certIds.map((c) => c.serial),
        hashes: request.certIds.map((c) => c.hash ?? c.hashOid),
        nonceLength: request.nonce?.byteLength ?? 0,
      };
    } catch {
      return { serials: [], hashes: [], nonceLength: 0 };
    }
  }

  /** Answer one DER request. Never throws for bad input: that is a malformedRequest answer. */
  async answer(requestDer: Uint8Array): Promise<ServiceAnswer> {
    let request: ReturnType<typeof parseOcspRequest>;
    try {
      request = parseOcspRequest(requestDer);
    } catch {
      return this.error(OCSPResponseStatus.malformedRequest, [], [], 0);
    }
    const serials = request.certIds.map((c) => c.serial);
    const hashes = request.certIds.map((c) => c.hash ?? c.hashOid);
    const nonceLength = request.nonce?.byteLength ?? 0;
    if (request.nonceExtension && (nonceLength === 0 || nonceLength > MAX_NONCE_LENGTH)) {
      return this.error(OCSPResponseStatus.malformedRequest, serials, hashes, nonceLength);
    }
    const statuses: SingleStatus[] = [];
    for (const certId of request.certIds) {
      const override = this.opts.behaviour.override(certId.serial);
      if (override) {
        statuses.push(
          override.status === "revoked"
            ? { status: "revoked", revocationTime: override.revocationTime ?? this.opts.clock.now(), reason: override.reason }
            : override,
        );
        continue;
      }
      const found = this.opts.source.lookup(certId);
      if (!found) return this.error(OCSPResponseStatus.unauthorized, serials, hashes, nonceLength);
      statuses.push(found.status === "revoked" ? { status: "revoked", revocationTime: found.revocationTime, reason: found.reason } : found);
    }
    const now = this.opts.clock.now();
    const nextUpdate = new Date(now.getTime() + this.opts.validitySeconds * 1000);
    const der = await OcspResponseGenerator.create({
      signer: this.opts.signer,
      producedAt: now,
      nonceExtension: request.nonceExtension,
      responses: request.rawCertIds.map((certId, i) => ({ certId, status: statuses[i]!, thisUpdate: now, nextUpdate })),
      crypto: this.opts.crypto,
    });
    return { der, outcome: statuses.map((s) => s.status).join(","), serials, hashes, nonceLength, thisUpdate: now, nextUpdate };
  }

  private error(status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>, serials: string[], hashes: string[], nonceLength: number): ServiceAnswer {
    return { der: OcspResponseGenerator.error(status), outcome: responseStatusName(status), serials, hashes, nonceLength };
  }
}
