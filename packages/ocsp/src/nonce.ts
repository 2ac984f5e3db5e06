import * as asn1js from "asn1js";
import type * as pkijs from "pkijs";

/**
 * The nonce bytes of an id-pkix-ocsp-nonce extension. RFC 8954 §2.1 wraps them in an OCTET
 * STRING inside extnValue (`Nonce ::= OCTET STRING (SIZE(1..32))`); some older clients put the
 * raw bytes there, which are returned as they are.
 */
export function nonceBytes(extension: pkijs.Extension): Uint8Array {
  const raw = extension.extnValue.valueBlock.valueHexView;
  const inner = asn1js.fromBER(raw);
  return inner.offset === raw.byteLength && inner.result instanceof asn1js.OctetString
    ? new Uint8Array(inner.result.valueBlock.valueHexView)
    : new Uint8Array(raw);
}
