/**
 * PKCS#12 (RFC 7292) export: a password-protected `.p12`/`.pfx` holding a private key, its
 * certificate and the issuer chain, for Java keystores, Windows, macOS and `node:tls` (`pfx`).
 *
 * Built with node-forge's PKCS#8/PKCS#12 machinery (`pki.encryptPrivateKeyInfo`,
 * `pkcs12.generateKey`, its ASN.1 encoder and HMAC), laid out exactly like forge's own
 * `pkcs12.toPkcs12Asn1`, but without going through forge's RSA-only key and certificate objects:
 * the PKCS#8 PrivateKeyInfo and the certificates are carried as DER, so ECDSA keys work too.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import forge from "node-forge";
import { InvalidArgumentError } from "../errors.js";

/** Input of toPkcs12. */
export interface Pkcs12Params {
  /** Unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): RSA, or EC on P-256 or P-384. */
  keyPem: string;
  /**
   * PEM of the certificate of `keyPem`. When it holds several certificates (a fullchain.pem),
   * the first is the leaf and the others are appended to the chain.
   */
  certPem: string;
  /** PEM issuer certificates, leaf's issuer first (each string may hold several). */
  chainPems?: string[];
  /** Password for key encryption and the integrity MAC. Must not be empty. */
  password: string;
  /** friendlyName attribute (PKCS#9) of the key and the leaf: the alias Java's keytool shows. */
  friendlyName?: string;
}

/**
 * PKCS#12 PBE / MAC iteration count: 2048, node-forge's and OpenSSL's (`PKCS12_DEFAULT_ITER`)
 * default, which every consumer (Java 8, Windows, macOS, OpenSSL 1.x and 3.x) reads.
 */
const ITERATIONS = 2048;
/** Salt length in bytes for the key encryption and the MAC (forge's and OpenSSL's default). */
const SALT_BYTES = 8;
/** MAC key length: 160 bits for HMAC-SHA-1 (RFC 7292 Appendix B.2, ID 3 = MAC key). */
const MAC_KEY_BYTES = 20;
/** EC curves accepted (Node's names): P-256 and P-384. */
const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: "P-256", secp384r1: "P-384" };

const { asn1, pki } = forge;
const { Class, Type } = asn1;

/**
 * Encode a key, its certificate and its issuer chain as a PKCS#12 PFX (RFC 7292), DER.
 *
 * Layout (the same as node-forge's `pkcs12.toPkcs12Asn1`, and what Java, Windows, macOS,
 * OpenSSL 3 without `-legacy` and `node:tls` read):
 * - AuthenticatedSafe = [ data ContentInfo: SafeContents of certBags (leaf first, then chain,
 *   unencrypted as forge writes them), data ContentInfo: SafeContents of one pkcs8ShroudedKeyBag ];
 * - the key is the given PKCS#8 PrivateKeyInfo encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC
 *   (RFC 7292 Appendix C, 2048 iterations, 8-byte salt);
 * - key bag and leaf cert bag carry localKeyId = SHA-1 of the leaf certificate DER (and the
 *   friendlyName when given), which is what pairs them;
 * - MacData: HMAC-SHA-1 with the PKCS#12 KDF (Appendix B), 2048 iterations, 8-byte salt.
 *
 * The password is used as a BMPString (UTF-16BE plus two zero bytes, RFC 7292 Appendix B.1), so
 * non-ASCII passwords work the way OpenSSL and Java read them.
 *
 * @param params key, certificates, password and optional friendlyName (see Pkcs12Params).
 * @returns the DER encoding of the PFX (the bytes of a `.p12` file).
 * @throws InvalidArgumentError when the password is empty; when `keyPem` is not an unencrypted
 *   PKCS#8 RSA or EC P-256/P-384 key; when `certPem` holds no certificate or any certificate does
 *   not parse; when the key does not belong to the leaf certificate.
 */
