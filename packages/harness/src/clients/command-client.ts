import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { basename, delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { readConfigFile } from "@ocsp-lab/cli-support";
import { ClientFileError, CommandClientError } from "../errors.js";
import type { ClientClass, ClientDriver, ClientObservation, TlsTarget } from "./client.js";
import { execCapture } from "./exec.js";

/**
 * The placeholders a command template may use, each replaced by one value (inside the word it
 * is in, never splitting it): `{host}` (IP to connect to, e.g. 127.0.0.1), `{port}`,
 * `{servername}` (SNI and the name to check, e.g. localhost), `{cafile}` (PEM file of the lab's
 * root CA) and `{dir}` (the client file's folder; the working folder for `--client-cmd`).
 * `{{` and `}}` are literal braces.
 */
export const PLACEHOLDERS = ["host", "port", "servername", "cafile", "dir"] as const;
/** One of PLACEHOLDERS. */
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** Names a command client may not take: the built-in clients, the stapler's row and the client classes. */
export const RESERVED_CLIENT_NAMES = ["node", "curl", "openssl", "gnutls", "stapler", "strict", "soft-fail"] as const;
/** What a command client's name is: a letter, then letters, digits, `_` or `-` (it names report rows, `java @1s`). */
export const COMMAND_CLIENT_NAME = /^[a-z][a-z0-9_-]*$/i;
/** How long one run of a command client may take by default, in seconds. */
export const DEFAULT_COMMAND_TIMEOUT_S = 15;

/** When a command's run counts as a refusal with a reason: its exit code and/or a match in its output. */
export interface RefusalRule {
  /** The exit code this rule needs; any when absent. */
  exit?: number;
  /** A pattern its standard output or error must match (case-insensitive, `^` and `$` at each line); any output when absent. */
  output?: RegExp;
  /** The reason reported, as `refused: <reason>`. */
  reason: string;
}

/**
 * The reasons of `--client-cmd` clients (a client file without `refused`), first match wins,
 * over the command's standard output and error: common wordings of OpenSSL, GnuTLS, JSSE, Go,
 * rustls and curl. A failure none matches is `refused: exit N`.
 */
export const DEFAULT_REASONS: readonly RefusalRule[] = [
  { output: /revoked|revocation reason/i, reason: "revoked" },
  { output: /status (is )?unknown|unknown (certificate )?status|revocation status is unknown/i, reason: "unknown" },
  { output: /no (ocsp )?(staple|stapled|status|response)|status is missing|no response sent/i, reason: "no staple" },
  { output: /signature/i, reason: "bad signature" },
  { output: /out-of-date|too old|stale|expired/i, reason: "stale" },
  { output: /timed? ?out/i, reason: "timed out" },
  { output: /connection refused|econnrefused/i, reason: "connection refused" },
  {
    output: /not trusted|unable to get local issuer|unknown ca|certificate verify failed|pkix path/i,
    reason: "untrusted certificate",
  },
];

/** A command-template client as validated: what to run and how to read what it did. */
export interface CommandClientSpec {
  /** Its name in reports (see COMMAND_CLIENT_NAME, RESERVED_CLIENT_NAMES). */
  name: string;
  /** The argv template, one word each, placeholders unreplaced; the first word is the program. */
  command: string[];
  /** Connected when the command exits with `exit` (and its output matches `output`, when given). */
  connected: { exit: number; output?: RegExp };
  /** Refusal reasons, first match wins; none matching gives `refused: exit N`. */
  refused: readonly RefusalRule[];
  /** How long one run may take, in milliseconds; a run killed then is `refused: timed out`. */
  timeoutMs: number;
  /** The class whose scenario expectations apply to it (`strict`, `soft-fail`); none: only entries under its name. */
  clientClass?: ClientClass;
  /** The folder `{dir}` stands for (absolute). */
  dir: string;
}

/**
 * Any TLS client run as a child process from a command template (`--client-cmd` or a client
 * file): the placeholders (PLACEHOLDERS) are replaced by the target's values, each inside its
 * own argv word, and the program is run directly, with no shell: a shell runs only when the
 * template asks for one (`sh -c '…'`), and then every value put in the script after `-c` is
 * single-quoted. The outcome is `connected` when the run matches `connected` (default exit 0),
 * else `refused: <reason>` of the first matching RefusalRule, else `refused: exit N`;
 * `refused: timed out` when it was killed at its timeout. The detail is the output line the
 * deciding pattern matched, else the output's last line.
 */
export class CommandClient implements ClientDriver {
  readonly name: string;
  readonly clientClass: ClientClass | undefined;
  /** The validated spec it runs. */
  readonly spec: CommandClientSpec;

  /**
   * @throws CommandClientError for a name that is not COMMAND_CLIENT_NAME or is reserved, an
   * empty command, an unknown placeholder, or a template that never says `{port}`.
   */
  constructor(spec: CommandClientSpec, where = "--client-cmd") {
    checkName(spec.name, where);
    checkTemplate(spec.command, where);
    this.name = spec.name;
    this.clientClass = spec.clientClass;
    this.spec = spec;
  }

  /** The program (the first word, `{dir}` replaced) on PATH, or an executable file when it names a path. */
  async available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    const program = fill(this.spec.command[0]!, { dir: this.spec.dir }, false);
    const found = await findProgram(program);
    return found
      ? { ok: true }
      : {
          ok: false,
          reason: program.includes("/") ? `${program} is not an executable file` : `${program} is not installed (not on PATH)`,
        };
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const argv = commandArgv(this.spec.command, {
      host: target.host,
      port: String(target.port),
      servername: target.servername,
      cafile: target.caFile,
      dir: this.spec.dir,
    });
    const r = await execCapture(argv[0]!, argv.slice(1), this.spec.timeoutMs);
    if (r.spawnError) return this.obs(`refused: cannot run (${r.spawnError.code ?? "error"})`, r.spawnError.message);
    const out = `${r.stdout}\n${r.stderr}`;
    const lines = out
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const lineOf = (re: RegExp | undefined): string =>
      (re && lines.find((l) => re.test(l))) ?? lines.at(-1) ?? `exit ${r.code ?? "killed"}`;
    if (r.code === null)
      return this.obs("refused: timed out", `killed after ${this.spec.timeoutMs / 1000} s; ${lineOf(undefined)}`);
    const c = this.spec.connected;
    if (r.code === c.exit && (!c.output || c.output.test(out))) return this.obs("connected", lineOf(c.output));
    const rule = this.spec.refused.find((x) => (x.exit === undefined || x.exit === r.code) && (!x.output || x.output.test(out)));
    return this.obs(`refused: ${rule?.reason ?? `exit ${r.code}`}`, lineOf(rule?.output));
  }

  private obs(outcome: string, detail: string): ClientObservation {
    return { client: this.name, outcome, detail: detail.length > 500 ? `${detail.slice(0, 500)}…` : detail };
  }
}

