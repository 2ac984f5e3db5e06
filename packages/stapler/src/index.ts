export { StaplingServer, StartedStaplingServer } from "./stapling-server.js";
export type { StaplingServerEvents } from "./stapling-server.js";
export { splitPem, aiaOcspUrl } from "./certificates.js";
export type { ServedCertificate, CertificateFiles, TlsVersions } from "./certificates.js";
export type { Backend } from "./backends.js";
export type { AdminOptions } from "./admin.js";
export { MAX_ADMIN_BODY_BYTES } from "./admin.js";
export { StapleManager } from "./staple-manager.js";
export type {
  FetchOutcome,
  ResponseErrorName,
  StapleManagerEvents,
  StapleManagerOptions,
  StapleSnapshot,
  StapleSource,
  StapleState,
} from "./staple-manager.js";
export { StapleStore, STAPLES_FOLDER } from "./staple-store.js";
export {
  STAPLE_SOURCE_KINDS,
  toStapleSource,
  readStaple,
  stapleSourceConfigSchema,
} from "./staple-source.js";
export type { StapleSourceKind, StapleSourceSpec, StapleSourceInput, StapleSourceConfig } from "./staple-source.js";
export { StaplerMetrics } from "./metrics.js";
export {
  parsePolicy,
  pollingPolicySchema,
  MAX_SECONDS,
  STAPLING_MODES,
  ON_FAILURE_POLICIES,
  STARTUP_POLICIES,
  CERT_ID_HASHES,
} from "./policy.js";
export type {
  PollingPolicy,
  PollingPolicyInput,
  StaplingMode,
  OnFailurePolicy,
  StartupPolicy,
  CertIdHashName,
} from "./policy.js";
export { fetchOcsp, MAX_RESPONSE_BYTES } from "./fetcher.js";
export { loadStaplerConfig, startFromConfig, builderFromConfig, staplerConfigSchema, parseBackend } from "./config.js";
export type { StaplerConfig } from "./config.js";
export { staplerMain, staplerProcessIo } from "./cli.js";
export type { StaplerCliIo } from "./cli.js";
export {
  StaplerError,
  InvalidPolicyError,
  CertificateSetupError,
  FetchError,
  ConfigError,
  ReloadError,
  InvalidStapleSourceError,
  AdminExposedError,
  StateDirError,
} from "./errors.js";
export type { FetchFailureKind } from "./errors.js";