export function toPkcs12(params: Pkcs12Params): Uint8Array {
  const { password } = params;
  if (typeof password !== "string" || password.length === 0) {
    throw new InvalidArgumentError(
      "PKCS#12 password",
      typeof password === "string" ? password : typeof password,
      "give a non-empty password: Java, Windows and several TLS stacks cannot open a PKCS#12 file protected by an empty one",
    );
  }
  const keyDer = pkcs8Der(params.keyPem);
  const leafAndExtra = certificatesDer(params.certPem, "certificate PEM");
  if (leafAndExtra.length === 0) {
    throw new InvalidArgumentError(
      "certificate PEM",
      abbreviate(params.certPem),
      "give the PEM (-----BEGIN CERTIFICATE-----) of the key's certificate",
    );
  }
  const chain = [...leafAndExtra, ...(params.chainPems ?? []).flatMap((pem, i) => certificatesDer(pem, `chainPems[${i}]`))];
  const leafDer = chain[0]!;
  const leaf = new X509Certificate(Buffer.from(leafDer, "binary"));
  if (!leaf.checkPrivateKey(keyDer.key)) {
    throw new InvalidArgumentError(
      "private key",
      `for ${leaf.subject}`,
      "the key does not match the certificate's public key: pass the key file issued with this certificate",
    );
  }

  // Bag attributes shared by the key bag and the leaf's cert bag (RFC 7292 §4.2, PKCS#9).
  const sha1 = forge.md.sha1.create();
  sha1.update(leafDer);
  const attributes = [attribute(pki.oids.localKeyId!, Type.OCTETSTRING, sha1.digest().getBytes())];
  if (params.friendlyName !== undefined) attributes.push(attribute(pki.oids.friendlyName!, Type.BMPSTRING, params.friendlyName));
  const bagAttributes = asn1.create(Class.UNIVERSAL, Type.SET, true, sortDer(attributes));

  // SafeContents of CertBags, x509Certificate (RFC 7292 §4.2.3), leaf first.
  const certBags = chain.map((der, i) =>
    seq([
      oid(pki.oids.certBag!),
      explicit0([seq([oid(pki.oids.x509Certificate!), explicit0([asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, der)])])]),
      ...(i === 0 ? [bagAttributes] : []),
    ]),
  );

  // pkcs8ShroudedKeyBag (RFC 7292 §4.2.2): forge's PKCS#8 encryption of the PrivateKeyInfo as given.
  const encryptedKey = pki.encryptPrivateKeyInfo(keyDer.asn1, password, {
    algorithm: "3des",
    count: ITERATIONS,
    saltSize: SALT_BYTES,
  });
  const keyBag = seq([oid(pki.oids.pkcs8ShroudedKeyBag!), explicit0([encryptedKey]), bagAttributes]);

  const authenticatedSafe = seq([dataContentInfo(seq(certBags)), dataContentInfo(seq([keyBag]))]);
  const authenticatedSafeDer = asn1.toDer(authenticatedSafe).getBytes();

  // MacData (RFC 7292 §4 and Appendix B): HMAC-SHA-1 keyed by the PKCS#12 KDF with ID 3.
  const macSalt = forge.random.getBytesSync(SALT_BYTES);
  const macKey = forge.pkcs12.generateKey(password, forge.util.createBuffer(macSalt), 3, ITERATIONS, MAC_KEY_BYTES);
  const hmac = forge.hmac.create();
  hmac.start("sha1", macKey);
  hmac.update(authenticatedSafeDer);
  const macData = seq([
    seq([
      seq([oid(pki.oids.sha1!), asn1.create(Class.UNIVERSAL, Type.NULL, false, "")]),
      asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, hmac.getMac().getBytes()),
    ]),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, macSalt),
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(ITERATIONS).getBytes()),
  ]);

  // PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData }
  const pfx = seq([
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(3).getBytes()),
    seq([oid(pki.oids.data!), explicit0([asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, authenticatedSafeDer)])]),
    macData,
  ]);
  return forge.util.binary.raw.decode(asn1.toDer(pfx).getBytes());
}

/**
 * The PKCS#8 PrivateKeyInfo of a PEM as forge ASN.1 (re-encoding to the same bytes), checked by
 * Node to be RSA or EC P-256/P-384.
 */
