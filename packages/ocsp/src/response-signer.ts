import { KeyObject, constants, sign as nodeSign, type SignKeyObjectInput } from "node:crypto";
import * as asn1js from "asn1js";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import { Certificate, Extension } from "@peculiar/asn1-x509";
import { CertID, KeyHash, ResponderID } from "@peculiar/asn1-ocsp";
import { OCSPResponseStatus, type CertStatus } from "./cert-status.js";
import { defaultCrypto } from "./crypto.js";
import { pkiEngine } from "./engine.js";
import { OID } from "./oids.js";
import { encodedBlock } from "./pre-encoded.js";
import { certStatus, type OcspSigner } from "./response-generator.js";

/** One SingleResponse to sign, its CertID as DER (RFC 6960 §4.2.1 asks for the CertID as requested). */
export interface EncodedSingleResponseParams {
  /** DER of the CertID, exactly as received (ParsedOcspRequest.certIdDers). */
  certId: Uint8Array;
  status: CertStatus;
  thisUpdate: Date;
  /** Omit only to produce a deliberately incomplete response. */
  nextUpdate?: Date;
}

/** What changes from one response to the next (OcspResponseSigner.sign). */
export interface SignResponseParams {
  producedAt: Date;
  responses: EncodedSingleResponseParams[];
  /** DER of the request's nonce Extension, echoed verbatim (RFC 8954 §2.1; ParsedOcspRequest.nonceExtension). */
  nonceExtension?: Uint8Array;
  /** DER of further response Extensions (e.g. an unknown critical one, for client tests). */
  extraExtensions?: Uint8Array[];
  /** Include the signer certificate in `certs` (needed for a delegated signer). Default true. */
  includeSignerCertificate?: boolean;
  /** Flip signature bits after signing (a deliberately bad signature). */
  tamperSignature?: boolean;
}

/** How a prepared signer identifies itself and signs (fixed for its life). */
export interface ResponseSignerOptions {
  /** ResponderID choice (RFC 6960 §4.2.2.3): SHA-1 of the signer's key (default) or its subject name. */
  responderId?: "byKey" | "byName";
  /** For RSA signers: RSASSA-PSS (SHA-256, salt 32) instead of PKCS#1 v1.5. */
  rsaPss?: boolean;
  crypto?: Crypto;
}

/** Most SingleResponse encodings kept per signer (for the current second); past it they start over. */
const MAX_SINGLE_MEMO = 4096;
/** Most outer layers kept per signer (one per length of ResponseData and signature: a handful in practice). */
const MAX_OUTER_TEMPLATES = 64;

