import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { readFile } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { describeSystemError } from "./system-errors.js";

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
 * adds it); errors of ours (code `OCSP_LAB_*`) print their message, a file-system or listen
 * error (EACCES, EADDRINUSE...) what it means and the fix (describeSystemError), others are
 * marked unexpected. `usageCodes` lists error codes that count as usage errors (exit 2).
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
    // A file-system or listen error no caller put in context: still what is wrong and the fix.
    const system = known ? undefined : describeSystemError(err);
    io.stderr.write(`${name}: ${known ? message : (system ?? `unexpected error: ${message}`)}\n`);
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
    const code = (cause as NodeJS.ErrnoException).code;
    const fix =
      code === "EACCES" || code === "EPERM"
        ? "permission denied: check its owner and mode"
        : code === "EISDIR"
          ? "it is a folder: give the config file's path"
          : "check the path";
    throw fail("", `cannot read it (${code ?? String(cause)}); ${fix}`, cause);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (cause) {
    throw fail("", `not valid YAML: ${(cause as Error).message.split("\n")[0]}`, cause);
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const { field, problem } = describeZodIssues(result.error.issues);
  throw fail(field, problem);
}

/**
 * The one issue of a failed zod parse to report, as a dotted field and a problem: the deepest
 * issue; inside a union, the deepest issue of the branch that got furthest (fewest issues, then
 * deepest), so the message names the field that is actually wrong. An unknown key (a `.strict()`
 * object) is named itself: field `listen.colour`, problem `unknown key "colour" (…)`; its value
 * is never printed (it may be anything, a pasted key included).
 */
export function describeZodIssues(issues: readonly z.core.$ZodIssue[]): { field: string; problem: string } {
  const issue = [...issues].sort((a, b) => b.path.length - a.path.length)[0]!;
  const chosen = deepestUnionIssue(issue);
  if (chosen.code === "unrecognized_keys") {
    const keys = chosen.keys;
    const path = [...chosen.path, keys[0]!].join(".");
    return {
      field: path,
      problem: `unknown key${keys.length > 1 ? `s ${keys.map((k) => JSON.stringify(k)).join(", ")}` : ` ${JSON.stringify(keys[0])}`}: misspelt, or not a key here`,
    };
  }
  return { field: chosen.path.join("."), problem: chosen.message };
}

function deepestUnionIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return issue;
  const depth = (list: z.core.$ZodIssue[]): number => Math.max(0, ...list.map((i) => i.path.length));
  // The branch that got furthest: the fewest issues, then the deepest one.
  const best = [...issue.errors].sort((a, b) => a.length - b.length || depth(b) - depth(a))[0]!;
  const within = best.map((i) => ({ ...i, path: [...issue.path, ...i.path] }) as z.core.$ZodIssue);
  if (within.length === 0) return issue;
  return deepestUnionIssue(within.sort((a, b) => b.path.length - a.path.length)[0]!);
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
