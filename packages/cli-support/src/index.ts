export {
  configureProgram,
  isMainModule,
  packageVersion,
  portOption,
  processIo,
  describeZodIssues,
  readConfigFile,
  runProgram,
  serviceOptions,
} from "./cli-support.js";
export type { CliIo, ServiceIo } from "./cli-support.js";
export { resolveStateDir, STATE_DIR_ENV, DEFAULT_STATE_DIR } from "./state-dir.js";
export { bearerAuth } from "./bearer-auth.js";
export { adminGuard, isLoopbackHost } from "./admin-guard.js";
export type { AdminGuardOptions } from "./admin-guard.js";
export { describeSystemError, isSystemError } from "./system-errors.js";
export type { SystemError } from "./system-errors.js";
