import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { CRLReason, defaultCrypto, normalizeSerial, pkiEngine, toPkiCertificate } from "@ocsp-lab/ocsp";
import { InvalidArgumentError } from "../errors.js";
import { signingAlgorithm, type Signer } from "../keys.js";

/** Object identifiers of the CRL and CRL entry extensions written here (RFC 5280 §5.2, §5.3). */
const CRL_OID = {
  /** RFC 5280 §5.2.3 id-ce-cRLNumber ::= { id-ce 20 }. */
  crlNumber: "2.5.29.20",
  /** RFC 5280 §5.2.4 id-ce-deltaCRLIndicator ::= { id-ce 27 }. */
  deltaCrlIndicator: "2.5.29.27",
  /** RFC 5280 §5.3.1 id-ce-cRLReasons ::= { id-ce 21 }. */
  reasonCode: "2.5.29.21",
  /** RFC 5280 §5.3.2 id-ce-invalidityDate ::= { id-ce 24 }. */
  invalidityDate: "2.5.29.24",
} as const;

/** RFC 5280 §5.2.3: "CRL issuers MUST NOT use CRLNumber values longer than 20 octets". */
const MAX_CRL_NUMBER_OCTETS = 20;
/** Largest CRLNumber whose positive two's-complement INTEGER content fits in 20 octets: 2^159 - 1. */
const MAX_CRL_NUMBER = (1n << BigInt(MAX_CRL_NUMBER_OCTETS * 8 - 1)) - 1n;

/** One revoked certificate of a CRL (RFC 5280 §5.1.2.6 revokedCertificates). */
export interface CrlEntryParams {
  /** Certificate serial number, hex as stored (e.g. `3fa0...`); normalised with `normalizeSerial`. */
  serial: string;
  /** revocationDate; truncated to whole seconds. */
  revocationTime: Date;
  /**
   * reasonCode (RFC 5280 §5.3.1). Omitted or `unspecified` (0) writes no reasonCode extension:
   * the RFC says it SHOULD be absent rather than unspecified. `removeFromCRL` (8) is allowed in
   * delta CRLs only.
   */
  revocationReason?: CRLReason;
  /** invalidityDate (RFC 5280 §5.3.2): when the key is known or suspected to have been compromised. */
  invalidityDate?: Date;
}

/** Input of `CrlGenerator.create`. */
export interface CrlParams {
  /** The CA (or a dedicated CRL signer) that signs; its certificate's subject becomes the CRL issuer. */
  issuer: Signer;
  /** Revoked certificates, written in the given order. Empty: revokedCertificates is omitted. */
  entries: CrlEntryParams[];
  /** CRL Number (RFC 5280 §5.2.3), non-critical: 0 .. 2^159-1 (at most 20 octets). */
  crlNumber: bigint;
  /** thisUpdate; truncated to whole seconds. */
  thisUpdate: Date;
  /** nextUpdate; truncated to whole seconds; must be later than thisUpdate. */
  nextUpdate: Date;
  /**
   * When set, the CRL is a delta CRL carrying the critical Delta CRL Indicator (RFC 5280 §5.2.4)
   * with this BaseCRLNumber, which must be lower than `crlNumber`.
   */
  deltaBaseCrlNumber?: bigint;
  /** WebCrypto implementation; default `defaultCrypto`. */
  crypto?: Crypto;
}

/**
 * Builds and signs X.509 v2 CRLs (RFC 5280 §5): complete CRLs and delta CRLs with the
 * AuthorityKeyIdentifier, CRL Number and, for deltas, Delta CRL Indicator extensions, and entries
 * with reasonCode and invalidityDate.
 */
export class CrlGenerator {
  private constructor() {}

