export { CertificateAuthority } from "./certificate-authority.js";
export type { CaInitOptions, CaOpenOptions, RevokeOptions, SerialStatus } from "./certificate-authority.js";
export type { IssueOptions, IssueServerOptions, IssuedCertificate } from "./issuance.js";
export { DEFAULT_CRL_VALIDITY_SECONDS } from "./crl/crl-publisher.js";
export type { PublishedCrls } from "./crl/crl-publisher.js";
export { CrlGenerator, crlToPem } from "./crl/crl-generator.js";
export type { CrlEntryParams, CrlParams } from "./crl/crl-generator.js";
export { toOpensslIndex } from "./export/openssl-index.js";
export type { IndexEntry } from "./export/openssl-index.js";
export { toPemBundle } from "./export/pem-bundle.js";
export type { PemBundleParams } from "./export/pem-bundle.js";
export { toPkcs12 } from "./export/pkcs12.js";
export type { Pkcs12Params } from "./export/pkcs12.js";
export { PROFILES, SIGNER_FLAWS } from "./profiles.js";
export type { AltNames, Locations, Profile, SignerFlaw } from "./profiles.js";
export { subjectName } from "./subject.js";
export type { SubjectFields } from "./subject.js";
export { serialOfTarget } from "./target.js";
export {
  CaError,
  StateNotFoundError,
  StateCorruptError,
  StateExistsError,
  UnknownSerialError,
  InvalidArgumentError,
  InvalidCsrError,
  LockTimeoutError,
  LockLostError,
  StoreConflictError,
  AlreadyRevokedError,
  CrlNotPublishedError,
} from "./errors.js";
export {
  KEY_TYPES,
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
export type { KeyType, Signer } from "./keys.js";
export { newSerial } from "./serial.js";
export {
  FileStore,
  DATABASE_FILE,
  LOCK_FILE,
  DEFAULT_LOCK_TIMEOUT_MS,
  PAUSE_BEFORE_COMMIT_ENV,
  WATCH_INTERVAL_MS,
  parseDatabase,
} from "./store.js";
export type { CaDatabase, CertificateKind, CertificateRecord, CrlState, FileStoreOptions, RevocationRecord } from "./store.js";
export type { LockHolder, Liveness } from "./lock.js";
export { describeLockHolder } from "./lock.js";