/**
 * A `--client-cmd` value, `NAME=TEMPLATE`: the template is split into words as a shell would
 * (spaces separate; '…' and "…" quote; a backslash escapes), without any expansion. The client
 * gets the default rule (exit 0 connected, else DEFAULT_REASONS, else `exit N`), a 15 s timeout,
 * no class, and `{dir}` is `cwd`.
 * @throws CommandClientError for a value without `=`, a bad name, an unterminated quote, an
 * unknown placeholder or a template without `{port}`.
 */
export function parseClientCmd(value: string, cwd = process.cwd()): CommandClient {
  const eq = value.indexOf("=");
  if (eq <= 0)
    throw new CommandClientError(
      "--client-cmd",
      `give NAME=TEMPLATE, e.g. 'mine=my-client --connect {host}:{port} --ca {cafile}', got ${JSON.stringify(value)}`,
    );
  const name = value.slice(0, eq).trim();
  return new CommandClient({
    name,
    command: splitWords(value.slice(eq + 1), "--client-cmd"),
    connected: { exit: 0 },
    refused: DEFAULT_REASONS,
    timeoutMs: DEFAULT_COMMAND_TIMEOUT_S * 1000,
    dir: resolve(cwd),
  });
}

/**
 * Split a command template into argv words as a POSIX shell would, without any expansion:
 * whitespace separates words; '…' quotes literally; "…" quotes, with `\"` and `\\` escapes;
 * a backslash outside quotes takes the next character literally.
 * @throws CommandClientError for an unterminated quote or an empty template.
 */
