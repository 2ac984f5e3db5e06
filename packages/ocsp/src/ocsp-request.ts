import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import { randomBytes } from "node:crypto";
import { OcspDecodeError } from "./errors.js";
import { defaultCrypto } from "./crypto.js";
import { createCertId, readCertId, type CertIdFields } from "./cert-id.js";
import { OID, type CertIdHash } from "./oids.js";
import { nonceBytes } from "./nonce.js";

/** Parameters of buildOcspRequest. */
export interface OcspRequestParams {
  /** The certificate whose status is asked (pkijs form). */
  certificate: pkijs.Certificate;
  /** Its issuer. */
  issuer: pkijs.Certificate;
  /** CertID hash; default SHA-1 (RFC 5019 §2.1.1). */
  hash?: CertIdHash;
  /**
   * Nonce (RFC 8954): `true` for 32 random bytes, bytes to send those, absent/false for none
   * (RFC 5019 clients send none, so responses can be pre-signed and cached).
   */
  nonce?: boolean | Uint8Array;
  crypto?: Crypto;
}

/** A DER-encoded OCSP request and the nonce it carries, if any. */
export interface BuiltOcspRequest {
  der: Uint8Array;
  nonce: Uint8Array | undefined;
}

/**
 * Build an unsigned RFC 6960 §4.1.1 OCSPRequest for one certificate.
 *
 * ```asn1
 * OCSPRequest ::= SEQUENCE {
 *     tbsRequest              TBSRequest,
 *     optionalSignature   [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE {
 *     version             [0] EXPLICIT Version DEFAULT v1,
 *     requestorName       [1] EXPLICIT GeneralName OPTIONAL,
 *     requestList             SEQUENCE OF Request,
 *     requestExtensions   [2] EXPLICIT Extensions OPTIONAL }
 * ```
 * The nonce extension's extnValue is the DER of `Nonce ::= OCTET STRING (SIZE(1..32))` (RFC 8954).
 */
export async function buildOcspRequest(params: OcspRequestParams): Promise<BuiltOcspRequest> {
  const crypto = params.crypto ?? defaultCrypto;
  const certId = await createCertId(params.certificate, params.issuer, params.hash ?? "SHA-1", crypto);
  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = [new pkijs.Request({ reqCert: certId })];
  let nonce: Uint8Array | undefined;
  if (params.nonce) {
    nonce = params.nonce === true ? Uint8Array.from(randomBytes(32)) : params.nonce;
    request.tbsRequest.requestExtensions = [
      new pkijs.Extension({
        extnID: OID.ocspNonce,
        critical: false,
        extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(false),
      }),
    ];
  }
  return { der: new Uint8Array(request.toSchema(true).toBER(false)), nonce };
}

/** What a responder needs from a request. */
export interface ParsedOcspRequest {
  /** One entry per Request in requestList, in order. */
  certIds: CertIdFields[];
  /** The CertIDs exactly as received, to copy into the response (RFC 6960 §4.2.1 asks for the same CertID). */
  rawCertIds: pkijs.CertID[];
  /** The nonce extension as received (echoed verbatim in the response), if any. */
  nonceExtension: pkijs.Extension | undefined;
  /** The nonce bytes (the OCTET STRING's content), if the extension decodes. */
  nonce: Uint8Array | undefined;
  /** Whether the request carries optionalSignature (we never require one). */
  signed: boolean;
}

/**
 * Decode a DER OCSPRequest (RFC 6960 §4.1.1).
 * @throws OcspDecodeError on bad DER, trailing bytes, a wrong structure or an empty requestList.
 */
export function parseOcspRequest(der: Uint8Array): ParsedOcspRequest {
  const asn1 = asn1js.fromBER(der);
  if (asn1.offset === -1) throw new OcspDecodeError("OCSPRequest", asn1.result.error || "bad DER");
  if (asn1.offset !== der.byteLength) throw new OcspDecodeError("OCSPRequest", `${der.byteLength - asn1.offset} trailing bytes`);
  let request: pkijs.OCSPRequest;
  try {
    request = new pkijs.OCSPRequest({ schema: asn1.result });
  } catch (cause) {
    throw new OcspDecodeError("OCSPRequest", cause instanceof Error ? cause.message : String(cause), { cause });
  }
  const list = request.tbsRequest.requestList;
  if (!list || list.length === 0) throw new OcspDecodeError("OCSPRequest", "empty requestList");
  const certIds = list.map((r) => readCertId(r.reqCert));
  const nonceExtension = request.tbsRequest.requestExtensions?.find((e) => e.extnID === OID.ocspNonce);
  const nonce = nonceExtension ? nonceBytes(nonceExtension) : undefined;
  return {
    certIds,
    rawCertIds: list.map((r) => r.reqCert),
    nonceExtension,
    nonce,
    signed: request.optionalSignature !== undefined,
  };
}