function view(v: Uint8Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Where `part` occurs in `whole`, when it occurs exactly once. */
function uniqueOffset(whole: Uint8Array, part: Uint8Array): number | undefined {
  const at = view(whole).indexOf(view(part));
  return at >= 0 && view(whole).indexOf(view(part), at + 1) === -1 ? at : undefined;
}

/** Signature of `data`, DER for ECDSA (RFC 5480 §2.2 ECDSA-Sig-Value), as an ArrayBuffer. */
type SignFn = (data: ArrayBuffer) => Promise<ArrayBuffer>;

const prepared = new WeakMap<OcspSigner, Map<string, Promise<OcspResponseSigner>>>();

const context = (tagNumber: number, value: asn1js.BaseBlock[]): asn1js.Constructed =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
/** `responseStatus successful` and `responseType id-pkix-ocsp-basic`, encoded once. */
const SUCCESSFUL = encodedBlock(new asn1js.Enumerated({ value: OCSPResponseStatus.successful }).toBER(false), true);
const BASIC_TYPE = encodedBlock(new asn1js.ObjectIdentifier({ value: OID.ocspBasic }).toBER(false), true);

/**
 * A responder identity prepared once for signing many BasicOCSPResponses fast (RFC 6960
 * §4.2.1). What does not change between answers is encoded once and reused as bytes: the
 * ResponderID (SHA-1 key hash or subject Name, with @peculiar/asn1-ocsp), the signature
 * AlgorithmIdentifier (pkijs', as OcspResponseGenerator signs), the `certs` field with the
 * signer certificate as issued. A SingleResponse is encoded once per distinct content while
 * answers are produced in the same second, GeneralizedTimes once per value. What changes per
 * answer, the nonce and the signature, is assembled with asn1js (ResponseData, the
 * BasicOCSPResponse and the OCSPResponse around them: a few SEQUENCE and context headers;
 * @peculiar/asn1-schema's reflection costs about three times as much per answer, pkijs' about
 * ten), and each assembly is kept: the next ResponseData of the same second whose
 * SingleResponses and nonce have the same lengths (whatever certificates they are about), and
 * the next outer layers around a ResponseData and a signature of the same lengths, are the kept
 * encoding with their own parts put in place. Only whole parts encoded elsewhere are put in
 * place (each SingleResponse as this signer encoded it, the nonce extension as the request
 * carried it, the signature), at the offset asn1js wrote them at; no tag or length is written
 * here. Signing runs
 * in libuv's thread pool (node:crypto's asynchronous `sign`, or WebCrypto through pkijs when
 * another Crypto is injected), so concurrent answers use every core and the event loop only
 * encodes. Bounds per prepared signer: 4,096 SingleResponses and as many ResponseData
 * encodings, for the current second only; 64 outer layers.
 *
 * The output equals OcspResponseGenerator.create's for the same input (byte for byte with a
 * deterministic signature: RSA PKCS#1 v1.5), which stays the reference encoder.
 */
export class OcspResponseSigner {
  private readonly responderId: asn1js.BaseBlock;
  private readonly signatureAlgorithm: asn1js.BaseBlock;
  private readonly certs: asn1js.BaseBlock;
  /**
   * DER of the `certs` field (`[0] EXPLICIT SEQUENCE OF Certificate`, the signer's certificate
   * as issued): the last bytes of every OCSPResponse this signer makes with
   * `includeSignerCertificate`, the same for all of them (a cache may keep them once).
   */
  readonly certsDer: Uint8Array;
  private readonly signFn: SignFn;
  private readonly singles = new Map<string, { block: asn1js.BaseBlock; der: Uint8Array }>();
  private readonly times = new Map<number, asn1js.BaseBlock>();
  private readonly tbsTemplates = new Map<string, { der: Uint8Array; singlesAt: number[]; nonceAt: number | undefined }>();
  private readonly outerTemplates = new Map<string, { der: Uint8Array; tbsAt: number; signatureAt: number }>();
  private memoSecond = -1;

  private constructor(
    responderId: asn1js.BaseBlock,
    signatureAlgorithm: asn1js.BaseBlock,
    certs: asn1js.BaseBlock,
    signFn: SignFn,
  ) {
    this.responderId = responderId;
    this.signatureAlgorithm = signatureAlgorithm;
    this.certs = certs;
    this.certsDer = new Uint8Array(certs.toBER(false));
    this.signFn = signFn;
  }

  /**
   * The prepared signer for `signer` with `options`, made on first use and kept as long as the
   * signer object lives (a WeakMap: a signer dropped by its CA takes its preparation with it).
   * @throws Error (rejects) when the key cannot sign (Ed25519, or RSA-PSS asked of a
   * non-extractable RSA key), or the certificate does not decode.
   */
  static for(signer: OcspSigner, options: ResponseSignerOptions = {}): Promise<OcspResponseSigner> {
    let bySigner = prepared.get(signer);
    if (!bySigner) {
      bySigner = new Map();
      prepared.set(signer, bySigner);
    }
    const crypto = options.crypto ?? defaultCrypto;
    // One Crypto per process in practice; another one gets its own preparation.
    const key = `${options.responderId ?? "byKey"}:${options.rsaPss === true}:${crypto === defaultCrypto ? "default" : "injected"}`;
    let made = bySigner.get(key);
    if (!made) {
      made = OcspResponseSigner.prepare(signer, options, crypto);
      made.catch(() => bySigner.delete(key));
      bySigner.set(key, made);
    }
    return made;
  }

  private static async prepare(signer: OcspSigner, options: ResponseSignerOptions, crypto: Crypto): Promise<OcspResponseSigner> {
    const der = new Uint8Array(signer.certificate.rawData);
    const tbs = AsnConvert.parse(der, Certificate).tbsCertificate;
    let responderId: ResponderID;
    if (options.responderId === "byName") {
      responderId = new ResponderID({ byName: tbs.subject });
    } else {
      // KeyHash: SHA-1 of the subjectPublicKey BIT STRING's value (RFC 6960 §4.2.2.3).
      const keyHash = await crypto.subtle.digest("SHA-1", tbs.subjectPublicKeyInfo.subjectPublicKey);
      responderId = new ResponderID({ byKey: new KeyHash(keyHash) });
    }

    // The signature algorithm exactly as pkijs names it (what OcspResponseGenerator signs with).
    const hash = (signer.key.algorithm as EcKeyAlgorithm).namedCurve === "P-384" ? "SHA-384" : "SHA-256";
    const rsa = signer.key.algorithm.name.startsWith("RSA");
    const pss = options.rsaPss === true && rsa;
    const key = pss ? await pssKey(signer.key, crypto) : signer.key;
    const engine = pkiEngine(crypto);
    const params = await engine.getSignatureParameters(key, hash);

    let signFn: SignFn;
    const keyObject = crypto === defaultCrypto ? nodeKeyObject(signer.key) : undefined;
    if (keyObject) {
      const input: SignKeyObjectInput = rsa
        ? pss
          ? {
              key: keyObject,
              padding: constants.RSA_PKCS1_PSS_PADDING,
              saltLength: (params.parameters.algorithm as RsaPssParams).saltLength,
            }
          : { key: keyObject, padding: constants.RSA_PKCS1_PADDING }
        : { key: keyObject, dsaEncoding: "der" };
      const digest = hash === "SHA-384" ? "sha384" : "sha256";
      signFn = (data) =>
        new Promise((resolve, reject) =>
          nodeSign(digest, new Uint8Array(data), input, (err, signature) => {
            if (err) reject(err);
            else
              resolve(signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength) as ArrayBuffer);
          }),
        );
    } else {
      signFn = (data) => engine.signWithPrivateKey(data, key, params.parameters as never);
    }
    return new OcspResponseSigner(
      encodedBlock(AsnConvert.serialize(responderId), true),
      encodedBlock(params.signatureAlgorithm.toSchema().toBER(false), true),
      // certs [0] EXPLICIT SEQUENCE OF Certificate: the signer's, as issued.
      encodedBlock(context(0, [new asn1js.Sequence({ value: [encodedBlock(der)] })]).toBER(false), true),
      signFn,
    );
  }

  /**
   * A signed successful OCSPResponse (RFC 6960 §4.2.1) carrying a BasicOCSPResponse with
   * `params.responses` in order, the nonce and extra extensions in that order, and the signer
   * certificate unless told not to. Times are truncated to whole seconds (GeneralizedTime with
   * fractions trips some clients). Resolves with the DER.
   *
   * ```asn1
   * BasicOCSPResponse ::= SEQUENCE {
   *    tbsResponseData      ResponseData,
   *    signatureAlgorithm   AlgorithmIdentifier,
   *    signature            BIT STRING,
   *    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
   * ```
   * @throws Error (rejects) when signing fails.
   */
  async sign(params: SignResponseParams): Promise<Uint8Array> {
    const second = Math.floor(params.producedAt.getTime() / 1000);
    if (second !== this.memoSecond || this.singles.size >= MAX_SINGLE_MEMO || this.tbsTemplates.size >= MAX_SINGLE_MEMO) {
      this.singles.clear();
      this.times.clear();
      this.tbsTemplates.clear();
      this.memoSecond = second;
    }
    const tbs = this.responseData(params, second);
    const signature = new Uint8Array(await this.signFn(tbs.buffer as ArrayBuffer));
    if (params.tamperSignature) {
      signature[signature.length - 1]! ^= 0xff;
      signature[Math.floor(signature.length / 2)]! ^= 0xff;
    }
    const includeCerts = params.includeSignerCertificate ?? true;
    const key = `${tbs.byteLength}:${signature.byteLength}:${includeCerts}`;
    const template = this.outerTemplates.get(key);
    if (template) {
      // The same layers around a ResponseData and a signature of these lengths: only their bytes differ.
      const der = template.der.slice();
      der.set(tbs, template.tbsAt);
      der.set(signature, template.signatureAt);
      return der;
    }
    const basic = new asn1js.Sequence({
      value: [
        encodedBlock(tbs, true),
        this.signatureAlgorithm,
        new asn1js.BitString({ valueHex: signature }),
        ...(includeCerts ? [this.certs] : []),
      ],
    }).toBER(false);
    const response = new asn1js.Sequence({
      value: [
        SUCCESSFUL,
        context(0, [new asn1js.Sequence({ value: [BASIC_TYPE, new asn1js.OctetString({ valueHex: basic })] })]),
      ],
    });
    const der = new Uint8Array(response.toBER(false));
    const tbsAt = uniqueOffset(der, tbs);
    const signatureAt = uniqueOffset(der, signature);
    if (tbsAt !== undefined && signatureAt !== undefined && this.outerTemplates.size < MAX_OUTER_TEMPLATES)
      this.outerTemplates.set(key, { der: der.slice(), tbsAt, signatureAt });
    return der;
  }

  /**
   * The DER of ResponseData. Answers in the same second whose SingleResponses and nonce
   * extension have the same lengths (and the same further extensions) have the same layout: the
   * first is encoded with asn1js and kept with the place of each SingleResponse and of the
   * nonce extension, the next ones are that encoding with their own SingleResponses (each the
   * DER this signer encoded, see `single`) and nonce extension (as the request carried it) put
   * in those places. Every tag and length comes from asn1js's encoding of an answer of the same
   * shape; a layout whose parts cannot be found exactly once in it is not kept.
   *
   * ```asn1
   * ResponseData ::= SEQUENCE {
   *    version              [0] EXPLICIT Version DEFAULT v1,
   *    responderID              ResponderID,
   *    producedAt               GeneralizedTime,
   *    responses                SEQUENCE OF SingleResponse,
   *    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
   * ```
   */
  private responseData(params: SignResponseParams, second: number): Uint8Array {
    const singles = params.responses.map((r) => this.single(r));
    const nonce = params.nonceExtension;
    const extra = params.extraExtensions ?? [];
    const key = `${second}|${singles.map((x) => x.der.byteLength).join(",")}|${nonce?.byteLength ?? -1}|${extra.map((e) => view(e).toString("latin1")).join("|")}`;
    const template = this.tbsTemplates.get(key);
    if (template) {
      const der = template.der.slice();
      for (let i = 0; i < singles.length; i++) der.set(singles[i]!.der, template.singlesAt[i]!);
      if (nonce && template.nonceAt !== undefined) der.set(nonce, template.nonceAt);
      return der;
    }
    const extensions = [...(nonce ? [nonce] : []), ...extra].map((e) => encodedBlock(e));
    const der = new Uint8Array(
      new asn1js.Sequence({
        value: [
          this.responderId,
          this.time(params.producedAt),
          new asn1js.Sequence({ value: singles.map((x) => x.block) }),
          ...(extensions.length > 0 ? [context(1, [new asn1js.Sequence({ value: extensions })])] : []),
        ],
      }).toBER(false),
    );
    const singlesAt = singles.map((x) => uniqueOffset(der, x.der));
    const nonceAt = nonce ? uniqueOffset(der, nonce) : undefined;
    if (singlesAt.every((at) => at !== undefined) && (!nonce || nonceAt !== undefined))
      this.tbsTemplates.set(key, { der: der.slice(), singlesAt: singlesAt as number[], nonceAt });
    return der;
  }

  /** GeneralizedTime of `date` in whole seconds, encoded once per value while the second lasts. */
  private time(date: Date): asn1js.BaseBlock {
    const ms = Math.floor(date.getTime() / 1000) * 1000;
    let block = this.times.get(ms);
    if (!block) {
      block = encodedBlock(new asn1js.GeneralizedTime({ valueDate: new Date(ms) }).toBER(false), true);
      this.times.set(ms, block);
    }
    return block;
  }

  /** The SingleResponse of `r` and its memo key, encoded once per distinct content while answers are produced in the same second. */
  private single(r: EncodedSingleResponseParams): { block: asn1js.BaseBlock; der: Uint8Array } {
    const s = r.status;
    const sec = (d: Date) => Math.floor(d.getTime() / 1000);
    const key = `${view(r.certId).toString("latin1")}:${s.status}:${
      s.status === "revoked" ? `${sec(s.revocationTime)}:${s.revocationReason ?? ""}` : ""
    }:${sec(r.thisUpdate)}:${r.nextUpdate ? sec(r.nextUpdate) : ""}`;
    let single = this.singles.get(key);
    if (!single) {
      // SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT OPTIONAL }
      const value = new asn1js.Sequence({
        value: [
          encodedBlock(r.certId),
          certStatus(s),
          this.time(r.thisUpdate),
          ...(r.nextUpdate ? [context(0, [this.time(r.nextUpdate)])] : []),
        ],
      });
      const der = new Uint8Array(value.toBER(false));
      single = { block: encodedBlock(der), der };
      this.singles.set(key, single);
    }
    return single;
  }
}

