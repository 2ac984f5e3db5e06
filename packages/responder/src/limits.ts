/**
 * Most CertIDs (Request entries of requestList, RFC 6960 §4.1.1) answered in one OCSPRequest;
 * a request with more is answered malformedRequest (RFC 6960 §2.3), unsigned.
 *
 * Why 16: RFC 5019 §2.1.1 (the profile every browser, nginx, Apache and HAProxy follow) says a
 * client MUST put one Request in the requestList; Go's x/crypto/ocsp (Boulder, cfssl) parses
 * the first Request only; Microsoft's Online Responder makes the number a setting
 * (MaxNumOfRequestEntries). Clients that send several (`openssl ocsp -cert a -cert b`) ask
 * about a chain or a handful of certificates, never dozens. Without a cap one 64 KiB request
 * (about 900 SHA-1 CertIDs) makes the responder build and sign a response ~900 times the usual
 * size; 16 leaves room for every real client and for tests of multi-CertID handling.
 */
export const MAX_CERT_IDS_PER_REQUEST = 16;
