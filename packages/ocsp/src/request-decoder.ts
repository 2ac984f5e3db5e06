import { parseOcspRequest, type ParsedOcspRequest } from "./ocsp-request.js";

/** A request decoded once, kept to recognise the same request with another nonce. */
interface Template {
  der: Uint8Array;
  parsed: ParsedOcspRequest;
  nonceOffset: number;
  nonceLength: number;
  /** Where the nonce Extension starts and ends in `der`. */
  extensionStart: number;
  extensionEnd: number;
}

/** Templates kept per request length, most recent first. */
const PER_LENGTH = 4;
/** Templates kept in all; past it they start over. */
const DEFAULT_MAX_TEMPLATES = 1024;

/**
 * Decodes OCSP requests with parseOcspRequest (RFC 6960 §4.1.1), and remembers the requests
 * that carry an RFC 8954 nonce: a client asking again about the same certificates sends the same
 * bytes but for the nonce's own content octets (a fresh nonce of the same length). A request
 * equal to a remembered one outside those octets decodes to the same fields, so it is answered
 * from the remembered decoding with its own nonce, without decoding it again: nothing but the
 * content octets of the nonce's OCTET STRING may differ, and those are opaque to the decoder (no
 * tag, length or structure is read from them here or anywhere). What differs anywhere else, even
 * by a bit, is decoded in full.
 *
 * Bounded: at most `maxTemplates` requests (default 1024, a few hundred bytes each), at most 4
 * per request length; past the bound it starts over.
 */
export class OcspRequestDecoder {
  private readonly byLength = new Map<number, Template[]>();
  private count = 0;
  private readonly maxTemplates: number;

  /** A decoder keeping at most `options.maxTemplates` remembered requests. */
  constructor(options: { maxTemplates?: number } = {}) {
    this.maxTemplates = options.maxTemplates ?? DEFAULT_MAX_TEMPLATES;
  }

  /**
   * The fields of `der`, as parseOcspRequest gives them.
   * @throws OcspDecodeError as parseOcspRequest does.
   */
  decode(der: Uint8Array): ParsedOcspRequest {
    const candidates = this.byLength.get(der.byteLength);
    if (candidates) {
      for (const t of candidates) if (sameOutside(der, t)) return withNonce(t, der);
    }
    const parsed = parseOcspRequest(der);
    if (this.maxTemplates > 0) this.remember(der, parsed);
    return parsed;
  }

  private remember(der: Uint8Array, parsed: ParsedOcspRequest): void {
    const { nonce, nonceOffset, nonceExtension } = parsed;
    if (nonce === undefined || nonceOffset === undefined || nonceExtension === undefined || nonce.byteLength === 0) return;
    // The nonce is the tail of its extension (extnValue is the extension's last element).
    const extensionEnd = nonceOffset + nonce.byteLength;
    const extensionStart = extensionEnd - nonceExtension.byteLength;
    if (extensionStart < 0 || !equal(der.subarray(extensionStart, extensionEnd), nonceExtension)) return;
    if (this.count >= this.maxTemplates) {
      this.byLength.clear();
      this.count = 0;
    }
    const own = der.slice();
    const template: Template = {
      der: own,
      parsed: { ...parsed, nonce: undefined, nonceExtension: undefined },
      nonceOffset,
      nonceLength: nonce.byteLength,
      extensionStart,
      extensionEnd,
    };
    const list = this.byLength.get(der.byteLength) ?? [];
    list.unshift(template);
    this.count += 1;
    if (list.length > PER_LENGTH) {
      list.pop();
      this.count -= 1;
    }
    this.byLength.set(der.byteLength, list);
  }
}

function view(v: Uint8Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && view(a).equals(view(b));
}

/** Whether `der` equals the template's request everywhere but its nonce's content octets. */
function sameOutside(der: Uint8Array, t: Template): boolean {
  const end = t.nonceOffset + t.nonceLength;
  return equal(der.subarray(0, t.nonceOffset), t.der.subarray(0, t.nonceOffset)) && equal(der.subarray(end), t.der.subarray(end));
}

/** The template's fields with the nonce of `der`. */
function withNonce(t: Template, der: Uint8Array): ParsedOcspRequest {
  const own = der.slice(t.extensionStart, t.extensionEnd);
  return {
    ...t.parsed,
    nonceExtension: own,
    nonce: own.subarray(own.byteLength - t.nonceLength),
    nonceOffset: t.nonceOffset,
  };
}
