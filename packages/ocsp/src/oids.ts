/** Object identifiers used by the OCSP code, with the RFC that assigns them. */
export const OID = {
  /** RFC 6960 §4.2.1 id-pkix-ocsp-basic: responseType of a BasicOCSPResponse. */
  ocspBasic: "1.3.6.1.5.5.7.48.1.1",
  /** RFC 8954 / RFC 6960 §4.4.1 id-pkix-ocsp-nonce. */
  ocspNonce: "1.3.6.1.5.5.7.48.1.2",
  /** RFC 6960 §4.2.2.2.1 id-pkix-ocsp-nocheck. */
  ocspNoCheck: "1.3.6.1.5.5.7.48.1.5",
  /** RFC 5280 §4.2.1.12 id-kp-OCSPSigning. */
  kpOcspSigning: "1.3.6.1.5.5.7.3.9",
  /** RFC 5280 §4.2.1.12 id-kp-serverAuth. */
  kpServerAuth: "1.3.6.1.5.5.7.3.1",
  /** RFC 5280 §4.2.1.12 id-kp-clientAuth. */
  kpClientAuth: "1.3.6.1.5.5.7.3.2",
  /** RFC 5280 §5.2.3 id-ce-cRLNumber. */
  ceCrlNumber: "2.5.29.20",
  /** RFC 5280 §5.2.4 id-ce-deltaCRLIndicator. */
  ceDeltaCrlIndicator: "2.5.29.27",
  /** RFC 5280 §4.2.2.1 id-ad-ocsp (AuthorityInfoAccess accessMethod). */
  adOcsp: "1.3.6.1.5.5.7.48.1",
  /** RFC 7633 id-pe-tlsfeature. */
  peTlsFeature: "1.3.6.1.5.5.7.1.24",
} as const;

/** CertID hash algorithms (RFC 6960 §4.1.1 hashAlgorithm) by WebCrypto name. */
export const HASH_OIDS = {
  "SHA-1": "1.3.14.3.2.26",
  "SHA-256": "2.16.840.1.101.3.4.2.1",
  "SHA-384": "2.16.840.1.101.3.4.2.2",
  "SHA-512": "2.16.840.1.101.3.4.2.3",
} as const;

/** A hash algorithm usable in a CertID. */
export type CertIdHash = keyof typeof HASH_OIDS;

/** The WebCrypto name of a CertID hash OID, or undefined when unsupported. */
export function hashNameFromOid(oid: string): CertIdHash | undefined {
  for (const [name, value] of Object.entries(HASH_OIDS)) if (value === oid) return name as CertIdHash;
  return undefined;
}
