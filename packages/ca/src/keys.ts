import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { InvalidArgumentError } from "./errors.js";

/** Key types the lab can generate. ECDSA P-256 is the default: small, fast, accepted everywhere. */
export type KeyType = "ecdsa-p256" | "rsa-2048";

/** Every supported key type, for validation and usage messages. */
export const KEY_TYPES: readonly KeyType[] = ["ecdsa-p256", "rsa-2048"];

/** The WebCrypto implementation used everywhere unless a caller injects another one. */
export const defaultCrypto: Crypto = webcrypto as unknown as Crypto;

/**
 * WebCrypto parameters for generating and importing a key of this type.
 * @throws InvalidArgumentError for an unsupported type.
 */
export function keyAlgorithm(type: KeyType): RsaHashedKeyGenParams | EcKeyGenParams {
  switch (type) {
    case "ecdsa-p256":
      return { name: "ECDSA", namedCurve: "P-256" };
    case "rsa-2048":
      return {
        name: "RSASSA-PKCS1-v1_5",
        hash: "SHA-256",
        // F4, the exponent every TLS stack expects.
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: 2048,
      };
    default:
      throw new InvalidArgumentError("key type", type, `use one of ${KEY_TYPES.join(", ")}`);
  }
}

/**
 * The signature algorithm a key of this type signs certificates and OCSP responses with:
 * ecdsa-with-SHA256 or sha256WithRSAEncryption.
 */
export function signingAlgorithm(type: KeyType): Algorithm | EcdsaParams {
  return type === "ecdsa-p256" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
}

/** Generate an extractable key pair of `type`. */
export async function generateKeyPair(type: KeyType, crypto: Crypto = defaultCrypto): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(keyAlgorithm(type), true, ["sign", "verify"])) as CryptoKeyPair;
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of a private key, loadable by OpenSSL and node:tls. */
export async function privateKeyToPem(key: CryptoKey, crypto: Crypto = defaultCrypto): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
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
