import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { isIP } from "node:net";
import { InvalidArgumentError } from "./errors.js";
import { isRsa, type KeyType } from "./keys.js";
import { OID } from "@ocsp-lab/ocsp";

/**
 * What a certificate is for. Each profile is a fixed set of extensions (RFC 5280 §4.2):
 * - `server`: serverAuth, SANs DNS/IP;
 * - `client`: clientAuth, SANs DNS/IP/email/URI;
 * - `ocsp-signer`: id-kp-OCSPSigning and id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2);
 * - `intermediate`: CA:TRUE with a path length, keyCertSign + cRLSign.
 */
export type Profile = "server" | "client" | "ocsp-signer" | "intermediate";

/** Every profile, for validation and usage messages. */
export const PROFILES: readonly Profile[] = ["server", "client", "ocsp-signer", "intermediate"];

/**
 * A deliberate defect in an OCSP signer certificate, so responder and client tests can check
 * that such a signer is refused (RFC 6960 §4.2.2.2):
 * - `no-eku`: no ExtendedKeyUsage at all;
 * - `wrong-eku`: ExtendedKeyUsage serverAuth instead of OCSPSigning;
 * - `expired`: validity ended yesterday;
 * - `other-ca`: issued by a throw-away CA that is not the issuer of the certificates it answers for.
 */
export type SignerFlaw = "no-eku" | "wrong-eku" | "expired" | "other-ca";

/** Every signer flaw. */
export const SIGNER_FLAWS: readonly SignerFlaw[] = ["no-eku", "wrong-eku", "expired", "other-ca"];

/** Subject alternative names (RFC 5280 §4.2.1.6). */
export interface AltNames {
  dnsNames?: string[];
  ipAddresses?: string[];
  emails?: string[];
  uris?: string[];
}

/** Where relying parties find status and issuer information. */
export interface Locations {
  /** AuthorityInfoAccess id-ad-ocsp (RFC 5280 §4.2.2.1). */
  ocspUrl?: string;
  /** AuthorityInfoAccess id-ad-caIssuers. */
  caIssuersUrl?: string;
  /** CRLDistributionPoints (RFC 5280 §4.2.1.13). */
  crlUrl?: string;
}

/** Everything profileExtensions needs. */
export interface ProfileParams extends AltNames, Locations {
  profile: Profile;
  keyType: KeyType;
  subjectPublicKey: CryptoKey | x509.PublicKey;
  issuerCertificate: x509.X509Certificate;
  /** For `intermediate`: basicConstraints pathLenConstraint. */
  pathLength?: number;
  /** RFC 7633 TLS Feature status_request. */
  mustStaple?: boolean;
  flaw?: SignerFlaw;
  crypto: Crypto;
}

/**
 * Validate SANs and URLs for a profile.
 * @throws InvalidArgumentError for a bad DNS name, a non-literal IP, an email without `@`, a URI
 * that does not parse, a non-HTTP OCSP/caIssuers/CRL URL, or email/URI SANs on a server certificate.
 */
export function checkAltNames(profile: Profile, names: AltNames & Locations): void {
  // RFC 1035 labels, a leading "*." wildcard allowed (RFC 6125).
  const dns = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
  for (const name of names.dnsNames ?? [])
    if (!dns.test(name) || name.length > 253)
      throw new InvalidArgumentError("DNS name", name, "give a host name like app.lab.test or *.lab.test");
  for (const [what, url] of [
    ["OCSP URL", names.ocspUrl],
    ["caIssuers URL", names.caIssuersUrl],
    ["CRL URL", names.crlUrl],
  ] as const) {
    if (url !== undefined && !/^https?:\/\/[^\s/]+/.test(url))
      throw new InvalidArgumentError(what, url, "give an http:// URL like http://127.0.0.1:8080");
  }
  for (const ip of names.ipAddresses ?? [])
    if (isIP(ip) === 0) throw new InvalidArgumentError("IP address", ip, "give a literal IPv4 or IPv6 address");
  for (const email of names.emails ?? [])
    if (!/^[^@\s]+@[^@\s]+$/.test(email))
      throw new InvalidArgumentError("email", email, "give an address like user@example.test");
  for (const uri of names.uris ?? []) {
    try {
      new URL(uri);
    } catch {
      throw new InvalidArgumentError("URI", uri, "give an absolute URI like spiffe://lab/service");
    }
  }
  if (profile === "server" && ((names.emails?.length ?? 0) > 0 || (names.uris?.length ?? 0) > 0)) {
    throw new InvalidArgumentError(
      "SAN for a server certificate",
      [...(names.emails ?? []), ...(names.uris ?? [])],
      "email and URI SANs go on client certificates",
    );
  }
}