export function splitWords(template: string, where = "--client-cmd"): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === "'" || ch === '"') {
      const end = findClosing(template, i, ch);
      if (end === -1) throw new CommandClientError(where, `unterminated ${ch} quote in ${JSON.stringify(template)}`);
      const inner = template.slice(i + 1, end);
      word = (word ?? "") + (ch === '"' ? inner.replace(/\\(["\\$`])/g, "$1") : inner);
      i = end;
    } else if (ch === "\\" && i + 1 < template.length) {
      word = (word ?? "") + template[++i];
    } else word = (word ?? "") + ch;
  }
  if (word !== undefined) words.push(word);
  if (words.length === 0)
    throw new CommandClientError(where, "the command template is empty: give the program and its arguments");
  return words;
}

function findClosing(text: string, open: number, quote: string): number {
  for (let j = open + 1; j < text.length; j++) {
    if (quote === '"' && text[j] === "\\") j++;
    else if (text[j] === quote) return j;
  }
  return -1;
}

/**
 * The argv of one run: every placeholder of every word replaced by its value. In a shell
 * script (the word after `-c` of `sh`, `bash`, `dash`, `zsh`) each value is single-quoted.
 */
export function commandArgv(command: readonly string[], values: Record<Placeholder, string>): string[] {
  const shell = /^(sh|bash|dash|zsh)$/.test(basename(command[0] ?? ""));
  return command.map((w, i) => fill(w, values, shell && i > 0 && /^-[a-z]*c$/.test(command[i - 1]!)));
}

const PLACEHOLDER = /\{\{|\}\}|\{([^{}]*)\}/g;

function fill(word: string, values: Partial<Record<Placeholder, string>>, quote: boolean): string {
  return word.replace(PLACEHOLDER, (m, name: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const v = values[name as Placeholder];
    if (v === undefined) return m;
    return quote ? `'${v.replace(/'/g, `'\\''`)}'` : v;
  });
}

function checkTemplate(command: readonly string[], where: string): void {
  if (command.length === 0 || command[0] === "")
    throw new CommandClientError(where, "the command template is empty: give the program and its arguments");
  let port = false;
  for (const w of command) {
    for (const m of w.matchAll(PLACEHOLDER)) {
      if (m[1] === undefined) continue;
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1]))
        throw new CommandClientError(
          where,
          `unknown placeholder {${m[1]}} in ${JSON.stringify(w)}: use ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")} ({{ and }} for literal braces)`,
        );
      if (m[1] === "port") port = true;
    }
  }
  if (!port)
    throw new CommandClientError(
      where,
      `the command ${JSON.stringify(command.join(" "))} never says {port}: it would not connect to the lab's server`,
    );
}

function checkName(name: string, where: string): void {
  if (!COMMAND_CLIENT_NAME.test(name))
    throw new CommandClientError(
      where,
      `client name ${JSON.stringify(name)}: a letter, then letters, digits, '_' or '-' (it names report rows)`,
    );
  if ((RESERVED_CLIENT_NAMES as readonly string[]).includes(name))
    throw new CommandClientError(
      where,
      `client name ${JSON.stringify(name)} is taken (${RESERVED_CLIENT_NAMES.join(", ")}): choose another`,
    );
}

/** The program's path when it can be run: an executable file when it names a path, else the first one on PATH. */
async function findProgram(program: string): Promise<string | undefined> {
  const executable = (p: string): Promise<boolean> =>
    access(p, constants.X_OK).then(
      () => true,
      () => false,
    );
  if (program.includes("/")) return (await executable(program)) ? program : undefined;
  for (const d of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const p = join(d, program);
    if (await executable(p)) return p;
  }
  return undefined;
}

/** A pattern of a client file: a JavaScript regular expression, matched case-insensitively, `^` and `$` at each line. */
const pattern = z.string().transform((s, ctx): RegExp => {
  try {
    return new RegExp(s, "im");
  } catch (err) {
    ctx.addIssue({ code: "custom", message: `not a regular expression: ${(err as Error).message}` });
    return z.NEVER;
  }
});

/**
 * A client file (YAML or JSON): `name`; `command`, the template as one string (split into words
 * as splitWords says) or a list of words; optional `timeout` in seconds (default 15); optional
 * `class: strict|soft-fail` (its scenario expectations); optional `connected: { exit, output }`
 * (default exit 0); optional `refused`, a list of `{ output, exit, reason }` (first match wins;
 * default DEFAULT_REASONS); optional `description`.
 */
export const clientFileSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().min(1).optional(),
    command: z.union([z.string().min(1), z.array(z.string()).min(1)]),
    timeout: z.number().positive().max(600).default(DEFAULT_COMMAND_TIMEOUT_S),
    class: z.enum(["strict", "soft-fail"]).optional(),
    connected: z
      .object({ exit: z.number().int().min(0).max(255).default(0), output: pattern.optional() })
      .strict()
      .default({ exit: 0 }),
    refused: z
      .array(
        z
          .object({ output: pattern.optional(), exit: z.number().int().min(0).max(255).optional(), reason: z.string().min(1) })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** A client file as written. */
export type ClientFileInput = z.input<typeof clientFileSchema>;

/**
 * Read and validate one client file; `{dir}` is the file's folder.
 * @throws ClientFileError naming `path` (as given) and the bad field, in one line (an unknown
 * placeholder or a bad name included).
 */
export async function loadClientFile(path: string): Promise<CommandClient> {
  const file = await readConfigFile(
    path,
    clientFileSchema,
    (field, problem, cause) => new ClientFileError(path, field, problem, { cause }),
  );
  const fail = (field: string) => (err: unknown) => {
    if (err instanceof CommandClientError) throw new ClientFileError(path, field, err.message.replace(/^[^:]*: /, ""));
    throw err;
  };
  let command: string[];
  try {
    command = typeof file.command === "string" ? splitWords(file.command, path) : file.command;
  } catch (err) {
    return fail("command")(err);
  }
  const spec: CommandClientSpec = {
    name: file.name,
    command,
    connected: file.connected,
    refused: file.refused ?? DEFAULT_REASONS,
    timeoutMs: file.timeout * 1000,
    ...(file.class ? { clientClass: file.class } : {}),
    dir: resolve(isAbsolute(path) ? dirname(path) : dirname(resolve(path))),
  };
  try {
    checkName(spec.name, path);
  } catch (err) {
    return fail("name")(err);
  }
  try {
    return new CommandClient(spec, path);
  } catch (err) {
    return fail("command")(err);
  }
}
