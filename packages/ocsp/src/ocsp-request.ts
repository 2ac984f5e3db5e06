import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import { randomBytes } from "node:crypto";
import { OcspDecodeError } from "./errors.js";
import { defaultCrypto } from "./crypto.js";
import { createCertId, type CertIdFields } from "./cert-id.js";
import { OID, hashNameFromOid, type CertIdHash } from "./oids.js";
import { normalizeSerial } from "./serial.js";

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
  /**
   * The CertIDs' DER exactly as received, to copy into the response (RFC 6960 §4.2.1 asks for
   * the same CertID) and to key caches on (differently encoded serials never share an entry).
   */
  certIdDers: Uint8Array[];
  /** DER of the nonce Extension as received (echoed verbatim in the response), if any. */
  nonceExtension: Uint8Array | undefined;
  /** The nonce bytes (the OCTET STRING's content), if the extension decodes. */
  nonce: Uint8Array | undefined;
  /**
   * Where `nonce` starts in the request DER when it is the content of a primitive OCTET STRING
   * (RFC 8954's form): a request byte-identical but for those bytes decodes to the same fields
   * with its own nonce (what OcspRequestDecoder relies on).
   */
  nonceOffset: number | undefined;
  /** Whether the request carries optionalSignature (we never require one). */
  signed: boolean;
}

/**
 * Decode a DER OCSPRequest (RFC 6960 §4.1.1): asn1js decodes the bytes, then the tree is
 * checked against the RFC's structure element by element, as pkijs' schema would, and read
 * directly (pkijs' schema matching costs about ten times as much, @peculiar/asn1-schema's
 * about twice, and the latter accepts a context-tagged structure where a SEQUENCE belongs).
 * The CertIDs and the nonce extension are kept as the bytes received.
 *
 * ```asn1
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName OPTIONAL,
 *                            requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 * CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *                            issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
 * Extension   ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 * ```
 * @throws OcspDecodeError on bad DER, trailing bytes, a wrong structure, an empty requestList or
 * a CertID without a serial.
 */
export function parseOcspRequest(der: Uint8Array): ParsedOcspRequest {
  // Nothing inside an OCTET STRING needs decoding but the nonce, read below.
  const asn1 = asn1js.fromBER(der, { parseEmbedded: false });
  if (asn1.offset === -1 || asn1.result.error) throw new OcspDecodeError("OCSPRequest", asn1.result.error || "bad DER");
  if (asn1.offset !== der.byteLength) throw new OcspDecodeError("OCSPRequest", `${der.byteLength - asn1.offset} trailing bytes`);
  const top = sequence(asn1.result, "OCSPRequest");
  if (top.length < 1 || top.length > 2 || (top[1] && !isContext(top[1], 0)))
    throw new OcspDecodeError("OCSPRequest", "not tbsRequest [optionalSignature]");
  const tbs = sequence(top[0], "TBSRequest");
  let at = 0;
  if (tbs[at] && isContext(tbs[at]!, 0)) at++; // version (v1 is the only one)
  if (tbs[at] && isContext(tbs[at]!, 1)) at++; // requestorName
  const list = sequence(tbs[at++], "requestList");
  let extensionNodes: asn1js.AsnType[] = [];
  if (tbs[at] && isContext(tbs[at]!, 2)) {
    const wrapped = children(tbs[at++]!);
    if (wrapped.length !== 1) throw new OcspDecodeError("TBSRequest", "requestExtensions is not one SEQUENCE");
    extensionNodes = sequence(wrapped[0], "Extensions");
  }
  if (at !== tbs.length) throw new OcspDecodeError("TBSRequest", "unexpected element after requestList");
  if (list.length === 0) throw new OcspDecodeError("OCSPRequest", "empty requestList");
  const certIds: CertIdFields[] = [];
  const certIdDers: Uint8Array[] = [];
  for (const node of list) {
    const request = sequence(node, "Request");
    if (request.length < 1 || request.length > 2 || (request[1] && !isContext(request[1], 0)))
      throw new OcspDecodeError("Request", "not reqCert [singleRequestExtensions]");
    certIds.push(certIdFields(request[0]!));
    certIdDers.push((request[0] as asn1js.BaseBlock).valueBeforeDecodeView);
  }
  let nonceExtension: Uint8Array | undefined;
  let nonce: Uint8Array | undefined;
  let nonceOffset: number | undefined;
  for (const node of extensionNodes) {
    const [extnID, ...rest] = sequence(node, "Extension");
    if (!(extnID instanceof asn1js.ObjectIdentifier))
      throw new OcspDecodeError("Extension", "extnID is not an OBJECT IDENTIFIER");
    if (rest.length < 1 || rest.length > 2) throw new OcspDecodeError("Extension", "not extnID [critical] extnValue");
    if (rest.length === 2 && !(rest[0] instanceof asn1js.Boolean))
      throw new OcspDecodeError("Extension", "critical is not a BOOLEAN");
    const value = octets(rest[rest.length - 1], "extnValue");
    if (nonceExtension === undefined && extnID.valueBlock.toString() === OID.ocspNonce) {
      nonceExtension = (node as asn1js.BaseBlock).valueBeforeDecodeView;
      // RFC 8954: extnValue holds a DER OCTET STRING; older clients put the raw bytes there.
      const inner = asn1js.fromBER(value, { parseEmbedded: false, copyInput: false });
      if (
        inner.offset === value.byteLength &&
        inner.result instanceof asn1js.OctetString &&
        !inner.result.valueBlock.isConstructed
      ) {
        nonce = inner.result.valueBlock.valueHexView;
        // asn1js decoded a copy of `der` starting at offset 0: views' offsets are offsets in `der`.
        nonceOffset = nonce.byteOffset;
      } else nonce = value;
    }
  }
  return { certIds, certIdDers, nonceExtension, nonce, nonceOffset, signed: top.length === 2 };
}

