import { promises as fs } from "node:fs";
import { createSecureContext, type SecureContext, type SecureVersion } from "node:tls";
import * as x509 from "@peculiar/x509";
import { CertificateSetupError } from "./errors.js";
import { readStapleFile, toStapleSource, type StapleSourceInput, type StapleSourceSpec } from "./staple-source.js";

/** PEM material of one served certificate. */
export interface ServedCertificate {
  /** Leaf PEM, optionally followed by its chain (a fullchain file). */
  cert: string;
  /** Private key PEM. */
  key: string;
  /** Issuer PEM; default the second certificate of `cert`. */
  issuer?: string;
  /** Ask this responder instead of the certificate's AIA OCSP URL. */
  responderUrl?: string;
  /** Where this certificate's staple comes from; default the server's (withStapleSource), `verified`. */
  stapleSource?: StapleSourceInput;
}

/** Files of one served certificate; watched for changes when reloading is on. */
export interface CertificateFiles {
  /** Leaf or fullchain PEM file. */
  certFile: string;
  /** Private key PEM file. */
  keyFile: string;
  /** Issuer (chain) PEM file; default the second certificate of certFile. */
  chainFile?: string;
  /** Ask this responder instead of the certificate's AIA OCSP URL. */
  responderUrl?: string;
  /** Where this certificate's staple comes from; default the server's (withStapleSource), `verified`. */
  stapleSource?: StapleSourceInput;
}

/** TLS protocol versions offered (default TLS 1.2 to 1.3). */
export interface TlsVersions {
  minVersion?: SecureVersion;
  maxVersion?: SecureVersion;
}

/** One certificate as given to the builder: PEM in memory, or files re-read on reload. */
export type CertificateEntry = { kind: "pem"; material: ServedCertificate } | { kind: "files"; files: CertificateFiles };

/** One certificate, parsed and checked, not yet served. */
export interface LoadedCertificate {
  leaf: x509.X509Certificate;
  issuer: x509.X509Certificate;
  names: string[];
  url: string;
  /** The leaf's DER as a latin1 string: the key the OCSPRequest handler looks up. */
  derKey: string;
  /** The issuer's DER as a latin1 string. */
  issuerDer: string;
  context: SecureContext;
  /** cert + key PEM, for the default context of the listener. */
  pem: { cert: string; key: string };
  /** Where its staple comes from. */
  stapleSource: StapleSourceSpec;
  /** For a `file` source: the file's bytes as read with the certificate. */
  stapleDer: Uint8Array | undefined;
}

/** What loading a certificate needs besides its PEM. */
export interface LoadOptions {
  /** TLS versions of its secure context. */
  tls: TlsVersions;
  /** Responder for every certificate without its own (overrides the AIA OCSP URL). */
  responderUrl: string | undefined;
  /** WebCrypto used to check that the issuer signed the leaf. */
  crypto: Crypto;
  /** Staple source of a certificate without its own; default `verified`. */
  stapleSource?: StapleSourceSpec;
}

/** PEM material and, when it was read from files, which ones (for messages that name them instead of quoting them). */
export type EntryMaterial = ServedCertificate & { files?: CertificateFiles };

/** Why a file could not be read, and the fix, without its path (the caller names it). */
function readProblem(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException).code;
  switch (code) {
    case "EACCES":
    case "EPERM":
      return `permission denied (${code}): make it readable by the user the stapler runs as (ls -l shows its owner and mode)`;
    case "ENOENT":
      return "no such file (ENOENT): check the path (relative paths are from the config file's folder)";
    case "EISDIR":
      return "it is a folder, not a file (EISDIR): give the file's path";
    default:
      return `${code ?? String(cause)}: check the path and its permissions`;
  }
}

/**
 * The PEM material of an entry: as given, or read from its files (UTF-8), with the file names
 * kept in `files`.
 * @throws CertificateSetupError naming the file that cannot be read (`cert file`, `key file`,
 * `chain file`), why (permission denied, no such file, a folder) and the fix.
 */
