import * as asn1js from "asn1js";
import type * as pkijs from "pkijs";

/**
 * The nonce bytes of an id-pkix-ocsp-nonce extension. RFC 8954 §2.1 wraps them in an OCTET
 * STRING inside extnValue (`Nonce ::= OCTET STRING (SIZE(1..32))`); some older clients put the
 * raw bytes there, which are returned as they are.
 */
export function nonceBytes(extension: pkijs.Extension): Uint8Array {
  return nonceFromExtnValue(extension.extnValue.valueBlock.valueHexView);
}

/** The same from the extension's extnValue content (the bytes inside its OCTET STRING). */
export function nonceFromExtnValue(raw: Uint8Array): Uint8Array {
  const inner = asn1js.fromBER(raw, { parseEmbedded: false });
  return inner.offset === raw.byteLength && inner.result instanceof asn1js.OctetString
    ? new Uint8Array(inner.result.valueBlock.valueHexView)
    : new Uint8Array(raw);
}
