import * as pkijs from "pkijs";
import * as asn1js from "asn1js";
import { normalizeSerial } from "./serial.js";
import { HASH_OIDS, hashNameFromOid, type CertIdHash } from "./oids.js";
import { OcspDecodeError } from "./errors.js";
import { defaultCrypto } from "./crypto.js";
import { plainBytes } from "./engine.js";

/**
 * The fields of an RFC 6960 §4.1.1 CertID in plain form (hex strings), used as lookup keys.
 *
 * ```asn1
 * CertID ::= SEQUENCE {
 *     hashAlgorithm       AlgorithmIdentifier,
 *     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
 *     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
 *     serialNumber        CertificateSerialNumber }
 * ```
 */
export interface CertIdFields {
  /** Hash algorithm OID as found in the CertID. */
  hashOid: string;
  /** WebCrypto name of the hash, undefined when the OID is not one we support. */
  hash: CertIdHash | undefined;
  /** Lowercase hex. */
  issuerNameHash: string;
  /** Lowercase hex. */
  issuerKeyHash: string;
  /** Canonical serial (normalizeSerial). */
  serial: string;
}

const hex = (v: ArrayBuffer | Uint8Array): string => Buffer.from(v instanceof Uint8Array ? v : new Uint8Array(v)).toString("hex");

/**
 * Plain fields of a pkijs CertID.
 * @throws OcspDecodeError when the serial is not an INTEGER with content.
 */
export function readCertId(certId: pkijs.CertID): CertIdFields {
  const serialHex = hex(certId.serialNumber.valueBlock.valueHexView);
  if (serialHex === "") throw new OcspDecodeError("CertID", "empty serialNumber");
  return {
    hashOid: certId.hashAlgorithm.algorithmId,
    hash: hashNameFromOid(certId.hashAlgorithm.algorithmId),
    issuerNameHash: hex(certId.issuerNameHash.valueBlock.valueHexView),
    issuerKeyHash: hex(certId.issuerKeyHash.valueBlock.valueHexView),
    serial: normalizeSerial(serialHex),
  };
}

/**
 * Hashes identifying an issuer in CertIDs (RFC 6960 §4.1.1): hash of the DER subject name, and
 * hash of the subjectPublicKey BIT STRING value (without tag, length and unused-bits octet).
 * Returns lowercase hex.
 */
export async function issuerHashes(
  issuer: pkijs.Certificate,
  hash: CertIdHash,
  crypto: Crypto = defaultCrypto,
): Promise<{ issuerNameHash: string; issuerKeyHash: string }> {
  const name = issuer.subject.toSchema().toBER(false);
  const key = issuer.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView;
  const [n, k] = await Promise.all([crypto.subtle.digest(hash, name), crypto.subtle.digest(hash, plainBytes(key))]);
  return { issuerNameHash: hex(n), issuerKeyHash: hex(k) };
}

/**
 * Build the CertID of `certificate` under `issuer` with the given hash (SHA-1 is what RFC 5019
 * clients and nginx send; SHA-256 and up are accepted everywhere here).
 */
export async function createCertId(
  certificate: pkijs.Certificate,
  issuer: pkijs.Certificate,
  hash: CertIdHash = "SHA-1",
  crypto: Crypto = defaultCrypto,
): Promise<pkijs.CertID> {
  const { issuerNameHash, issuerKeyHash } = await issuerHashes(issuer, hash, crypto);
  return new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: HASH_OIDS[hash], algorithmParams: new asn1js.Null() }),
    issuerNameHash: new asn1js.OctetString({ valueHex: Buffer.from(issuerNameHash, "hex") }),
    issuerKeyHash: new asn1js.OctetString({ valueHex: Buffer.from(issuerKeyHash, "hex") }),
    serialNumber: new asn1js.Integer({ valueHex: certificate.serialNumber.valueBlock.valueHexView }),
  });
}

/** Whether two CertIDs name the same certificate (same hash algorithm, hashes and serial). */
export function sameCertId(a: CertIdFields, b: CertIdFields): boolean {
  return (
    a.hashOid === b.hashOid &&
    a.issuerNameHash === b.issuerNameHash &&
    a.issuerKeyHash === b.issuerKeyHash &&
    a.serial === b.serial
  );
}
