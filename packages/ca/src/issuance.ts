/**
 * Issuance: the checks a request to issue must pass (profile, issuer, flaw, path length,
 * validity, serial, CSR) and the building of certificates (the self-signed root, certificates
 * signed by a CA of the store, the throw-away CA of the `other-ca` flaw). Nothing here touches
 * the store: the CertificateAuthority writes what is built.
 */
import * as x509 from "@peculiar/x509";
import { normalizeSerial, type Clock } from "@ocsp-lab/ocsp";
import { InvalidArgumentError, InvalidCsrError, UnknownSerialError } from "./errors.js";
import { generateKeyPair, keyTypeOf, signingAlgorithm, type KeyType, type Signer } from "./keys.js";
import {
  PROFILES,
  SIGNER_FLAWS,
  checkAltNames,
  profileExtensions,
  type AltNames,
  type Locations,
  type Profile,
  type SignerFlaw,
} from "./profiles.js";
import { checkedSerial, newSerial } from "./serial.js";
import type { CaDatabase, CertificateRecord } from "./store.js";
import type { SubjectFields } from "./subject.js";

/** One day in milliseconds. */
export const DAY_MS = 86_400_000;
/**
 * Certificates start one hour in the past so a client whose clock is a little behind does not
 * reject a certificate issued a moment ago.
 */
export const DEFAULT_BACKDATE_SECONDS = 3600;
/** Root validity: 10 years, long enough that a lab never has to rotate it. */
export const ROOT_VALIDITY_DAYS = 3650;
/** Intermediate validity: 5 years. */
export const INTERMEDIATE_VALIDITY_DAYS = 1825;
/** Delegated OCSP signer validity: 2 years. */
export const SIGNER_VALIDITY_DAYS = 730;
/** Server and client certificate validity: 397 days, the longest public CAs may issue. */
export const LEAF_VALIDITY_DAYS = 397;

/** Options of `issue` (and its shortcuts). Times are Dates; durations say their unit. */
export interface IssueOptions extends AltNames, Locations {
  /** Serial of the issuing CA (root or intermediate). Default the root. */
  issuer?: string;
  /** Subject fields; the common name defaults to the first DNS name, IP, email or URI. */
  subject?: SubjectFields;
  /** Shortcut for subject.commonName. */
  commonName?: string;
  /** Key type of the new key. Default the issuer's. */
  keyType?: KeyType;
  /** Explicit validity start; default now − backdateSeconds. */
  notBefore?: Date;
  /** Explicit validity end; default notBefore + validityDays. */
  notAfter?: Date;
  /** Validity in days when notAfter is not given; default by profile (397 for leaves). */
  validityDays?: number;
  /** How far before now notBefore starts, in seconds; default 3600. */
  backdateSeconds?: number;
  /** RFC 7633 TLS Feature status_request ("must-staple"). */
  mustStaple?: boolean;
  /** Intermediates: basicConstraints pathLenConstraint; default 0 (issues leaves only). */
  pathLength?: number;
  /** OCSP signers: a deliberate defect (see SignerFlaw). */
  flaw?: SignerFlaw;
  /**
   * Serial number of the new certificate, hex in any form `normalizeSerial` takes (`0x`, `:`,
   * either case; stored canonical). Default a fresh random one (`newSerial`: 16 bytes). For
   * tests and labs that need a given serial, e.g. one whose hex begins with 0. It must be
   * positive, at most 20 octets (RFC 5280 §4.1.2.2) and not yet used in this CA. An
   * intermediate's own OCSP signer still gets a random serial.
   */
  serial?: string;
}

/** Options of issueServer: those of a server certificate. */
export type IssueServerOptions = Omit<IssueOptions, "flaw" | "pathLength" | "emails" | "uris">;

/** An issued certificate: its record, parsed form, PEM texts and absolute file paths. */
export interface IssuedCertificate {
  serial: string;
  profile: Profile;
  certificate: x509.X509Certificate;
  /** The certificate, PEM, ending with a newline. */
  certPem: string;
  /**
   * Its private key, PKCS#8 PEM ending with a newline; absent when the certificate was signed
   * from a CSR (the key stays with its owner).
   */
  keyPem?: string;
  /** Absolute path of the certificate PEM. */
  certFile: string;
  /** Absolute path of the private key PEM (0600); the empty string when signed from a CSR. */
  keyFile: string;
  /** Issuer chain up to and including the root, PEM. */
  chainFile: string;
  /** Certificate then chain, PEM: what a TLS server loads. */
  fullchainFile: string;
}