/** The elements of a constructed asn1js block. */
function children(block: asn1js.AsnType): asn1js.AsnType[] {
  return block instanceof asn1js.Constructed ? block.valueBlock.value : [];
}

/** Whether `block` is a constructed context-specific [tagNumber] (an EXPLICIT tag). */
function isContext(block: asn1js.AsnType, tagNumber: number): boolean {
  return block.idBlock.tagClass === 3 && block.idBlock.tagNumber === tagNumber && block instanceof asn1js.Constructed;
}

/**
 * The elements of a universal SEQUENCE.
 * @throws OcspDecodeError when `block` is missing or anything else.
 */
function sequence(block: asn1js.AsnType | undefined, what: string): asn1js.AsnType[] {
  if (!(block instanceof asn1js.Sequence)) throw new OcspDecodeError(what, "not a SEQUENCE");
  return block.valueBlock.value;
}

/**
 * The content of a primitive OCTET STRING.
 * @throws OcspDecodeError when `block` is missing or anything else.
 */
function octets(block: asn1js.AsnType | undefined, what: string): Uint8Array {
  if (!(block instanceof asn1js.OctetString) || block.valueBlock.isConstructed)
    throw new OcspDecodeError(what, "not a primitive OCTET STRING");
  return block.valueBlock.valueHexView;
}

const hex = (v: Uint8Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");

/**
 * Plain fields of a CertID node (see readCertId for a pkijs CertID).
 * @throws OcspDecodeError when it is not a CertID, or its serial is empty.
 */
function certIdFields(node: asn1js.AsnType): CertIdFields {
  const fields = sequence(node, "CertID");
  if (fields.length !== 4) throw new OcspDecodeError("CertID", "not 4 elements");
  const algorithm = sequence(fields[0], "hashAlgorithm");
  if (!(algorithm[0] instanceof asn1js.ObjectIdentifier) || algorithm.length > 2)
    throw new OcspDecodeError("CertID", "hashAlgorithm is not an AlgorithmIdentifier");
  const serial = fields[3];
  if (!(serial instanceof asn1js.Integer)) throw new OcspDecodeError("CertID", "serialNumber is not an INTEGER");
  const serialHex = hex(serial.valueBlock.valueHexView);
  if (serialHex === "") throw new OcspDecodeError("CertID", "empty serialNumber");
  const hashOid = algorithm[0].valueBlock.toString();
  return {
    hashOid,
    hash: hashNameFromOid(hashOid),
    issuerNameHash: hex(octets(fields[1], "issuerNameHash")),
    issuerKeyHash: hex(octets(fields[2], "issuerKeyHash")),
    serial: normalizeSerial(serialHex),
  };
}