interface RsaPssParams {
  saltLength: number;
}

/** The node KeyObject behind a node WebCrypto CryptoKey, or undefined for another implementation's key. */
function nodeKeyObject(key: CryptoKey): KeyObject | undefined {
  try {
    return KeyObject.from(key as unknown as Parameters<typeof KeyObject.from>[0]);
  } catch {
    return undefined;
  }
}

/** The RSA key imported again for RSA-PSS (WebCrypto binds a key to one algorithm). */
async function pssKey(key: CryptoKey, crypto: Crypto): Promise<CryptoKey> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", key);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"]);
}

/** DER of an Extension (RFC 5280 §4.1), encoded with @peculiar/asn1-x509: `extnValue` is the DER of the value. */
export function encodeExtension(extnID: string, critical: boolean, extnValue: Uint8Array): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new Extension({ extnID, critical, extnValue: new OctetString(extnValue) })));
}

/** DER of a nonce Extension (RFC 8954 §2.1: extnValue is the DER of `Nonce ::= OCTET STRING`). */
export function encodeNonceExtension(nonce: Uint8Array): Uint8Array {
  return encodeExtension(OID.ocspNonce, false, new Uint8Array(AsnConvert.serialize(new OctetString(nonce))));
}

/**
 * The same CertID (DER) with the last octet of its serial changed: a response about another
 * certificate, for flawed answers.
 * @throws Error when `certId` is not a CertID.
 */
export function otherSerialCertId(certId: Uint8Array): Uint8Array {
  const parsed = AsnConvert.parse(certId, CertID);
  const bytes = new Uint8Array(parsed.serialNumber.slice(0));
  bytes[bytes.length - 1] = (bytes[bytes.length - 1]! + 1) & 0xff;
  parsed.serialNumber = bytes.buffer;
  return new Uint8Array(AsnConvert.serialize(parsed));
}