/** What the checks of a request settle: everything needed to build the certificate. */
export interface IssuancePlan {
  /** Canonical serial of the issuing CA, and its record. */
  issuerSerial: string;
  issuerRecord: CertificateRecord;
  /** The serial asked for (canonical), when one was. */
  serial?: string;
  /** Intermediates: the pathLenConstraint to write. */
  pathLength?: number;
  notBefore: Date;
  notAfter: Date;
  /** Subject fields, the common name defaulted from the SANs or the profile. */
  subject: SubjectFields;
}

/**
 * Check that a key type can serve a profile: pkijs cannot sign OCSP responses with Ed25519,
 * so OCSP signers and intermediates (which sign with their own delegated signer's type) need
 * ECDSA or RSA.
 * @throws InvalidArgumentError naming the profile.
 */
export function checkKeyType(profile: Profile, keyType: KeyType): void {
  if (keyType === "ed25519" && (profile === "ocsp-signer" || profile === "intermediate")) {
    throw new InvalidArgumentError(
      "key type",
      keyType,
      `pkijs cannot sign OCSP responses with Ed25519, so a ${profile} needs ecdsa-* or rsa-*`,
    );
  }
}

/**
 * Check a request to issue a certificate of `profile` against the CA database `db` at time
 * `now`, and settle issuer, serial, path length, validity and subject:
 * - SANs fit the profile (checkAltNames); a flaw only on an ocsp-signer, and a known one;
 * - the issuer (default the root) is a CA of `db` and not revoked;
 * - a chosen serial is valid (positive, ≤ 20 octets) and unused;
 * - pathLength only on intermediates, a whole number below the issuer's; mustStaple only on
 *   server and client certificates;
 * - validity: notBefore default now − backdateSeconds (3600); notAfter default notBefore +
 *   validityDays (by profile: 1825 intermediates, 730 OCSP signers, 397 leaves) capped at the
 *   issuer's notAfter; an explicit notAfter may not outlive the issuer (except under the
 *   `other-ca` flaw); `expired` sets the window to two days ago → one day ago; notAfter must
 *   be after notBefore.
 * @throws InvalidArgumentError for a bad SAN, profile, flaw, serial, path length, validity or a
 * revoked issuer; UnknownSerialError when the issuer is not a CA of `db`; InvalidSerialError
 * for a serial that is not hex.
 */
export function planIssuance(profile: Profile, options: IssueOptions, db: CaDatabase, now: Date): IssuancePlan {
  if (!PROFILES.includes(profile)) throw new InvalidArgumentError("profile", profile, `use one of ${PROFILES.join(", ")}`);
  checkAltNames(profile, options);
  if (options.flaw !== undefined && (profile !== "ocsp-signer" || !SIGNER_FLAWS.includes(options.flaw))) {
    throw new InvalidArgumentError(
      "flaw",
      options.flaw,
      profile === "ocsp-signer" ? `use one of ${SIGNER_FLAWS.join(", ")}` : "flaws apply to ocsp-signer certificates only",
    );
  }
  const issuerSerial = normalizeSerial(options.issuer ?? db.root);
  const issuerRecord = db.certificates[issuerSerial];
  if (!issuerRecord || (issuerRecord.kind !== "root" && issuerRecord.kind !== "intermediate"))
    throw new UnknownSerialError(issuerSerial);
  const serial = options.serial === undefined ? undefined : checkedSerial(options.serial);
  if (serial !== undefined && db.certificates[serial]) throw duplicateSerialError(serial);
  if (issuerRecord.revocation) throw new InvalidArgumentError("issuer", issuerSerial, "it is revoked; issue under another CA");
  if (options.pathLength !== undefined && profile !== "intermediate")
    throw new InvalidArgumentError("pathLength", options.pathLength, "it applies to intermediates only");
  if (options.mustStaple && profile !== "server" && profile !== "client")
    throw new InvalidArgumentError("mustStaple", true, "it applies to server and client certificates only");
  let pathLength: number | undefined;
  if (profile === "intermediate") {
    pathLength = options.pathLength ?? 0;
    if (!Number.isInteger(pathLength) || pathLength < 0)
      throw new InvalidArgumentError("pathLength", pathLength, "give a whole number ≥ 0");
    if (issuerRecord.pathLength !== undefined && pathLength >= issuerRecord.pathLength) {
      throw new InvalidArgumentError(
        "pathLength",
        pathLength,
        issuerRecord.pathLength === 0
          ? `issuer ${issuerSerial} has pathLength 0 and cannot issue intermediates`
          : `it must be below the issuer's pathLength ${issuerRecord.pathLength}`,
      );
    }
  }

  const defaultDays =
    profile === "intermediate"
      ? INTERMEDIATE_VALIDITY_DAYS
      : profile === "ocsp-signer"
        ? SIGNER_VALIDITY_DAYS
        : LEAF_VALIDITY_DAYS;
  let notBefore = options.notBefore ?? new Date(now.getTime() - (options.backdateSeconds ?? DEFAULT_BACKDATE_SECONDS) * 1000);
  const issuerNotAfter = new Date(issuerRecord.notAfter);
  // A default validity ends with the issuer's at the latest; an explicit one may not outlive it.
  let notAfter =
    options.notAfter ??
    new Date(Math.min(notBefore.getTime() + (options.validityDays ?? defaultDays) * DAY_MS, issuerNotAfter.getTime()));
  if (options.flaw === "expired") {
    notBefore = new Date(now.getTime() - 2 * DAY_MS);
    notAfter = new Date(now.getTime() - DAY_MS);
  }
  if (options.flaw !== "other-ca" && notAfter.getTime() > issuerNotAfter.getTime()) {
    throw new InvalidArgumentError(
      "notAfter",
      notAfter.toISOString(),
      `it must not outlive its issuer (notAfter ${issuerNotAfter.toISOString()})`,
    );
  }
  if (!(notAfter.getTime() > notBefore.getTime())) {
    throw new InvalidArgumentError(
      "validity",
      { notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() },
      "notAfter must be after notBefore (and validityDays positive)",
    );
  }
  const subject: SubjectFields = { ...options.subject };
  if (options.commonName) subject.commonName = options.commonName;
  subject.commonName ??=
    options.dnsNames?.[0] ?? options.ipAddresses?.[0] ?? options.emails?.[0] ?? options.uris?.[0] ?? defaultCommonName(profile);
  return {
    issuerSerial,
    issuerRecord,
    ...(serial !== undefined ? { serial } : {}),
    ...(pathLength !== undefined ? { pathLength } : {}),
    notBefore,
    notAfter,
    subject,
  };
}