/**
 * The extensions of a certificate of `profile` (RFC 5280 §4.2). Subject and authority key
 * identifiers are always present; SAN, AIA, CRL DP and TLS Feature when asked for.
 *
 * ```asn1
 * BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
 * Features ::= SEQUENCE OF INTEGER   -- RFC 7633; status_request = 5
 * ```
 */
export async function profileExtensions(p: ProfileParams): Promise<x509.Extension[]> {
  const ext: x509.Extension[] = [];
  const flags = x509.KeyUsageFlags;
  switch (p.profile) {
    case "intermediate":
      ext.push(new x509.BasicConstraintsExtension(true, p.pathLength, true));
      ext.push(new x509.KeyUsagesExtension(flags.keyCertSign | flags.cRLSign | flags.digitalSignature, true));
      break;
    case "ocsp-signer":
      ext.push(new x509.BasicConstraintsExtension(false, undefined, true));
      ext.push(new x509.KeyUsagesExtension(flags.digitalSignature, true));
      if (p.flaw === "wrong-eku") ext.push(new x509.ExtendedKeyUsageExtension([OID.kpServerAuth], false));
      else if (p.flaw !== "no-eku") ext.push(new x509.ExtendedKeyUsageExtension([OID.kpOcspSigning], false));
      // id-pkix-ocsp-nocheck: extnValue is the DER of NULL (RFC 6960 §4.2.2.2.1).
      ext.push(new x509.Extension(OID.ocspNoCheck, false, new asn1js.Null().toBER(false)));
      break;
    case "server":
    case "client":
      ext.push(new x509.BasicConstraintsExtension(false, undefined, true));
      ext.push(
        new x509.KeyUsagesExtension(
          isRsa(p.keyType) ? flags.digitalSignature | flags.keyEncipherment : flags.digitalSignature,
          true,
        ),
      );
      ext.push(new x509.ExtendedKeyUsageExtension([p.profile === "server" ? OID.kpServerAuth : OID.kpClientAuth], false));
      break;
  }
  const sans = [
    ...(p.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(p.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(p.emails ?? []).map((value) => ({ type: "email" as const, value })),
    ...(p.uris ?? []).map((value) => ({ type: "url" as const, value })),
  ];
  if (sans.length > 0) ext.push(new x509.SubjectAlternativeNameExtension(sans));
  ext.push(await x509.SubjectKeyIdentifierExtension.create(p.subjectPublicKey, false, p.crypto));
  ext.push(await x509.AuthorityKeyIdentifierExtension.create(p.issuerCertificate, false, p.crypto));
  if (p.ocspUrl || p.caIssuersUrl) {
    ext.push(
      new x509.AuthorityInfoAccessExtension({
        ...(p.ocspUrl ? { ocsp: [p.ocspUrl] } : {}),
        ...(p.caIssuersUrl ? { caIssuers: [p.caIssuersUrl] } : {}),
      }),
    );
  }
  if (p.crlUrl) ext.push(new x509.CRLDistributionPointsExtension([p.crlUrl]));
  if (p.mustStaple) {
    const features = new asn1js.Sequence({ value: [new asn1js.Integer({ value: 5 })] });
    ext.push(new x509.Extension(OID.peTlsFeature, false, features.toBER(false)));
  }
  return ext;
}
