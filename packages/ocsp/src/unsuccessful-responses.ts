import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import { OCSPResponseStatus, type UnsuccessfulStatusName } from "./cert-status.js";

/** An unsuccessful OCSPResponseStatus value (everything but successful). */
export type UnsuccessfulStatus = Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>;

/**
 * The DER of an unsigned, unsuccessful `OCSPResponse { responseStatus }` with no
 * responseBytes (RFC 6960 §2.3, §4.2.1), as RFC 6960 prescribes for malformedRequest,
 * internalError, tryLater, sigRequired and unauthorized. Encoded once with pkijs and reused,
 * as cfssl keeps its pre-encoded error responses.
 *
 * ```asn1
 * OCSPResponse ::= SEQUENCE {
 *    responseStatus         OCSPResponseStatus,
 *    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
 * ```
 */
function encode(status: UnsuccessfulStatus): Uint8Array {
  const response = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: status }) });
  return new Uint8Array(response.toSchema().toBER(false));
}

/**
 * Pre-encoded unsuccessful responses by OCSPResponseStatus value, e.g.
 * `UNSUCCESSFUL_RESPONSES[OCSPResponseStatus.tryLater]` (the 5 bytes `30 03 0a 01 03`), shared
 * by the whole process: never change them (`unsuccessfulResponse` and
 * `OcspResponseGenerator.error` hand out copies).
 */
export const UNSUCCESSFUL_RESPONSES: Readonly<Record<UnsuccessfulStatus, Uint8Array>> = {
  [OCSPResponseStatus.malformedRequest]: encode(OCSPResponseStatus.malformedRequest),
  [OCSPResponseStatus.internalError]: encode(OCSPResponseStatus.internalError),
  [OCSPResponseStatus.tryLater]: encode(OCSPResponseStatus.tryLater),
  [OCSPResponseStatus.sigRequired]: encode(OCSPResponseStatus.sigRequired),
  [OCSPResponseStatus.unauthorized]: encode(OCSPResponseStatus.unauthorized),
};

/** A copy of the pre-encoded unsuccessful response for a status name, e.g. `unsuccessfulResponse("tryLater")`. */
export function unsuccessfulResponse(name: UnsuccessfulStatusName): Uint8Array {
  return UNSUCCESSFUL_RESPONSES[OCSPResponseStatus[name] as UnsuccessfulStatus].slice();
}
