import { readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { readConfigFile } from "@ocsp-lab/cli-support";
import { durationSchema } from "../duration.js";
import { ScenarioFileError } from "../errors.js";
import { SERVER_CHECK_NAMES } from "./server-checks.js";

/** A duration written `250ms`, `2s`, `1h` (see parseDuration), as milliseconds. */
const duration = durationSchema;

/**
 * A server scenario file (YAML or JSON): one thing a stapling server must get right, run
 * against each server under test (`ocsp-lab run --server nginx,apache,haproxy,stapler`).
 * - `check`: the code that drives and watches the server (SERVER_CHECKS: first-handshake,
 *   revocation, responder-down, responder-hang, responder-recovers, renewal);
 * - `within`: the window the check watches for, default 8s;
 * - `response_validity`: the responder's nextUpdate − thisUpdate, whole seconds, default 1h;
 * - `expect`: per server name, the words the check must observe (what the server's
 *   documentation says it does); a server named nowhere gets a row that only reports;
 * - `documented`: per server, where its documentation says so.
 */
export const serverScenarioFileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "a name is letters, digits, '.', '_' and '-'"),
    description: z.string().min(1),
    check: z.enum(SERVER_CHECK_NAMES),
    within: duration.default(8000),
    response_validity: duration
      .refine((ms) => ms >= 1000 && ms % 1000 === 0, { message: "give whole seconds, at least 1s" })
      .default(3_600_000),
    expect: z.record(z.string().regex(/^[a-z0-9][a-z0-9._:-]*$/i), z.string().min(1)),
    documented: z.record(z.string(), z.string().min(1)).optional(),
  })
  .strict();

/** A parsed server scenario file. */
export type ServerScenario = z.output<typeof serverScenarioFileSchema> & {
  /** The file it came from. */
  file: string;
};

/** Folder of the built-in server scenarios (`packages/harness/server-scenarios`). */
export const BUILT_IN_SERVER_SCENARIO_DIR = fileURLToPath(new URL("../../server-scenarios/", import.meta.url));

/**
 * Read and validate one server scenario file.
 * @throws ScenarioFileError naming the file and the field.
 */
export async function loadServerScenarioFile(path: string): Promise<ServerScenario> {
  const file = await readConfigFile(
    path,
    serverScenarioFileSchema,
    (field, problem, cause) => new ScenarioFileError(path, field, problem, { cause }),
  );
  return { ...file, file: basename(path) };
}

/**
 * The built-in server scenarios, sorted by file name.
 * @throws ScenarioFileError for a file that does not validate.
 */
export async function builtInServerScenarios(): Promise<ServerScenario[]> {
  const names = (await readdir(BUILT_IN_SERVER_SCENARIO_DIR)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  return Promise.all(names.map((n) => loadServerScenarioFile(join(BUILT_IN_SERVER_SCENARIO_DIR, n))));
}