/** The error for a serial already used in this CA. */
export function duplicateSerialError(serial: string): InvalidArgumentError {
  return new InvalidArgumentError(
    "serial",
    serial,
    "a certificate with this serial is already in this CA; serials must be unique (RFC 5280 §4.1.2.2)",
  );
}

/** What a verified CSR brings to issuance. */
export interface CsrRequest {
  keyType: KeyType;
  publicKey: x509.PublicKey;
  /** The SANs it asks for (DNS, IP, email, URI). */
  altNames: AltNames;
  subject: x509.Name;
}

/**
 * Parse and verify a PKCS#10 CSR (RFC 2986) for `profile`: its signature must verify with the
 * key it carries, the key must be of a type the lab handles, and the profile must be one a
 * key held elsewhere can have (not an intermediate, not an Ed25519 OCSP signer).
 * @throws InvalidCsrError when the PEM is not a CSR or its signature does not verify;
 * InvalidArgumentError for the profile or the key type.
 */
export async function readCsr(csrPem: string, profile: Profile, crypto: Crypto): Promise<CsrRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (cause) {
    throw new InvalidCsrError("it is not a PEM or DER PKCS#10 certificate request", { cause });
  }
  let valid = false;
  try {
    valid = await csr.verify(crypto);
  } catch (cause) {
    throw new InvalidCsrError(`its signature cannot be checked (${String(cause)})`, { cause });
  }
  if (!valid) throw new InvalidCsrError("its signature does not verify with the public key it carries");
  if (profile === "intermediate") {
    throw new InvalidArgumentError(
      "profile for a CSR",
      profile,
      "an intermediate needs its key in the store to sign; create it with createIntermediate() / `ocsp-ca issue --profile intermediate`",
    );
  }
  const keyType = keyTypeOf(csr.publicKey);
  if (keyType === "ed25519" && profile === "ocsp-signer") {
    throw new InvalidArgumentError(
      "key type",
      keyType,
      "pkijs cannot sign OCSP responses with Ed25519, so an ocsp-signer CSR needs an ECDSA or RSA key",
    );
  }
  const san = csr.extensions.find(
    (e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension,
  );
  const altNames: AltNames = {};
  for (const name of san?.names.items ?? []) {
    if (name.type === "dns") (altNames.dnsNames ??= []).push(name.value);
    else if (name.type === "ip") (altNames.ipAddresses ??= []).push(name.value);
    else if (name.type === "email") (altNames.emails ??= []).push(name.value);
    else if (name.type === "url") (altNames.uris ??= []).push(name.value);
  }
  return { keyType, publicKey: csr.publicKey, altNames, subject: csr.subjectName };
}

