export { main } from "./cli.js";
export type { CliIo } from "./cli.js";
export { startLab, LAB_SERVER_NAME } from "./lab.js";
export type { Lab, LabOptions } from "./lab.js";
export { runScenarios, defaultClients, defaultJobs, knownClients, selectClients, selectScenarios } from "./run.js";
export type { ReportRow, RunOptions, RunReport, ScenarioResult, ScenarioStart, ScenarioTiming } from "./run.js";
export { formatTable, formatMismatches, summaryLine, SAME_MARKER, TABLE_WIDTH } from "./report.js";
export type { TableOptions } from "./report.js";
export { formatJunit } from "./junit.js";
export { formatHtml } from "./html.js";
export type { JunitOptions } from "./junit.js";
export { RunProgress, progressLine } from "./progress.js";
export type { ProgressStream, RunProgressOptions } from "./progress.js";
export {
  BUILT_IN_SCENARIO_DIR,
  CLASS_REFERENCE_CLIENT,
  CLIENT_CLASSES,
  SCALED_POLICY,
  builtInScenarios,
  compileScenario,
  expectedOutcome,
  loadScenarioFile,
} from "./scenarios.js";
export {
  certificateSchema,
  documentedSchema,
  expectSchema,
  scenarioFileSchema,
  timelineStepSchema,
  stepExpectSchema,
  TIMELINE_ACTIONS,
} from "./scenario-file.js";
export type { ScenarioFile, ScenarioFileInput, StepExpect, TimelineStep } from "./scenario-file.js";
export { STAPLER_CHECKS, STAPLER_CHECK_NAMES } from "./stapler-checks.js";
export type { CheckContext, CheckOutcome, StaplerCheckDefinition, StaplerCheckName } from "./stapler-checks.js";
export { applyStep, playTimeline } from "./timeline.js";
export { parseDuration, describeDurationError } from "./duration.js";
export { TurnClock } from "./turn-clock.js";
export type { ProbeResult, Scenario, ScenarioContext, StaplerCheck, StepObservation } from "./scenarios.js";
export { startPersistentLab, describeEndpoints, UP_POLICY } from "./up.js";
export type { LabEndpoints, UpOptions } from "./up.js";
export { revokeCertificate, describeRevocation } from "./revoke.js";
export type { RevokeOptions } from "./revoke.js";
export { setLabState, parseLabState, describeSetResult, LAB_STATES } from "./set.js";
export type { LabState, SetOptions, SetResult } from "./set.js";
export { findRunningLab, recordRunningLab, clearRunningLab, ADMIN_TOKEN_ENV } from "./running.js";
export type { RunningLab } from "./running.js";
export { NodeStrictClient } from "./clients/node-client.js";
export { CurlClient } from "./clients/curl-client.js";
export { OpensslClient } from "./clients/openssl-client.js";
export { GnutlsClient } from "./clients/gnutls-client.js";
export {
  CommandClient,
  COMMAND_CLIENT_NAME,
  DEFAULT_COMMAND_TIMEOUT_S,
  DEFAULT_REASONS,
  PLACEHOLDERS,
  RESERVED_CLIENT_NAMES,
  clientFileSchema,
  commandArgv,
  loadClientFile,
  parseClientCmd,
  splitWords,
} from "./clients/command-client.js";
export type { ClientFileInput, CommandClientSpec, Placeholder, RefusalRule } from "./clients/command-client.js";
export type { ClientClass, ClientDriver, ClientObservation, KeptSession, TlsTarget } from "./clients/client.js";
export {
  HarnessError,
  UsageError,
  ScenarioTimeoutError,
  PortInUseError,
  ServerUnderTestError,
  ScenarioFileError,
  LabNotRunningError,
  LabAdminError,
  LabOptionError,
  LabStateError,
  StapleTimeoutError,
  InvalidStepError,
  StateDirError,
  CommandClientError,
  ClientFileError,
} from "./errors.js";
export { describeLabEvent, describeRevokedCertificate, stapleEvent, watchLabEvents } from "./up.js";
export type { LabEvent, PersistentLab } from "./up.js";
export { applyLabStates, loadLabStates, saveLabState, SAVED_STATES_DIR } from "./set.js";
export type { SavedLabState } from "./set.js";
export { ancestry, watchParent } from "./running.js";
export { formatScenarioList } from "./cli.js";
export { OcspLab, StartedOcspLab, LabServer } from "./ocsp-lab.js";
export type { ServeOptions } from "./ocsp-lab.js";
export { LabResponder, serialOf } from "./lab-responder.js";
export type { LabSetOptions, LabStateInput, LeafRef } from "./lab-responder.js";
export { StapleWatch, STAPLE_STATES, BECOMES_TIMEOUT_MS } from "./staple-watch.js";
export type { BecomesOptions } from "./staple-watch.js";
export {
  runServerScenarios,
  knownServers,
  selectServers,
  selectServerScenarios,
  DEFAULT_SERVER_JOBS,
} from "./servers/run-servers.js";
export type { ServerRunOptions } from "./servers/run-servers.js";
export type {
  ServerDriver,
  ServerSetup,
  ServedFiles,
  ServerAvailability,
  StartedServerUnderTest,
} from "./servers/server.js";
export { NginxServer, nginxConfig } from "./servers/nginx-server.js";
export { ApacheServer, apacheConfig, APACHE_CACHE_TIMEOUT_S, APACHE_RESPONDER_TIMEOUT_S } from "./servers/apache-server.js";
export { HaproxyServer, haproxyConfig, HAPROXY_FEED_EVERY_S } from "./servers/haproxy-server.js";
export { StaplerServer, STAPLER_SERVER_POLICY } from "./servers/stapler-server.js";
export { probeStaple, PROBE_TIMEOUT_MS } from "./servers/staple-probe.js";
export type { StapleObservation } from "./servers/staple-probe.js";
export { SERVER_CHECKS, SERVER_CHECK_NAMES, stapleWord } from "./servers/server-checks.js";
export type { ServerCheck, ServerCheckContext, ServerCheckResult } from "./servers/server-checks.js";
export {
  serverScenarioFileSchema,
  loadServerScenarioFile,
  builtInServerScenarios,
  BUILT_IN_SERVER_SCENARIO_DIR,
} from "./servers/server-scenario.js";
export type { ServerScenario } from "./servers/server-scenario.js";
// Container targets: definitions and the engine check load no testcontainers (startContainerServer
// imports it when called); OcspLabContainer is in "@ocsp-lab/harness/container".
export { containerEngineAvailability } from "./container-engine.js";
export { ContainerError } from "./errors.js";
export type { ContainerEngineAvailability, ContainerEngineOptions } from "./container-engine.js";
export { CONTAINER_SERVERS, CONTAINER_SERVER_NAMES, startContainerServer } from "./container-servers.js";
export type {
  ContainerServerDefinition,
  ContainerServerName,
  ContainerServerOptions,
  StartedContainerServer,
} from "./container-servers.js";
