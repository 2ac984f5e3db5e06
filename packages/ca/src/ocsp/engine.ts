import * as pkijs from "pkijs";
import { defaultCrypto } from "../keys.js";

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

/** Parse DER into a pkijs Certificate. */
export function toPkiCertificate(der: ArrayBuffer | Uint8Array): pkijs.Certificate {
  return pkijs.Certificate.fromBER(der instanceof Uint8Array ? plainBytes(der) : der);
}

/**
 * View bytes as backed by a plain ArrayBuffer, which WebCrypto's types ask for. Everything here is
 * parsed from or encoded to ordinary buffers, never SharedArrayBuffer.
 */
export function plainBytes(v: Uint8Array): Uint8Array<ArrayBuffer> {
  return v as Uint8Array<ArrayBuffer>;
}