/**
 * Build one certificate of `profile` signed by `issuer`, with the profile's extensions
 * (profileExtensions) and a fresh key pair of `keyType` unless `publicKey` (and, when the CA
 * keeps the key, `privateKey`) are given. Serial `serial` (canonical) or a fresh random one.
 * Returns the certificate and its private key (undefined for a CSR's key).
 * @throws InvalidArgumentError from profileExtensions for a bad SAN or URL.
 */
export async function buildCertificate(p: {
  profile: Profile;
  issuer: Signer;
  keyType: KeyType;
  subject: x509.JsonName | x509.Name;
  notBefore: Date;
  notAfter: Date;
  options: IssueOptions;
  crypto: Crypto;
  publicKey?: CryptoKey | x509.PublicKey;
  privateKey?: CryptoKey;
  /** Canonical serial to use; default newSerial(). */
  serial?: string;
}): Promise<{ certificate: x509.X509Certificate; key: CryptoKey }> {
  let publicKey = p.publicKey;
  let privateKey = p.privateKey;
  if (!publicKey) {
    const keys = await generateKeyPair(p.keyType, p.crypto);
    publicKey = keys.publicKey;
    privateKey = keys.privateKey;
  }
  const extensions = await profileExtensions({
    ...p.options,
    profile: p.profile,
    keyType: p.keyType,
    subjectPublicKey: publicKey,
    issuerCertificate: p.issuer.certificate,
    crypto: p.crypto,
  });
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: p.serial ?? newSerial(),
      subject: p.subject,
      issuer: p.issuer.certificate.subjectName,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey,
      signingKey: p.issuer.key,
      signingAlgorithm: signingAlgorithm(p.issuer.keyType),
      extensions,
    },
    p.crypto,
  );
  return { certificate, key: privateKey! };
}

/**
 * A self-signed CA certificate (X509CertificateGenerator.createSelfSigned: subject = issuer,
 * signed with its own key): CA:TRUE (critical), keyCertSign + cRLSign + digitalSignature
 * (critical), and a subjectKeyIdentifier (RFC 5280 §4.2.1.2) when `withSubjectKeyId`.
 */
export async function selfSignedCa(p: {
  name: string;
  serial: string;
  keys: CryptoKeyPair;
  keyType: KeyType;
  notBefore: Date;
  notAfter: Date;
  crypto: Crypto;
  /** Key usages: default keyCertSign | cRLSign | digitalSignature. */
  keyUsages?: x509.KeyUsageFlags;
  withSubjectKeyId?: boolean;
}): Promise<x509.X509Certificate> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(
      p.keyUsages ?? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
  ];
  if (p.withSubjectKeyId) extensions.push(await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey, false, p.crypto));
  return x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: p.serial,
      name: p.name,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      keys: p.keys,
      signingAlgorithm: signingAlgorithm(p.keyType),
      extensions,
    },
    p.crypto,
  );
}

/**
 * A self-signed CA that exists only in memory, for `other-ca` signer flaws: a signer whose
 * issuer is not the CA a client asks about. Ed25519 is replaced by ECDSA P-256 (it signs OCSP).
 */
export async function throwawayCa(keyType: KeyType, clock: Clock, crypto: Crypto): Promise<Signer> {
  const type = keyType === "ed25519" ? "ecdsa-p256" : keyType;
  const keys = await generateKeyPair(type, crypto);
  const now = clock.now();
  const certificate = await selfSignedCa({
    name: `CN=ocsp-lab unrelated CA ${newSerial().slice(0, 4)}, O=ocsp-lab`,
    serial: newSerial(),
    keys,
    keyType: type,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + ROOT_VALIDITY_DAYS * DAY_MS),
    keyUsages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
    crypto,
  });
  return { certificate, key: keys.privateKey, keyType: type };
}

/** The store record of a certificate (canonical serial, subject, validity) plus `extra`. */
export function recordOf(
  cert: x509.X509Certificate,
  kind: CertificateRecord["kind"],
  keyType: KeyType,
  extra: Partial<CertificateRecord> & { certFile: string },
): CertificateRecord {
  return {
    serial: normalizeSerial(cert.serialNumber),
    kind,
    subject: cert.subject,
    keyType,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    ...extra,
  };
}

/** PEM text of a certificate, with a final newline. */
export function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString("pem")}\n`;
}

function defaultCommonName(profile: Profile): string {
  return profile === "intermediate"
    ? "ocsp-lab intermediate CA"
    : profile === "ocsp-signer"
      ? "ocsp-lab OCSP signer"
      : "ocsp-lab certificate";
}
