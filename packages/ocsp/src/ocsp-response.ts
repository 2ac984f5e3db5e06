import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import * as x509 from "@peculiar/x509";
import { OcspDecodeError } from "./errors.js";
import type { CRLReason } from "./crl-reason.js";
import { readCertId, type CertIdFields } from "./cert-id.js";
import { OID } from "./oids.js";
import { OCSPResponseStatus, certStatusName, type CertStatus } from "./cert-status.js";
import { plainBytes, toX509Certificate } from "./engine.js";
import { nonceBytes } from "./nonce.js";

/**
 * One SingleResponse (RFC 6960 §4.2.1) in plain form: its CertID, times, and its CertStatus
 * (`status`, and for revoked the RevokedInfo fields `revocationTime`, `revocationReason`).
 */
export type SingleResponseView = {
  certId: CertIdFields;
  thisUpdate: Date;
  nextUpdate?: Date;
} & CertStatus;

/** ResponderID (RFC 6960 §4.2.1): byName (DN text) or byKey (SHA-1 of the public key, hex). */
export type ResponderIdView = { byName: string } | { byKey: string };

const hex = (v: ArrayBuffer | Uint8Array): string => Buffer.from(v instanceof Uint8Array ? v : new Uint8Array(v)).toString("hex");

/**
 * A decoded, read-only view of a DER OCSPResponse (RFC 6960 §4.2.1). Decoding checks structure
 * only; `verifyOcspResponse` checks trust.
 *
 * ```asn1
 * OCSPResponse ::= SEQUENCE {
 *    responseStatus         OCSPResponseStatus,
 *    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
 * BasicOCSPResponse ::= SEQUENCE {
 *    tbsResponseData      ResponseData,
 *    signatureAlgorithm   AlgorithmIdentifier,
 *    signature            BIT STRING,
 *    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 * ```
 */
export class OcspResponse {
  /** The DER as received. */
  readonly der: Uint8Array;
  readonly responseStatus: OCSPResponseStatus;
  /** The BasicOCSPResponse, present when responseStatus is successful. */
  readonly basic: pkijs.BasicOCSPResponse | undefined;
  readonly producedAt: Date | undefined;
  readonly responderId: ResponderIdView | undefined;
  readonly responses: readonly SingleResponseView[];
  /** Certificates carried in `certs` (a delegated signer, usually). */
  readonly certificates: readonly x509.X509Certificate[];
  /** The response nonce bytes (RFC 8954), if any. */
  readonly nonce: Uint8Array | undefined;

  private constructor(der: Uint8Array, status: OCSPResponseStatus, basic?: pkijs.BasicOCSPResponse) {
    this.der = der;
    this.responseStatus = status;
    this.basic = basic;
    this.producedAt = basic?.tbsResponseData.producedAt;
    const rid = basic?.tbsResponseData.responderID;
    this.responderId =
      rid === undefined
        ? undefined
        : rid instanceof pkijs.RelativeDistinguishedNames
          ? { byName: new x509.Name(rid.toSchema().toBER(false)).toString() }
          : { byKey: hex((rid as asn1js.OctetString).valueBlock.valueHexView) };
    this.responses = (basic?.tbsResponseData.responses ?? []).map(readSingleResponse);
    this.certificates = (basic?.certs ?? []).map(toX509Certificate);
    const nonceExt = basic?.tbsResponseData.responseExtensions?.find((e) => e.extnID === OID.ocspNonce);
    if (nonceExt) this.nonce = nonceBytes(nonceExt);
  }

  /**
   * Decode a DER OCSPResponse.
   * @throws OcspDecodeError on bad DER, trailing bytes, an unknown responseType or a
   * BasicOCSPResponse that does not match its schema.
   */
  static fromDer(input: Uint8Array | ArrayBuffer): OcspResponse {
    const der = input instanceof Uint8Array ? input : new Uint8Array(input);
    const asn1 = asn1js.fromBER(der);
    if (asn1.offset === -1) throw new OcspDecodeError("OCSPResponse", asn1.result.error || "bad DER");
    if (asn1.offset !== der.byteLength)
      throw new OcspDecodeError("OCSPResponse", `${der.byteLength - asn1.offset} trailing bytes`);
    let outer: pkijs.OCSPResponse;
    try {
      outer = new pkijs.OCSPResponse({ schema: asn1.result });
    } catch (cause) {
      throw new OcspDecodeError("OCSPResponse", cause instanceof Error ? cause.message : String(cause), { cause });
    }
    const status = outer.responseStatus.valueBlock.valueDec as OCSPResponseStatus;
    if (status !== OCSPResponseStatus.successful) return new OcspResponse(der, status);
    if (!outer.responseBytes) throw new OcspDecodeError("OCSPResponse", "successful response without responseBytes");
    if (outer.responseBytes.responseType !== OID.ocspBasic) {
      throw new OcspDecodeError("OCSPResponse", `responseType ${outer.responseBytes.responseType} is not id-pkix-ocsp-basic`);
    }
    try {
      const basic = pkijs.BasicOCSPResponse.fromBER(plainBytes(outer.responseBytes.response.valueBlock.valueHexView));
      return new OcspResponse(der, status, basic);
    } catch (cause) {
      throw new OcspDecodeError("BasicOCSPResponse", cause instanceof Error ? cause.message : String(cause), { cause });
    }
  }
}

/**
 * A SingleResponse in plain form.
 * @throws OcspDecodeError for a revoked status whose RevokedInfo has no revocationTime.
 */
function readSingleResponse(single: pkijs.SingleResponse): SingleResponseView {
  const cs = single.certStatus as asn1js.BaseBlock;
  const common = {
    certId: readCertId(single.certID),
    thisUpdate: single.thisUpdate,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
  };
  const status = certStatusName(cs.idBlock.tagNumber);
  if (status !== "revoked") return { ...common, status };
  const [time, reason] = cs instanceof asn1js.Constructed ? cs.valueBlock.value : [];
  if (!(time instanceof asn1js.GeneralizedTime)) throw new OcspDecodeError("SingleResponse", "RevokedInfo has no revocationTime");
  const enumerated = reason instanceof asn1js.Constructed ? reason.valueBlock.value[0] : undefined;
  return {
    ...common,
    status,
    revocationTime: time.toDate(),
    ...(enumerated instanceof asn1js.Enumerated ? { revocationReason: enumerated.valueBlock.valueDec as CRLReason } : {}),
  };
}
