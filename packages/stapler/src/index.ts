export { StaplingServer, StartedStaplingServer, splitPem, aiaOcspUrl } from "./stapling-server.js";
export type { ServedCertificate } from "./stapling-server.js";
export { StapleManager } from "./staple-manager.js";
export type { FetchOutcome, StapleManagerEvents, StapleManagerOptions, StapleSnapshot, StapleState } from "./staple-manager.js";
export { parsePolicy, pollingPolicySchema } from "./policy.js";
export type { PollingPolicy, PollingPolicyInput } from "./policy.js";
export { fetchOcsp, MAX_RESPONSE_BYTES } from "./fetcher.js";
export { StaplerError, InvalidPolicyError, CertificateSetupError, FetchError } from "./errors.js";
export type { FetchFailureKind } from "./errors.js";