export async function readEntry(entry: CertificateEntry): Promise<EntryMaterial> {
  if (entry.kind === "pem") return entry.material;
  const read = async (f: string, what: string): Promise<string> => {
    try {
      return await fs.readFile(f, "utf8");
    } catch (cause) {
      throw new CertificateSetupError(`cannot read ${what}`, f, readProblem(cause), { cause });
    }
  };
  const { certFile, keyFile, chainFile, responderUrl, stapleSource } = entry.files;
  return {
    cert: await read(certFile, "cert file"),
    key: await read(keyFile, "key file"),
    ...(chainFile ? { issuer: await read(chainFile, "chain file") } : {}),
    ...(responderUrl ? { responderUrl } : {}),
    ...(stapleSource ? { stapleSource } : {}),
    files: entry.files,
  };
}

const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * What a PEM text that should hold `wanted` holds instead, for a message that must not quote
 * it (it may be a private key): empty, a private key, a certificate, something else.
 */
function whatItHolds(text: string, wanted: "certificate" | "private key"): string {
  if (text.trim() === "") return "it is empty";
  if (wanted === "certificate" && PRIVATE_KEY_PEM.test(text))
    return "it holds a private key, not a certificate: are cert and key swapped?";
  if (wanted === "private key" && splitPem(text).length > 0)
    return "it holds a certificate, not a private key: are cert and key swapped?";
  return `it holds no PEM ${wanted}`;
}

/**
 * Parse and check one certificate for serving: the leaf (first PEM block), its issuer (the
 * `issuer` PEM or the second block) which must have signed it, the responder to ask
 * (`material.responderUrl`, then `options.responderUrl`, then the AIA OCSP URL, RFC 5280
 * §4.2.2.1), its DNS names (SAN, RFC 5280 §4.2.1.6, or the CN), and a secure context with the
 * chain (the issuer appended when the file lacks it) and the key; its staple source
 * (`material.stapleSource`, then `options.stapleSource`, then `verified`), and for a `file`
 * source the file's bytes.
 * @throws CertificateSetupError for no or unreadable PEM, no issuer, an issuer that did not sign
 * the leaf, no OCSP URL, a key that does not belong to the certificate, an unreadable staple file;
 * InvalidStapleSourceError for a bad staple source.
 */
