/**
 * Request keys: the exact bytes of an OCSP request as the HTTP layer received it, as a string
 * (a Map key), and the CertID they stand for when the request has the plain shape every RFC 5019
 * client sends. One concept: how the cache finds an answer without decoding the request.
 */

/** The request key of a POST body: `P` and the body's bytes, one character per byte. */
export function postRequestKey(body: Uint8Array): string {
  return `P${Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("latin1")}`;
}

/** The request key of a GET: `G` and the request URL as received (path and query). */
export function getRequestKey(url: string): string {
  return `G${url}`;
}

/**
 * The DER request of an RFC 6960 Appendix A.1 GET path (`/{url-encoding of base-64 encoding of
 * the DER encoding of the OCSPRequest}`): a doubled leading slash, base64url, and `+` turned
 * into a space by a proxy are accepted. Undefined for an empty path, bad URL encoding or bad
 * base64; the DER itself is not checked here.
 */
export function decodeGetPath(url: string): Uint8Array | undefined {
  const path = url.split("?")[0]!.replace(/^\/+/, "");
  if (path === "") return undefined;
  let b64: string;
  try {
    b64 = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  // Some clients leave `+` unescaped and proxies turn it into a space.
  b64 = b64.replace(/ /g, "+").replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.replace(/=+$/, "").length % 4 === 1) return undefined;
  const der = Buffer.from(b64, "base64");
  return der.length === 0 ? undefined : new Uint8Array(der);
}

/** Bytes of the four SEQUENCE headers around the CertID of a plain request. */
const PLAIN_HEADER = 8;
/** Short-form DER lengths only (X.690 §8.1.3.4): an OCSPRequest of at most 129 bytes. */
const SHORT_FORM_MAX = 0x7f;

/**
 * Whether `at(i)` (byte i of a request of `length` bytes) is the plain RFC 5019 §2.1.1 request:
 * one CertID and nothing else, every length in short form.
 *
 * ```asn1
 * OCSPRequest ::= SEQUENCE {            -- 30 n-2
 *    tbsRequest   TBSRequest }          -- no optionalSignature
 * TBSRequest ::= SEQUENCE {             -- 30 n-4: no version [0], no requestorName [1]
 *    requestList  SEQUENCE OF Request } -- 30 n-6, no requestExtensions [2]
 * Request ::= SEQUENCE {                -- 30 n-8: no singleRequestExtensions [0]
 *    reqCert      CertID }              -- the rest, n-8 bytes
 * ```
 *
 * With every length exact, the one element of each SEQUENCE spans all of it: a CertID found
 * under the rest's bytes (a CertID decoded before, held as a cache key) is the whole request.
 */
function isPlain(length: number, at: (i: number) => number): boolean {
  if (length <= PLAIN_HEADER || length - 2 > SHORT_FORM_MAX) return false;
  for (let i = 0; i < PLAIN_HEADER; i += 2) {
    if (at(i) !== 0x30 || at(i + 1) !== length - i - 2) return false;
  }
  return true;
}

/**
 * The CertID key (its DER, one character per byte, as OcspService keys answers) of a request
 * key whose request is plain (see isPlain), else undefined. A POST key costs one string slice;
 * a GET key a base64 decoding. What it returns is a candidate: only a CertID key held by the
 * cache finds an answer.
 */
export function plainCertIdKey(requestKey: string): string | undefined {
  if (requestKey.charCodeAt(0) === 0x50 /* P */) {
    return isPlain(requestKey.length - 1, (i) => requestKey.charCodeAt(i + 1)) ? requestKey.slice(1 + PLAIN_HEADER) : undefined;
  }
  if (requestKey.charCodeAt(0) !== 0x47 /* G */) return undefined;
  const der = fastGetPath(requestKey) ?? decodeGetPath(requestKey.slice(1));
  if (!der || !isPlain(der.byteLength, (i) => der[i]!)) return undefined;
  return Buffer.from(der.buffer, der.byteOffset + PLAIN_HEADER, der.byteLength - PLAIN_HEADER).toString("latin1");
}

/** What clients percent-escape in a base64 GET path (RFC 6960 Appendix A.1): `+`, `/`, `=`. */
const UNESCAPED: Record<string, string> = { "%2B": "+", "%2b": "+", "%2F": "/", "%2f": "/", "%3D": "=", "%3d": "=" };
/** Standard or url-safe base64 with its padding: what Buffer.from(…, "base64") reads as written. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * decodeGetPath for the GET paths clients send (`/` or `//`, base64 with `+ / =` escaped or
 * not, standard or url alphabet, no query), without decodeURIComponent and its rewrites: it runs
 * on every cached GET (a fifth of the time decodeGetPath takes). Undefined for anything else,
 * which decodeGetPath then decides on; where both decode, they give the same bytes.
 */
function fastGetPath(requestKey: string): Buffer | undefined {
  const start = requestKey.charCodeAt(2) === 0x2f /* a doubled slash */ ? 3 : 2;
  let b64 = requestKey.slice(start);
  let at = b64.indexOf("%");
  if (at !== -1) {
    // One or two escapes in practice: a loop over them beats a replace with a callback.
    let plain = "";
    let from = 0;
    while (at !== -1) {
      const char = UNESCAPED[b64.slice(at, at + 3)];
      if (char === undefined) return undefined;
      plain += b64.slice(from, at) + char;
      from = at + 3;
      at = b64.indexOf("%", from);
    }
    b64 = plain + b64.slice(from);
  }
  if (!BASE64.test(b64)) return undefined;
  let end = b64.length;
  while (end > 0 && b64.charCodeAt(end - 1) === 0x3d /* = */) end--;
  return end % 4 === 1 ? undefined : Buffer.from(b64, "base64");
}
