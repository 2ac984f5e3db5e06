export { CertificateAuthority } from "./certificate-authority.js";
export type {
  CaInitOptions,
  CaOpenOptions,
  IssueServerOptions,
  IssuedCertificate,
  SerialStatus,
  Signer,
} from "./certificate-authority.js";
export { systemClock } from "./clock.js";
export type { Clock } from "./clock.js";
export { CRLReason, CRL_REASON_NAMES, parseCrlReason, crlReasonName } from "./crl-reason.js";
export {
  CaError,
  StateNotFoundError,
  StateCorruptError,
  StateExistsError,
  UnknownSerialError,
  InvalidReasonError,
  InvalidSerialError,
  InvalidArgumentError,
  LockTimeoutError,
  OcspDecodeError,
  OcspVerifyError,
} from "./errors.js";
export type { OcspVerifyFailure } from "./errors.js";
export { KEY_TYPES, defaultCrypto, generateKeyPair, keyAlgorithm, signingAlgorithm, privateKeyFromPem, privateKeyToPem } from "./keys.js";
export type { KeyType } from "./keys.js";
export { newSerial, normalizeSerial } from "./serial.js";
export { FileStore, DATABASE_FILE, WATCH_INTERVAL_MS } from "./store.js";
export type { CaDatabase, CertificateKind, CertificateRecord, RevocationRecord } from "./store.js";
export { resolveStateDir, STATE_DIR_ENV, DEFAULT_STATE_DIR } from "./state-dir.js";
export { OID, HASH_OIDS, hashNameFromOid } from "./ocsp/oids.js";
export type { CertIdHash } from "./ocsp/oids.js";
export { OCSPResponseStatus, CertStatus, certStatusName, responseStatusName } from "./ocsp/response-status.js";
export type { CertStatusName } from "./ocsp/response-status.js";
export { createCertId, issuerHashes, readCertId, sameCertId } from "./ocsp/cert-id.js";
export type { CertIdFields } from "./ocsp/cert-id.js";
export { buildOcspRequest, parseOcspRequest } from "./ocsp/ocsp-request.js";
export type { BuiltOcspRequest, OcspRequestParams, ParsedOcspRequest } from "./ocsp/ocsp-request.js";
export { OcspResponse, verifyOcspResponse, DEFAULT_MAX_SKEW_MS } from "./ocsp/ocsp-response.js";
export type { ResponderIdView, SingleResponseView, VerifiedOcspResponse, VerifyOcspOptions } from "./ocsp/ocsp-response.js";
export { pkiEngine, toPkiCertificate } from "./ocsp/engine.js";
