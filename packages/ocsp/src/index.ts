export { OcspLabError, OcspDecodeError, OcspVerifyError, InvalidSerialError, InvalidReasonError } from "./errors.js";
export type { OcspVerifyFailure } from "./errors.js";
export { systemClock, ManualClock, settle, timerDelay, MAX_TIMER_MS } from "./clock.js";
export type { Clock, Timer } from "./clock.js";
export { defaultCrypto } from "./crypto.js";
export { normalizeSerial, serialFromBytes } from "./serial.js";
export { CRLReason, CRL_REASON_NAMES, parseCrlReason, crlReasonName } from "./crl-reason.js";
export { OID, HASH_OIDS, hashNameFromOid } from "./oids.js";
export type { CertIdHash } from "./oids.js";
export {
  OCSPResponseStatus,
  CertStatusTag,
  CERT_STATUS_NAMES,
  UNSUCCESSFUL_STATUS_NAMES,
  certStatusName,
  responseStatusName,
} from "./cert-status.js";
export type { CertStatus, CertStatusName, RevokedInfo, UnsuccessfulStatusName } from "./cert-status.js";
export { UNSUCCESSFUL_RESPONSES, unsuccessfulResponse } from "./unsuccessful-responses.js";
export type { UnsuccessfulStatus } from "./unsuccessful-responses.js";
export { pkiEngine, toPkiCertificate, toX509Certificate, plainBytes } from "./engine.js";
export { nonceBytes } from "./nonce.js";
export { createCertId, issuerHashes, readCertId, sameCertId } from "./cert-id.js";
export type { CertIdFields } from "./cert-id.js";
export { buildOcspRequest, parseOcspRequest } from "./ocsp-request.js";
export type { BuiltOcspRequest, OcspRequestParams, ParsedOcspRequest } from "./ocsp-request.js";
export { OcspResponse } from "./ocsp-response.js";
export type { ResponderIdView, SingleResponseView } from "./ocsp-response.js";
export { verifyOcspResponse, DEFAULT_MAX_SKEW_MS } from "./verify.js";
export type { VerifiedOcspResponse, VerifyOcspOptions } from "./verify.js";
export { OcspResponseGenerator } from "./response-generator.js";
export type { BasicResponseParams, OcspSigner, SingleResponseParams } from "./response-generator.js";
export { OcspResponseSigner, encodeExtension, encodeNonceExtension, otherSerialCertId } from "./response-signer.js";
export type { EncodedSingleResponseParams, ResponseSignerOptions, SignResponseParams } from "./response-signer.js";
export { OcspRequestDecoder } from "./request-decoder.js";
