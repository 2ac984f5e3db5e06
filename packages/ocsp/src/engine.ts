import * as pkijs from "pkijs";
import * as x509 from "@peculiar/x509";
import { defaultCrypto } from "./crypto.js";

const engines = new WeakMap<Crypto, pkijs.CryptoEngine>();

/**
 * The pkijs crypto engine over a WebCrypto implementation, so callers can inject crypto instead
 * of pkijs' process-wide default. One engine per Crypto object, created on first use.
 */
export function pkiEngine(crypto: Crypto = defaultCrypto): pkijs.CryptoEngine {
  let engine = engines.get(crypto);
  if (!engine) {
    engine = new pkijs.CryptoEngine({ name: "ocsp-lab", crypto });
    engines.set(crypto, engine);
  }
  return engine;
}

/**
 * The one place where certificates cross from @peculiar/x509 (how ocsp-lab holds them) to pkijs
 * (what OCSP encoding and CertIDs need): an X509Certificate, or DER bytes, parsed into a pkijs
 * Certificate (RFC 5280 §4.1).
 * @throws Error from asn1js/pkijs when the bytes are not a certificate.
 */
export function toPkiCertificate(certificate: x509.X509Certificate | ArrayBuffer | Uint8Array): pkijs.Certificate {
  const der = certificate instanceof x509.X509Certificate ? certificate.rawData : certificate;
  return pkijs.Certificate.fromBER(der instanceof Uint8Array ? plainBytes(der) : der);
}

/** The other direction: a pkijs Certificate re-encoded as an @peculiar/x509 X509Certificate. */
export function toX509Certificate(certificate: pkijs.Certificate): x509.X509Certificate {
  return new x509.X509Certificate(certificate.toSchema().toBER(false));
}

/**
 * View bytes as backed by a plain ArrayBuffer, which WebCrypto's types ask for. Everything here is
 * parsed from or encoded to ordinary buffers, never SharedArrayBuffer.
 */
export function plainBytes(v: Uint8Array): Uint8Array<ArrayBuffer> {
  return v as Uint8Array<ArrayBuffer>;
}