  /**
   * Build and sign a v2 CRL (RFC 5280 §5.1).
   *
   * ```asn1
   * CertificateList  ::=  SEQUENCE  {
   *      tbsCertList          TBSCertList,
   *      signatureAlgorithm   AlgorithmIdentifier,
   *      signatureValue       BIT STRING  }
   *
   * TBSCertList  ::=  SEQUENCE  {
   *      version                 Version OPTIONAL,
   *                                   -- if present, MUST be v2
   *      signature               AlgorithmIdentifier,
   *      issuer                  Name,
   *      thisUpdate              Time,
   *      nextUpdate              Time OPTIONAL,
   *      revokedCertificates     SEQUENCE OF SEQUENCE  {
   *           userCertificate         CertificateSerialNumber,
   *           revocationDate          Time,
   *           crlEntryExtensions      Extensions OPTIONAL
   *                                    -- if present, version MUST be v2
   *                                }  OPTIONAL,
   *      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL
   *                                    -- if present, version MUST be v2
   *                                }
   *
   * Time ::= CHOICE {
   *      utcTime        UTCTime,
   *      generalTime    GeneralizedTime }
   * ```
   *
   * - issuer: the DER subject Name of `params.issuer.certificate`, copied byte for byte (RFC 5280
   *   §5.1.2.3; OpenSSL matches it against the certificate's issuer).
   * - thisUpdate, nextUpdate, revocationDate: whole seconds, UTCTime through 2049 and
   *   GeneralizedTime from 2050 (RFC 5280 §5.1.2.4, §5.1.2.5, §5.1.2.6).
   * - signature: `signingAlgorithm(issuer.keyType)`: ecdsa-with-SHA256 (parameters absent,
   *   RFC 5758 §3.2) or sha256WithRSAEncryption (parameters NULL, RFC 4055 §5).
   * - crlExtensions: AuthorityKeyIdentifier (§5.2.1), CRL Number (§5.2.3), and for a delta CRL
   *   the critical Delta CRL Indicator (§5.2.4).
   *
   * Built with pkijs rather than @peculiar/x509's X509CrlGenerator: in @peculiar/x509 1.14.3 the
   * generator re-parses its own output under asn1js 3.1's default 10,000-node limit and throws
   * "Maximum ASN.1 node count exceeded" past ~3,300 bare entries (~800 with reasonCode and
   * invalidityDate). `new x509.X509Crl(der)` has the same limit; parse large CRLs with
   * `asn1js.fromBER(der, { maxNodes })` and pkijs instead.
   *
   * @returns the DER CertificateList.
   * @throws InvalidArgumentError for an invalid date, nextUpdate not after thisUpdate, a CRL
   *   number out of 0..2^159-1, a BaseCRLNumber not below the CRL number, an unknown reason,
   *   removeFromCRL in a complete CRL, a serial listed twice, an entry with a `reason` field
   *   (its name is `revocationReason`), or a key that does not match `issuer.keyType`.
   * @throws InvalidSerialError for a serial that is not hexadecimal.
   */
  static async create(params: CrlParams): Promise<Uint8Array> {
    const crypto = params.crypto ?? defaultCrypto;
    const { issuer } = params;
    const isDelta = params.deltaBaseCrlNumber !== undefined;

    const thisUpdate = wholeSeconds(params.thisUpdate, "thisUpdate");
    const nextUpdate = wholeSeconds(params.nextUpdate, "nextUpdate");
    if (nextUpdate.getTime() <= thisUpdate.getTime()) {
      throw new InvalidArgumentError(
        "nextUpdate",
        params.nextUpdate.toISOString(),
        `give a time later than thisUpdate ${thisUpdate.toISOString()} (RFC 5280 §5.1.2.5)`,
      );
    }
    checkCrlNumber("CRL number", params.crlNumber);
    if (isDelta) {
      checkCrlNumber("BaseCRLNumber", params.deltaBaseCrlNumber!);
      // Equal is allowed: a delta issued with its own base shares its number (RFC 5280 §5.2.3).
      if (params.deltaBaseCrlNumber! > params.crlNumber) {
        throw new InvalidArgumentError(
          "BaseCRLNumber",
          params.deltaBaseCrlNumber!.toString(),
          `give the number of a complete CRL not later than this delta's CRL number ${params.crlNumber} (RFC 5280 §5.2.4)`,
        );
      }
    }

    const algorithm = signingAlgorithm(issuer.keyType) as Algorithm & { hash?: string | Algorithm };
    if (issuer.key.algorithm.name !== algorithm.name) {
      throw new InvalidArgumentError(
        "issuer key",
        issuer.key.algorithm.name,
        `give a ${algorithm.name} key, as keyType ${issuer.keyType} says`,
      );
    }
    const hash = typeof algorithm.hash === "string" ? algorithm.hash : (algorithm.hash?.name ?? "SHA-256");

    const crlExtensions = [await authorityKeyIdentifier(issuer.certificate, crypto), crlNumberExtension(params.crlNumber)];
    if (isDelta) crlExtensions.push(deltaCrlIndicatorExtension(params.deltaBaseCrlNumber!));

    const seen = new Set<string>();
    const revoked = params.entries.map((entry) => {
      const serial = normalizeSerial(entry.serial);
      if (seen.has(serial)) throw new InvalidArgumentError("CRL entry serial", entry.serial, "list each certificate once");
      seen.add(serial);
      return revokedCertificate(serial, entry, isDelta);
    });

    const crl = new pkijs.CertificateRevocationList({
      version: 1, // v2
      issuer: toPkiCertificate(issuer.certificate).subject,
      thisUpdate: rfc5280Time(thisUpdate),
      nextUpdate: rfc5280Time(nextUpdate),
      crlExtensions: new pkijs.Extensions({ extensions: crlExtensions.map(toPkiExtension) }),
    });
    // RFC 5280 §5.1.2.6: "When there are no revoked certificates, the revoked certificates list MUST be absent."
    if (revoked.length > 0) crl.revokedCertificates = revoked;

    const engine = pkiEngine(crypto);
    const { signatureAlgorithm } = await engine.getSignatureParameters(issuer.key, hash);
    // pkijs leaves the parameters of sha256WithRSAEncryption absent; RFC 4055 §5 says they MUST be NULL.
    if (issuer.key.algorithm.name === "RSASSA-PKCS1-v1_5") signatureAlgorithm.algorithmParams = new asn1js.Null();
    crl.signature = signatureAlgorithm;
    crl.signatureAlgorithm = signatureAlgorithm;
    // toSchema(true) builds the TBS from the objects; toSchema(false) would re-parse tbsView,
    // which asn1js's default node limit refuses for a large CRL. The TBSCertList block is signed
    // and then placed, unchanged, in the CertificateList.
    const tbsBlock = crl.toSchema(true).valueBlock.value[0]!;
    const tbs = new Uint8Array(tbsBlock.toBER(false));
    crl.tbsView = tbs;
    const raw = await crypto.subtle.sign(algorithm, issuer.key, tbs);
    // WebCrypto's ECDSA signature is r||s; X.509 wants Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5758 §3.2).
    const signature = issuer.key.algorithm.name === "ECDSA" ? pkijs.createCMSECDSASignature(raw) : raw;
    crl.signatureValue = new asn1js.BitString({ valueHex: signature });
    const certificateList = new asn1js.Sequence({ value: [tbsBlock, signatureAlgorithm.toSchema(), crl.signatureValue] });
    return new Uint8Array(certificateList.toBER(false));
  }
}