function pkcs8Der(pem: string): { asn1: forge.asn1.Asn1; key: KeyObject } {
  const blocks = pemBlocks(pem, "private key PEM", false);
  const block = blocks.find((b) => b.type === "PRIVATE KEY");
  if (!block || block.procType) {
    const found = blocks.map((b) => b.type).join(", ") || "no PEM block";
    throw new InvalidArgumentError(
      "private key PEM",
      found,
      "give an unencrypted PKCS#8 key (-----BEGIN PRIVATE KEY-----); convert others with `openssl pkcs8 -topk8 -nocrypt -in key.pem`",
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(block.body, "binary"), format: "der", type: "pkcs8" });
  } catch (cause) {
    throw new InvalidArgumentError("private key PEM", "PRIVATE KEY", `the block is not a PKCS#8 private key (${String(cause)})`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (!(key.asymmetricKeyType === "rsa" || (key.asymmetricKeyType === "ec" && curve !== undefined && curve in EC_CURVES))) {
    throw new InvalidArgumentError(
      "private key type",
      curve ? `${key.asymmetricKeyType} ${curve}` : key.asymmetricKeyType,
      "give an RSA or an EC P-256/P-384 key",
    );
  }
  const parsed = asn1.fromDer(block.body, true);
  if (asn1.toDer(parsed).getBytes() !== block.body) {
    // forge would otherwise encrypt a re-encoding that differs from the key given.
    throw new InvalidArgumentError(
      "private key PEM",
      "PRIVATE KEY",
      "the key is not in DER (distinguished) encoding; re-export it with `openssl pkcs8 -topk8 -nocrypt`",
    );
  }
  return { asn1: parsed, key };
}

/** DER (forge binary strings) of every CERTIFICATE block of a PEM text, each checked to parse. */
function certificatesDer(pem: string, what: string): string[] {
  return pemBlocks(pem, what)
    .filter((b) => b.type === "CERTIFICATE" || b.type === "X509 CERTIFICATE")
    .map((b) => {
      try {
        new X509Certificate(Buffer.from(b.body, "binary"));
      } catch (cause) {
        throw new InvalidArgumentError(what, "CERTIFICATE", `a block is not an X.509 certificate (${String(cause)})`);
      }
      return b.body;
    });
}

/** forge's PEM blocks of a text. */
function pemBlocks(pem: string, what: string, quote = true): forge.pem.ObjectPEM[] {
  if (typeof pem !== "string") throw new InvalidArgumentError(what, typeof pem, "give PEM text");
  try {
    return forge.pem.decode(pem);
  } catch (cause) {
    // Never quote what may be key material.
    throw new InvalidArgumentError(what, quote ? abbreviate(pem) : "(not shown)", `not PEM (${String(cause)})`);
  }
}

/** Attribute ::= SEQUENCE { attrId OID, attrValues SET OF value } with one value. */
function attribute(attrOid: string, type: forge.asn1.Type, value: string): forge.asn1.Asn1 {
  return seq([oid(attrOid), asn1.create(Class.UNIVERSAL, Type.SET, true, [asn1.create(Class.UNIVERSAL, type, false, value)])]);
}

/** Elements of a DER SET OF in DER order (X.690 §11.6: ascending encodings). */
function sortDer(items: forge.asn1.Asn1[]): forge.asn1.Asn1[] {
  const keyed = items.map((item) => ({ item, der: Buffer.from(asn1.toDer(item).getBytes(), "binary") }));
  return keyed.sort((a, b) => Buffer.compare(a.der, b.der)).map((k) => k.item);
}

/** ContentInfo of type data wrapping the DER of `content` in an OCTET STRING (PKCS#7). */
function dataContentInfo(content: forge.asn1.Asn1): forge.asn1.Asn1 {
  return seq([
    oid(pki.oids.data!),
    explicit0([asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(content).getBytes())]),
  ]);
}

function seq(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
}

function explicit0(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(Class.CONTEXT_SPECIFIC, 0 as forge.asn1.Type, true, items);
}

function oid(dotted: string): forge.asn1.Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(dotted).getBytes());
}

/** First characters of a bad input, for error messages (never a whole key). */
function abbreviate(text: unknown): string {
  const s = String(text);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
