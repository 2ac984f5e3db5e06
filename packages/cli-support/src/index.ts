export {
  configureProgram,
  isMainModule,
  packageVersion,
  portOption,
  processIo,
  readConfigFile,
  runProgram,
  serviceOptions,
} from "./cli-support.js";
export type { CliIo, ServiceIo } from "./cli-support.js";
export { resolveStateDir, STATE_DIR_ENV, DEFAULT_STATE_DIR } from "./state-dir.js";
export { bearerAuth } from "./bearer-auth.js";