/**
 * PEM text of a DER CRL: `-----BEGIN X509 CRL-----` ... `-----END X509 CRL-----` (RFC 7468 §6),
 * as `openssl crl` reads it. No trailing newline.
 */
export function crlToPem(der: Uint8Array): string {
  return x509.PemConverter.encode(plainCopy(der), "X509 CRL");
}

/**
 * One revokedCertificates element (RFC 5280 §5.1.2.6) with its entry extensions.
 *
 * ```asn1
 * SEQUENCE  {
 *      userCertificate         CertificateSerialNumber,
 *      revocationDate          Time,
 *      crlEntryExtensions      Extensions OPTIONAL }
 * CertificateSerialNumber  ::=  INTEGER
 * ```
 */
function revokedCertificate(serial: string, entry: CrlEntryParams, isDelta: boolean): pkijs.RevokedCertificate {
  const extensions: pkijs.Extension[] = [];
  // The field was once named `reason`: refuse it rather than silently write no reasonCode.
  if ("reason" in entry)
    throw new InvalidArgumentError("CRL entry field", "reason", "name it revocationReason (RFC 5280 CRLReason)");
  const reason = entry.revocationReason ?? CRLReason.unspecified;
  if (CRLReason[reason] === undefined) throw new InvalidArgumentError("CRLReason", reason, "use an RFC 5280 reason code");
  if (reason === CRLReason.removeFromCRL && !isDelta) {
    throw new InvalidArgumentError(
      "CRLReason",
      "removeFromCRL",
      "removeFromCRL may only appear in delta CRLs: set deltaBaseCrlNumber (RFC 5280 §5.3.1)",
    );
  }
  if (reason !== CRLReason.unspecified) extensions.push(reasonCodeExtension(reason));
  if (entry.invalidityDate !== undefined)
    extensions.push(invalidityDateExtension(wholeSeconds(entry.invalidityDate, "invalidityDate")));

  // DER INTEGERs are two's complement: a serial whose first byte has the high bit set needs a 00.
  const bytes = Buffer.from(serial, "hex");
  const content = bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  const revokedCert = new pkijs.RevokedCertificate({
    userCertificate: new asn1js.Integer({ valueHex: new Uint8Array(content) }),
    revocationDate: rfc5280Time(wholeSeconds(entry.revocationTime, "revocationTime")),
  });
  if (extensions.length > 0) revokedCert.crlEntryExtensions = new pkijs.Extensions({ extensions });
  return revokedCert;
}

/**
 * AuthorityKeyIdentifier (RFC 5280 §5.2.1, §4.2.1.1), non-critical, keyIdentifier only: the
 * issuer certificate's SubjectKeyIdentifier, or the SHA-1 of its public key when it has none.
 *
 * ```asn1
 * AuthorityKeyIdentifier ::= SEQUENCE {
 *     keyIdentifier             [0] KeyIdentifier           OPTIONAL,
 *     authorityCertIssuer       [1] GeneralNames            OPTIONAL,
 *     authorityCertSerialNumber [2] CertificateSerialNumber OPTIONAL  }
 * KeyIdentifier ::= OCTET STRING
 * ```
 */
