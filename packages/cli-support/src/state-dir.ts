import { resolve } from "node:path";

/** The environment variable that moves the state folder (like mkcert's CAROOT). */
export const STATE_DIR_ENV = "OCSP_LAB_HOME";

/** Default state folder name, created in the current directory. */
export const DEFAULT_STATE_DIR = ".ocsp-lab";

/**
 * Where the lab keeps its CA: `explicit` if given, else $OCSP_LAB_HOME, else `.ocsp-lab/` in
 * `cwd`. Returned absolute.
 */
export function resolveStateDir(explicit?: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  return resolve(cwd, explicit || env[STATE_DIR_ENV] || DEFAULT_STATE_DIR);
}
