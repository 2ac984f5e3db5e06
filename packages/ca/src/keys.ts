import { defaultCrypto, type OcspSigner } from "@ocsp-lab/ocsp";
import * as x509 from "@peculiar/x509";
import { InvalidArgumentError } from "./errors.js";

/**
 * Key types the lab can generate. ECDSA P-256 is the default: small, fast, accepted everywhere.
 * Ed25519 certificates are issued (OpenSSL and TLS 1.3 accept them), but pkijs cannot sign OCSP
 * responses or verify them with Ed25519, so it is refused for OCSP signers.
 */
export type KeyType = "ecdsa-p256" | "ecdsa-p384" | "rsa-2048" | "rsa-3072" | "rsa-4096" | "ed25519";

/**
 * A signing identity: a certificate, its private key (what @ocsp-lab/ocsp's OcspSigner needs to
 * sign OCSP responses) and the key type (what certificates and CRLs are signed with).
 */
export interface Signer extends OcspSigner {
  keyType: KeyType;
}

/** Every supported key type, for validation and usage messages. */
export const KEY_TYPES: readonly KeyType[] = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"];

/**
 * Validate a key type name.
 * @throws InvalidArgumentError naming the supported types.
 */
export function parseKeyType(value: string): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(value)) return value as KeyType;
  throw new InvalidArgumentError("key type", value, `use one of ${KEY_TYPES.join(", ")}`);
}

/** Whether a key type is RSA (leaf key usage then includes keyEncipherment). */
export function isRsa(type: KeyType): boolean {
  return type.startsWith("rsa-");
}

/**
 * WebCrypto parameters for generating and importing a key of this type.
 * @throws InvalidArgumentError for an unsupported type.
 */
export function keyAlgorithm(type: KeyType): RsaHashedKeyGenParams | EcKeyGenParams | Algorithm {
  switch (type) {
    case "ecdsa-p256":
      return { name: "ECDSA", namedCurve: "P-256" };
    case "ecdsa-p384":
      return { name: "ECDSA", namedCurve: "P-384" };
    case "rsa-2048":
    case "rsa-3072":
    case "rsa-4096":
      return {
        name: "RSASSA-PKCS1-v1_5",
        hash: "SHA-256",
        // F4, the exponent every TLS stack expects.
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: Number(type.slice(4)),
      };
    case "ed25519":
      return { name: "Ed25519" };
    default:
      throw new InvalidArgumentError("key type", type, `use one of ${KEY_TYPES.join(", ")}`);
  }
}

/**
 * The signature algorithm a key of this type signs certificates, CRLs and OCSP responses with:
 * ecdsa-with-SHA256 (P-256), ecdsa-with-SHA384 (P-384), sha256WithRSAEncryption, or Ed25519
 * (RFC 8410, no separate hash).
 */
export function signingAlgorithm(type: KeyType): Algorithm | EcdsaParams {
  switch (type) {
    case "ecdsa-p256":
      return { name: "ECDSA", hash: "SHA-256" };
    case "ecdsa-p384":
      return { name: "ECDSA", hash: "SHA-384" };
    case "ed25519":
      return { name: "Ed25519" };
    default:
      return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  }
}

/** The hash that goes with a key type's signatures (SHA-384 for P-384, SHA-256 otherwise). */
export function signingHash(type: KeyType): "SHA-256" | "SHA-384" {
  return type === "ecdsa-p384" ? "SHA-384" : "SHA-256";
}

/**
 * The key type of a public key (e.g. from a CSR).
 * @throws InvalidArgumentError for a key the lab does not handle (DSA, P-521, RSA of another size...).
 */
export function keyTypeOf(publicKey: x509.PublicKey): KeyType {
  const alg = publicKey.algorithm as Algorithm & { namedCurve?: string; modulusLength?: number };
  if (alg.name === "ECDSA" && alg.namedCurve === "P-256") return "ecdsa-p256";
  if (alg.name === "ECDSA" && alg.namedCurve === "P-384") return "ecdsa-p384";
  if (alg.name === "Ed25519" || alg.name === "EdDSA") return "ed25519";
  if (alg.name === "RSASSA-PKCS1-v1_5" || alg.name === "RSA-PSS" || alg.name === "RSA-OAEP") {
    const type = `rsa-${alg.modulusLength}`;
    if ((KEY_TYPES as readonly string[]).includes(type)) return type as KeyType;
  }
  throw new InvalidArgumentError(
    "public key",
    `${alg.name} ${alg.namedCurve ?? alg.modulusLength ?? ""}`.trim(),
    `use a key of type ${KEY_TYPES.join(", ")}`,
  );
}

/** Generate an extractable key pair of `type`. */
export async function generateKeyPair(type: KeyType, crypto: Crypto = defaultCrypto): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(keyAlgorithm(type), true, ["sign", "verify"])) as CryptoKeyPair;
}

/**
 * PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 7468 §10) of a private key, loadable by OpenSSL
 * and node:tls, ending with a newline like every PEM text the CA writes (so `cat cert.pem
 * key.pem chain.pem` never glues the key's END line to the next BEGIN line).
 */
export async function privateKeyToPem(key: CryptoKey, crypto: Crypto = defaultCrypto): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return `${x509.PemConverter.encode(der, "PRIVATE KEY")}\n`;
}

/**
 * Import a PKCS#8 PEM private key of a known type for signing.
 * @throws InvalidArgumentError when the PEM holds no PKCS#8 key of that type.
 */
export async function privateKeyFromPem(pem: string, type: KeyType, crypto: Crypto = defaultCrypto): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await crypto.subtle.importKey("pkcs8", der, keyAlgorithm(type), true, ["sign"]);
  } catch (cause) {
    throw new InvalidArgumentError("private key", `${type} PEM`, `the file is not a PKCS#8 ${type} key (${String(cause)})`);
  }
}
