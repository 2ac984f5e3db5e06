import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { readFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";

/** Streams and environment a command uses, injectable so tests read output without a child process. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** A long-running command's io: its streams plus a hook that resolves when it is asked to stop. */
export interface ServiceIo extends CliIo {
  /** Resolves with the signal name on the first SIGINT or SIGTERM. */
  stopSignal: () => Promise<string>;
}

/** The real process's streams, environment and SIGINT/SIGTERM. */
export function processIo(): ServiceIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    stopSignal: () =>
      new Promise((resolve) => {
        process.once("SIGINT", () => resolve("SIGINT"));
        process.once("SIGTERM", () => resolve("SIGTERM"));
      }),
  };
}

/**
 * The `version` of the package a module belongs to: the nearest package.json above the module
 * at `moduleUrl` (its `import.meta.url`). Undefined when none is found or it has no version.
 */
export function packageVersion(moduleUrl: string): string | undefined {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown };
      return typeof manifest.version === "string" ? manifest.version : undefined;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return undefined;
      dir = parent;
    }
  }
}

/**
 * Route a commander program's output to `io` and make its usage errors one line:
 * `<name>: <what is wrong> (see <name> --help)`. With `moduleUrl` (the command module's
 * `import.meta.url`), `-V, --version` prints its package's version. Returns the program.
 */
export function configureProgram(program: Command, name: string, io: CliIo, moduleUrl?: string): Command {
  const version = moduleUrl ? packageVersion(moduleUrl) : undefined;
  if (version) program.version(version, "-V, --version", "print the version and exit");
  return program.exitOverride().configureOutput({
    writeOut: (s) => io.stdout.write(s),
    writeErr: (s) => io.stderr.write(s),
    outputError: (s, write) => write(`${name}: ${s.replace(/^error: /, "").trimEnd()} (see ${name} --help)\n`),
  });
}

/**
 * Parse and run `argv`; resolve with the exit code: 0 success (and help), 2 usage error, 1 any
 * other failure. Every error is printed as one line without a stack trace (`OCSP_LAB_DEBUG=1`
 * adds it); errors of ours (code `OCSP_LAB_*`) print their message, others are marked
 * unexpected. `usageCodes` lists error codes that count as usage errors (exit 2).
 */
export async function runProgram(
  program: Command,
  name: string,
  argv: string[],
  io: CliIo,
  usageCodes: readonly string[] = [],
): Promise<number> {
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0 || err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      // An InvalidArgumentError thrown from an action has not been printed by commander.
      if (err.code === "commander.invalidArgument" && !err.message.startsWith("error:"))
        io.stderr.write(`${name}: ${err.message}\n`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown }).code;
    const known = typeof code === "string" && code.startsWith("OCSP_LAB_");
    io.stderr.write(`${name}: ${known ? message : `unexpected error: ${message}`}\n`);
    if (io.env.OCSP_LAB_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return known && usageCodes.includes(code as string) ? 2 : 1;
  }
}

/** True when the module at `moduleUrl` (its `import.meta.url`) is the process entry, not an import. */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

/**
 * A `--port <port>` option (0..65535, 0: any free port) that overrides a config's listen.port.
 * Commander reports a bad value as a usage error naming it.
 */
export function portOption(description = "override listen.port"): Option {
  return new Option("--port <port>", description).argParser((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new InvalidArgumentError(`--port must be a whole number 0..65535, got "${v}"`);
    return n;
  });
}

/**
 * Read a YAML (or JSON) configuration file and validate it with a zod schema. Every failure
 * goes through `fail(field, problem, cause)`, which builds the package's own ConfigError:
 * an unreadable file, invalid YAML, or the deepest schema issue (for a union, the branch that
 * got furthest, so the message names the field that is actually wrong).
 */
export async function readConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  fail: (field: string, problem: string, cause?: unknown) => Error,
): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw fail("", `cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); check the path`, cause);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (cause) {
    throw fail("", `not valid YAML: ${(cause as Error).message.split("\n")[0]}`, cause);
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = [...result.error.issues].sort((a, b) => b.path.length - a.path.length)[0]!;
  const deepest = deepestUnionIssue(issue);
  throw fail(deepest.path.join("."), deepest.message);
}

function deepestUnionIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union") return issue;
  const all = issue.errors.flat().map((i) => ({ ...i, path: [...issue.path, ...i.path] }));
  return all.sort((a, b) => b.path.length - a.path.length)[0] ?? issue;
}

/**
 * The options every long-running ocsp-lab service command shares: `--config <file>` (required),
 * `--check`, `--port` (portOption) and `--host`, overriding the config's listen block. Returns
 * the program.
 */
export function serviceOptions(program: Command): Command {
  return program
    .requiredOption("--config <file>", "configuration file (YAML or JSON)")
    .option("--check", "validate the configuration and exit")
    .addOption(portOption())
    .option("--host <host>", "override listen.host");
}
