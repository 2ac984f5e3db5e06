export { CertificateAuthority, DEFAULT_CRL_VALIDITY_SECONDS } from "./certificate-authority.js";
export type {
  CaInitOptions,
  CaOpenOptions,
  IssueOptions,
  IssueServerOptions,
  IssuedCertificate,
  PublishedCrls,
  RevokeOptions,
  SerialStatus,
  Signer,
} from "./certificate-authority.js";
export { caMain } from "./cli.js";
export { configureProgram, isMainModule, portOption, processIo, readConfigFile, runProgram, serviceOptions } from "./cli-support.js";
export type { CliIo, ServiceIo } from "./cli-support.js";
export { CrlGenerator, crlToPem } from "./crl/crl-generator.js";
export type { CrlEntryParams, CrlParams } from "./crl/crl-generator.js";
export { toOpensslIndex } from "./export/openssl-index.js";
export type { IndexEntry } from "./export/openssl-index.js";
export { toPkcs12 } from "./export/pkcs12.js";
export type { Pkcs12Params } from "./export/pkcs12.js";
export { PROFILES, SIGNER_FLAWS } from "./profiles.js";
export type { AltNames, Locations, Profile, SignerFlaw } from "./profiles.js";
export { subjectName } from "./subject.js";
export type { SubjectFields } from "./subject.js";
export { serialOfTarget } from "./target.js";
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
  InvalidCsrError,
  LockTimeoutError,
  OcspDecodeError,
  OcspVerifyError,
} from "./errors.js";
export type { OcspVerifyFailure } from "./errors.js";
export {
  KEY_TYPES,
  defaultCrypto,
  generateKeyPair,
  isRsa,
  keyAlgorithm,
  keyTypeOf,
  parseKeyType,
  signingAlgorithm,
  signingHash,
  privateKeyFromPem,
  privateKeyToPem,
} from "./keys.js";
export type { KeyType } from "./keys.js";
export { newSerial, normalizeSerial } from "./serial.js";
export { FileStore, DATABASE_FILE, WATCH_INTERVAL_MS } from "./store.js";
export type { CaDatabase, CertificateKind, CertificateRecord, CrlState, RevocationRecord } from "./store.js";
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