async function authorityKeyIdentifier(certificate: x509.X509Certificate, crypto: Crypto): Promise<x509.Extension> {
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  return x509.AuthorityKeyIdentifierExtension.create(certificate, false, crypto);
}

/**
 * CRL Number (RFC 5280 §5.2.3), non-critical.
 *
 * ```asn1
 * id-ce-cRLNumber OBJECT IDENTIFIER ::= { id-ce 20 }
 * CRLNumber ::= INTEGER (0..MAX)
 * ```
 */
function crlNumberExtension(n: bigint): x509.Extension {
  return new x509.Extension(CRL_OID.crlNumber, false, asn1js.Integer.fromBigInt(n).toBER(false));
}

/**
 * Delta CRL Indicator (RFC 5280 §5.2.4), critical ("This extension MUST be critical").
 *
 * ```asn1
 * id-ce-deltaCRLIndicator OBJECT IDENTIFIER ::= { id-ce 27 }
 * BaseCRLNumber ::= CRLNumber
 * ```
 */
function deltaCrlIndicatorExtension(base: bigint): x509.Extension {
  return new x509.Extension(CRL_OID.deltaCrlIndicator, true, asn1js.Integer.fromBigInt(base).toBER(false));
}

/** DER ENUMERATED values of the reason codes, encoded once: a large CRL repeats a handful of them. */
const reasonValues = new Map<CRLReason, ArrayBuffer>();

/**
 * Reason Code CRL entry extension (RFC 5280 §5.3.1), non-critical. Entry extensions are built as
 * pkijs objects directly: an x509.Extension costs ~0.1 ms to construct, a second per 10,000
 * entries.
 *
 * ```asn1
 * id-ce-cRLReasons OBJECT IDENTIFIER ::= { id-ce 21 }
 * -- reasonCode ::= { CRLReason }
 * CRLReason ::= ENUMERATED { ... }
 * ```
 */
function reasonCodeExtension(reason: CRLReason): pkijs.Extension {
  let value = reasonValues.get(reason);
  if (!value) {
    value = new asn1js.Enumerated({ value: reason }).toBER(false);
    reasonValues.set(reason, value);
  }
  return new pkijs.Extension({ extnID: CRL_OID.reasonCode, critical: false, extnValue: value });
}

/**
 * Invalidity Date CRL entry extension (RFC 5280 §5.3.2), non-critical; always GeneralizedTime,
 * whole seconds, Zulu.
 *
 * ```asn1
 * id-ce-invalidityDate OBJECT IDENTIFIER ::= { id-ce 24 }
 * InvalidityDate ::=  GeneralizedTime
 * ```
 */
function invalidityDateExtension(date: Date): pkijs.Extension {
  return new pkijs.Extension({
    extnID: CRL_OID.invalidityDate,
    critical: false,
    extnValue: new asn1js.GeneralizedTime({ valueDate: date }).toBER(false),
  });
}

/** The same extension as a pkijs object (extnID, critical, extnValue). */
function toPkiExtension(ext: x509.Extension): pkijs.Extension {
  return new pkijs.Extension({ extnID: ext.type, critical: ext.critical, extnValue: ext.value });
}

/**
 * Time per RFC 5280 §5.1.2.4: UTCTime for 1950 through 2049, GeneralizedTime otherwise.
 */
function rfc5280Time(date: Date): pkijs.Time {
  const year = date.getUTCFullYear();
  const type = year >= 1950 && year <= 2049 ? pkijs.TimeType.UTCTime : pkijs.TimeType.GeneralizedTime;
  return new pkijs.Time({ type, value: date });
}

/**
 * A copy of `date` truncated to whole seconds (RFC 5280 §4.1.2.5.2: no fractional seconds).
 * @throws InvalidArgumentError when it is not a valid Date.
 */
function wholeSeconds(date: Date, what: string): Date {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new InvalidArgumentError(what, String(date), "give a valid Date");
  return new Date(ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * @throws InvalidArgumentError when `n` is not a CRLNumber (RFC 5280 §5.2.3: 0..MAX, at most 20 octets).
 */
function checkCrlNumber(what: string, n: bigint): void {
  if (typeof n !== "bigint" || n < 0n || n > MAX_CRL_NUMBER) {
    throw new InvalidArgumentError(
      what,
      String(n),
      `give a bigint from 0 to 2^159-1, at most ${MAX_CRL_NUMBER_OCTETS} octets (RFC 5280 §5.2.3)`,
    );
  }
}

/** The bytes in a fresh ArrayBuffer (what PemConverter's BufferSource type wants). */
function plainCopy(v: Uint8Array): ArrayBuffer {
  return v.slice().buffer;
}
