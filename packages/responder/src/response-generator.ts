import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import { CRLReason, OCSPResponseStatus, OID, defaultCrypto, pkiEngine, toPkiCertificate, type Signer } from "@ocsp-lab/ca";

/** The status to put in one SingleResponse (RFC 6960 §4.2.1 CertStatus). */
export type SingleStatus =
  | { status: "good" }
  | { status: "revoked"; revocationTime: Date; reason?: CRLReason }
  | { status: "unknown" };

/** One SingleResponse to sign. */
export interface SingleResponseParams {
  /** The CertID exactly as requested. */
  certId: pkijs.CertID;
  status: SingleStatus;
  thisUpdate: Date;
  /** Omit only to produce a deliberately incomplete response. */
  nextUpdate?: Date;
}

/** Parameters of OcspResponseGenerator.create. */
export interface BasicResponseParams {
  signer: Signer;
  responses: SingleResponseParams[];
  producedAt: Date;
  /** The request's nonce extension, echoed verbatim (RFC 8954 §2.1). */
  nonceExtension?: pkijs.Extension;
  /** Include the signer certificate in `certs` (needed for a delegated signer). Default true. */
  includeSignerCertificate?: boolean;
  crypto?: Crypto;
}

/**
 * Encodes OCSP responses (RFC 6960 §4.2.1). A builder separate from the parsed view
 * (`OcspResponse` in @ocsp-lab/ca), as @peculiar/x509 keeps `X509CrlGenerator` apart from `X509Crl`.
 */
export class OcspResponseGenerator {
  /**
   * An unsigned error response: `OCSPResponse { responseStatus }` with no responseBytes, as
   * RFC 6960 §2.3 prescribes for malformedRequest, internalError, tryLater, sigRequired,
   * unauthorized.
   */
  static error(status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): Uint8Array {
    const response = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: status }) });
    return new Uint8Array(response.toSchema().toBER(false));
  }

  /**
   * A signed successful response carrying a BasicOCSPResponse, responderID byKey (SHA-1 of the
   * signer's public key, RFC 6960 §4.2.2.3), signed with SHA-256 by the signer's key type
   * (ecdsa-with-SHA256 or sha256WithRSAEncryption).
   *
   * ```asn1
   * ResponseData ::= SEQUENCE {
   *    version              [0] EXPLICIT Version DEFAULT v1,
   *    responderID              ResponderID,
   *    producedAt               GeneralizedTime,
   *    responses                SEQUENCE OF SingleResponse,
   *    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
   * ResponderID ::= CHOICE {
   *    byName               [1] Name,
   *    byKey                [2] KeyHash }
   * SingleResponse ::= SEQUENCE {
   *    certID                       CertID,
   *    certStatus                   CertStatus,
   *    thisUpdate                   GeneralizedTime,
   *    nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
   *    singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
   * RevokedInfo ::= SEQUENCE {
   *    revocationTime              GeneralizedTime,
   *    revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
   * ```
   * Times are truncated to whole seconds: GeneralizedTime with fractions trips some clients.
   */
  static async create(params: BasicResponseParams): Promise<Uint8Array> {
    const crypto = params.crypto ?? defaultCrypto;
    const signerCert = toPkiCertificate(params.signer.certificate.rawData);
    const keyHash = await crypto.subtle.digest(
      "SHA-1",
      signerCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView as Uint8Array<ArrayBuffer>,
    );
    const basic = new pkijs.BasicOCSPResponse();
    basic.tbsResponseData.responderID = new asn1js.OctetString({ valueHex: keyHash });
    basic.tbsResponseData.producedAt = wholeSeconds(params.producedAt);
    basic.tbsResponseData.responses = params.responses.map((r) => {
      const single = new pkijs.SingleResponse({
        certID: r.certId,
        certStatus: certStatus(r.status),
        thisUpdate: wholeSeconds(r.thisUpdate),
      });
      if (r.nextUpdate) single.nextUpdate = wholeSeconds(r.nextUpdate);
      return single;
    });
    if (params.nonceExtension) basic.tbsResponseData.responseExtensions = [params.nonceExtension];
    if (params.includeSignerCertificate ?? true) basic.certs = [signerCert];
    await basic.sign(params.signer.key, "SHA-256", pkiEngine(crypto));
    const response = new pkijs.OCSPResponse({
      responseStatus: new asn1js.Enumerated({ value: OCSPResponseStatus.successful }),
      responseBytes: new pkijs.ResponseBytes({
        responseType: OID.ocspBasic,
        response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER(false) }),
      }),
    });
    return new Uint8Array(response.toSchema().toBER(false));
  }
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** CertStatus CHOICE with context tags [0] good, [1] revoked, [2] unknown (RFC 6960 §4.2.1). */
function certStatus(s: SingleStatus): asn1js.BaseBlock {
  switch (s.status) {
    case "good":
      return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } });
    case "unknown":
      return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } });
    case "revoked": {
      const value: asn1js.BaseBlock[] = [new asn1js.GeneralizedTime({ valueDate: wholeSeconds(s.revocationTime) })];
      if (s.reason !== undefined) {
        value.push(
          new asn1js.Constructed({
            idBlock: { tagClass: 3, tagNumber: 0 },
            value: [new asn1js.Enumerated({ value: s.reason })],
          }),
        );
      }
      return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value });
    }
  }
}
