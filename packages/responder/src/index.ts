export { OcspResponder, StartedOcspResponder, assertAdminProtected } from "./responder.js";
export type { AdminOptions } from "./responder.js";
export { createResponderApp, routeRequests } from "./app.js";
export type { CrlSource, ResponderAppDeps } from "./app.js";
export { createOcspHandler, MAX_REQUEST_BYTES } from "./http-handler.js";
export { decodeGetPath, getRequestKey, plainCertIdKey, postRequestKey } from "./request-key.js";
export type { OcspHandlerDeps } from "./http-handler.js";
export { createAdminRouter, MAX_ADMIN_BODY_BYTES } from "./admin.js";
export { MAX_CERT_IDS_PER_REQUEST } from "./limits.js";
export type { AdminDeps } from "./admin.js";
export { ResponderMetrics } from "./metrics.js";
export { CachedAnswer, OcspService, MAX_NONCE_LENGTH } from "./ocsp-service.js";
export { AnswerCache, DEFAULT_CACHE_MAX_BYTES, ENTRY_OVERHEAD_BYTES } from "./answer-cache.js";
export type { CacheEntry, IssuerIds } from "./answer-cache.js";
export type { Answer, OcspServiceOptions, SigningOptions } from "./ocsp-service.js";
export {
  Behaviour,
  CONTENT_FLAWS,
  ERROR_STATUSES,
  FAULT_KINDS,
  actionSchema,
  behaviourSchema,
  parseBehaviour,
  stepSchema,
} from "./behaviour.js";
export type {
  Action,
  ActionInput,
  BehaviourInput,
  BehaviourSpec,
  ContentFlaw,
  Fault,
  FaultKind,
  Resolved,
  Scope,
  StatusOverride,
} from "./behaviour.js";
export { RequestLog } from "./request-log.js";
export type { RequestLogEntry, RequestQuery } from "./request-log.js";
export { CaStatusSource, CompositeStatusSource } from "./status-source.js";
export type { ServedIssuer, SignerDefect, StatusSource } from "./status-source.js";
export {
  ResponderError,
  InvalidBehaviourError,
  ResponderStateError,
  WaitTimeoutError,
  ConfigError,
  AdminExposedError,
  ListenError,
  CaFolderError,
} from "./errors.js";
export { loadResponderConfig, responderConfigSchema, startFromConfig } from "./config.js";
export type { ResponderConfig } from "./config.js";
export { responderMain } from "./cli.js";
export type { ResponderCliIo } from "./cli.js";