export async function loadCertificate(material: EntryMaterial, options: LoadOptions): Promise<LoadedCertificate> {
  // Named by file, never quoted: a key given as `cert:` would otherwise be printed.
  const certWhere = material.files?.certFile ?? "(the cert PEM given)";
  const keyWhere = material.files?.keyFile ?? "(the key PEM given)";
  const stapleSource = material.stapleSource
    ? toStapleSource(material.stapleSource)
    : (options.stapleSource ?? { kind: "verified" as const });
  const stapleDer = stapleSource.kind === "file" ? new Uint8Array(await readStapleFile(stapleSource.path)) : undefined;
  const certs = splitPem(material.cert);
  if (certs.length === 0)
    throw new CertificateSetupError("no PEM certificate in", certWhere, whatItHolds(material.cert, "certificate"));
  const leaf = parseCert(certs[0]!, certWhere);
  const issuerPem = material.issuer ? splitPem(material.issuer)[0] : certs[1];
  if (!issuerPem)
    throw new CertificateSetupError(
      "no issuer for",
      leaf.subject,
      "give the issuer certificate (chain file) or a fullchain certificate",
    );
  const issuer = parseCert(issuerPem, material.issuer ? (material.files?.chainFile ?? "(the issuer PEM given)") : certWhere);
  // A chain that is not the leaf's issuer would make every staple fail verification.
  const issued =
    leaf.issuer === issuer.subject &&
    (await leaf.verify({ publicKey: issuer.publicKey, signatureOnly: true }, options.crypto).catch(() => false));
  if (!issued) {
    throw new CertificateSetupError(
      "issuer",
      issuer.subject,
      `did not issue "${leaf.subject}" (issued by "${leaf.issuer}"): give the issuing CA's certificate as chain`,
    );
  }
  const url = material.responderUrl ?? options.responderUrl ?? aiaOcspUrl(leaf);
  if (!url)
    throw new CertificateSetupError(
      "no OCSP URL in",
      leaf.subject,
      "the certificate has no AIA OCSP URL; give a responder URL (withResponderUrl or responder_url)",
    );
  // Send the chain with the leaf: clients such as curl look for the issuer among the
  // certificates the server sends to compute the CertID of the staple.
  const chain = certs.some((c) => sameCert(c, issuerPem)) ? certs : [...certs, issuerPem];
  const pem = { cert: `${chain.join("\n")}\n`, key: material.key };
  if (!PRIVATE_KEY_PEM.test(material.key))
    throw new CertificateSetupError("no PEM private key in", keyWhere, whatItHolds(material.key, "private key"));
  let context: SecureContext;
  try {
    context = createSecureContext({ ...pem, ...options.tls });
  } catch (cause) {
    throw new CertificateSetupError(
      "cannot serve",
      leaf.subject,
      `${(cause as Error).message} (does the key belong to the certificate?)`,
      { cause },
    );
  }
  return {
    leaf,
    issuer,
    names: dnsNames(leaf),
    url,
    derKey: Buffer.from(leaf.rawData).toString("latin1"),
    issuerDer: Buffer.from(issuer.rawData).toString("latin1"),
    context,
    pem,
    stapleSource,
    stapleDer,
  };
}

/**
 * The secure context of each DNS name (lowercase; `*.example.com` for a wildcard).
 * @throws CertificateSetupError for two certificates for one name.
 */
export function checkNames(loaded: LoadedCertificate[]): Map<string, SecureContext> {
  const byName = new Map<string, SecureContext>();
  for (const l of loaded) {
    for (const name of l.names) {
      const other = byName.get(name);
      if (other && other !== l.context) {
        // Node asks for the staple before OpenSSL picks among several certificates of one
        // context, so two certificates for one name could get each other's staple.
        throw new CertificateSetupError(
          "two certificates for the name",
          name,
          "give each certificate its own names (SNI chooses by name)",
        );
      }
      byName.set(name, l.context);
    }
  }
  return byName;
}

/** The entries for a message: their certificate files, `(PEM)` for one given in memory. */
export function describeEntries(entries: CertificateEntry[]): string {
  return entries.map((e) => (e.kind === "files" ? e.files.certFile : "(PEM)")).join(", ");
}

/** The PEM certificate blocks of a text, in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The first OCSP URL of a certificate's AuthorityInfoAccess (RFC 5280 §4.2.2.1), if any. */
export function aiaOcspUrl(cert: x509.X509Certificate): string | undefined {
  const aia = cert.getExtension(x509.AuthorityInfoAccessExtension);
  const name = aia?.ocsp.find((g) => g.type === "url");
  return name?.value;
}

function sameCert(a: string, b: string): boolean {
  return a.replace(/\s+/g, "") === b.replace(/\s+/g, "");
}

/** Parse one PEM certificate block of the file (or PEM) named `where`; the block is never quoted. */
function parseCert(pem: string, where: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new CertificateSetupError("unreadable certificate in", where, "give a PEM X.509 certificate", { cause });
  }
}

/** DNS names of a certificate's SubjectAltName (RFC 5280 §4.2.1.6), lowercased; the CN when there is none. */
function dnsNames(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.items.filter((n) => n.type === "dns").map((n) => n.value.toLowerCase()) ?? [];
  if (names.length > 0) return names;
  const cn = cert.subjectName.getField("CN")[0];
  return cn ? [cn.toLowerCase()] : [];
}
