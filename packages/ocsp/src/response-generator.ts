import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import type * as x509 from "@peculiar/x509";
import { OCSPResponseStatus, type CertStatus } from "./cert-status.js";
import { OID } from "./oids.js";
import { defaultCrypto } from "./crypto.js";
import { pkiEngine, toPkiCertificate } from "./engine.js";
import { UNSUCCESSFUL_RESPONSES } from "./unsuccessful-responses.js";

/**
 * Who signs OCSP responses: the issuer itself or a delegated OCSP signer (RFC 6960 §4.2.2.2),
 * its certificate and private key. The signature algorithm follows the key: ECDSA P-256 with
 * SHA-256, P-384 with SHA-384, RSA with SHA-256 (PKCS#1 v1.5, or PSS when asked).
 */
export interface OcspSigner {
  certificate: x509.X509Certificate;
  key: CryptoKey;
}

/** One SingleResponse to sign. */
export interface SingleResponseParams {
  /** The CertID exactly as requested. */
  certId: pkijs.CertID;
  status: CertStatus;
  thisUpdate: Date;
  /** Omit only to produce a deliberately incomplete response. */
  nextUpdate?: Date;
}

/** Parameters of OcspResponseGenerator.create. */
export interface BasicResponseParams {
  signer: OcspSigner;
  responses: SingleResponseParams[];
  producedAt: Date;
  /** The request's nonce extension, echoed verbatim (RFC 8954 §2.1). */
  nonceExtension?: pkijs.Extension;
  /** Include the signer certificate in `certs` (needed for a delegated signer). Default true. */
  includeSignerCertificate?: boolean;
  /** ResponderID choice (RFC 6960 §4.2.2.3): SHA-1 of the signer's key (default) or its subject name. */
  responderId?: "byKey" | "byName";
  /** For RSA signers: sign with RSASSA-PSS (SHA-256, salt 32) instead of PKCS#1 v1.5. */
  rsaPss?: boolean;
  /** Extra response extensions (e.g. an unknown critical one, for client tests). */
  extraExtensions?: pkijs.Extension[];
  /** Flip the signature bits after signing (a deliberately bad signature). */
  tamperSignature?: boolean;
  crypto?: Crypto;
}

/**
 * Encodes OCSP responses (RFC 6960 §4.2.1). A builder separate from the parsed view
 * (`OcspResponse`), as @peculiar/x509 keeps `X509CrlGenerator` apart from `X509Crl`.
 */
export class OcspResponseGenerator {
  /**
   * An unsigned error response: `OCSPResponse { responseStatus }` with no responseBytes, as
   * RFC 6960 §2.3 prescribes for malformedRequest, internalError, tryLater, sigRequired,
   * unauthorized.
   */
  static error(status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): Uint8Array {
    return UNSUCCESSFUL_RESPONSES[status].slice();
  }

  /**
   * A signed successful response carrying a BasicOCSPResponse, responderID byKey (SHA-1 of the
   * signer's public key, RFC 6960 §4.2.2.3) or byName, signed with the signer's key type
   * (ecdsa-with-SHA256/384, sha256WithRSAEncryption, or RSASSA-PSS when asked).
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
    const signerCert = toPkiCertificate(params.signer.certificate);
    const keyHash = await crypto.subtle.digest(
      "SHA-1",
      signerCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView as Uint8Array<ArrayBuffer>,
    );
    const basic = new pkijs.BasicOCSPResponse();
    basic.tbsResponseData.responderID =
      params.responderId === "byName" ? signerCert.subject : new asn1js.OctetString({ valueHex: keyHash });
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
    const extensions = [...(params.nonceExtension ? [params.nonceExtension] : []), ...(params.extraExtensions ?? [])];
    if (extensions.length > 0) basic.tbsResponseData.responseExtensions = extensions;
    if (params.includeSignerCertificate ?? true) basic.certs = [signerCert];
    await basic.sign(await signingKey(params, crypto), signingHashOf(params.signer.key), pkiEngine(crypto));
    if (params.tamperSignature) {
      const bits = basic.signature.valueBlock.valueHexView;
      bits[bits.length - 1]! ^= 0xff;
      bits[Math.floor(bits.length / 2)]! ^= 0xff;
    }
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

/** The key to sign with: the signer's, or for RSA-PSS the same key imported for RSA-PSS. */
async function signingKey(params: BasicResponseParams, crypto: Crypto): Promise<CryptoKey> {
  if (!params.rsaPss || !params.signer.key.algorithm.name.startsWith("RSA")) return params.signer.key;
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", params.signer.key);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"]);
}

/** The hash that goes with a signing key: SHA-384 for ECDSA P-384, SHA-256 otherwise. */
function signingHashOf(key: CryptoKey): "SHA-256" | "SHA-384" {
  return (key.algorithm as EcKeyAlgorithm).namedCurve === "P-384" ? "SHA-384" : "SHA-256";
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** CertStatus CHOICE with context tags [0] good, [1] revoked, [2] unknown (RFC 6960 §4.2.1), times in whole seconds (internal: also OcspResponseSigner's). */
export function certStatus(s: CertStatus): asn1js.BaseBlock {
  switch (s.status) {
    case "good":
      return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } });
    case "unknown":
      return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } });
    case "revoked": {
      const value: asn1js.BaseBlock[] = [new asn1js.GeneralizedTime({ valueDate: wholeSeconds(s.revocationTime) })];
      if (s.revocationReason !== undefined) {
        value.push(
          new asn1js.Constructed({
            idBlock: { tagClass: 3, tagNumber: 0 },
            value: [new asn1js.Enumerated({ value: s.revocationReason })],
          }),
        );
      }
      return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value });
    }
  }
}
