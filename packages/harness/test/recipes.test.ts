/**
 * The README's "Recipes: real servers against the lab", run as written: for each server
 * (nginx, Apache httpd, HAProxy 2.6, ocsp-stapler in front of redis-server) this reads the
 * recipe's ```sh block from README.md, takes its config heredoc (`cat > "$dir/<file>" <<EOF`
 * ... `EOF`) and the command lines that start the server, puts the test's values in for the
 * shell variables they use ($dir, $port, $c, $ca...), and runs the real server with them against
 * a real `ocsp-lab up` (a child process on a temp state folder), issuing, exporting and revoking
 * with the real `ocsp-ca` and checking with the recipe's own scripts/expect-staple.sh and
 * scripts/expect-ocsp.sh, in the order the block runs them (the block's steps must be the ones
 * listed in RECIPES). So the README's configs cannot drift from what the servers accept and do:
 * a block that changes shape so that its heredoc or a command line cannot be found, whose steps
 * differ from the test's, or that uses a variable the test does not set, fails here with a
 * message saying which. The first group of tests needs no server, so such drift fails even on a
 * machine without nginx, Apache, HAProxy or redis-server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, promises as fs, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { delimiter, isAbsolute, join } from "node:path";
import type { LabEndpoints } from "@ocsp-lab/harness";
import { describeWithPeer, eventually, freePort, run, startUp, tempDir, type Ran } from "../../../test-support/index.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const README = join(ROOT, "README.md");
const SECTION = "## Recipes: real servers against the lab";
const OCSP_CA_BIN = join(ROOT, "packages/ca/bin/ocsp-ca.js");
const EXPECT_STAPLE = join(ROOT, "scripts/expect-staple.sh");
const EXPECT_OCSP = join(ROOT, "scripts/expect-ocsp.sh");

// ---------------------------------------------------------------------------------------------
// Reading the recipes out of README.md

/** The shell variables a recipe's config and command lines may use, as the test sets them. */
type Vars = Readonly<Record<string, string>>;

/** A recipe's ```sh block, found under `### <heading>` of the recipes section. */
interface RecipeBlock {
  heading: string;
  /** 1-based line of README.md where the block's opening fence is. */
  line: number;
  code: string;
}

/** Where a recipe is, for error messages. */
const where = (heading: string): string => `README.md, "${SECTION}" > "### ${heading}"`;

/**
 * The first ```sh block under `### heading` in the recipes section of `readme`.
 * @throws Error naming the section when the section, the heading or the block is missing.
 */
function recipeBlock(readme: string, heading: string): RecipeBlock {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.trim() === SECTION);
  if (start < 0) throw new Error(`README.md has no "${SECTION}" section; update packages/harness/test/recipes.test.ts`);
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  const h = lines.findIndex((l, i) => i > start && i < end && l.trim() === `### ${heading}`);
  if (h < 0) throw new Error(`${where(heading)}: no such heading; update packages/harness/test/recipes.test.ts`);
  let next = lines.findIndex((l, i) => i > h && i < end && /^#{1,3} /.test(l));
  if (next < 0) next = end;
  const open = lines.findIndex((l, i) => i > h && i < next && l.trim() === "```sh");
  if (open < 0) throw new Error(`${where(heading)}: no \`\`\`sh block`);
  const close = lines.findIndex((l, i) => i > open && l.trim() === "```");
  if (close < 0 || close > next) throw new Error(`${where(heading)}: the \`\`\`sh block at line ${open + 1} is not closed`);
  return { heading, line: open + 1, code: lines.slice(open + 1, close).join("\n") };
}

/**
 * The body of the block's heredoc `cat > "$dir/<file>" <<EOF` ... `EOF` (unquoted EOF: the shell
 * expands it), as written (not expanded), each line ending with a newline as bash writes it.
 * @throws Error when the block has no such heredoc (it changed shape: this test must follow).
 */
function heredoc(block: RecipeBlock, file: string): string {
  const opener = `cat > "$dir/${file}" <<EOF`;
  const lines = block.code.split("\n");
  const at = lines.findIndex((l) => l.trimEnd().endsWith(opener));
  const end = lines.findIndex((l, i) => i > at && l === "EOF");
  if (at < 0 || end < 0)
    throw new Error(
      `${where(block.heading)} (block at line ${block.line}): no config heredoc \`${opener}\` ... \`EOF\`; ` +
        "the recipe changed shape, so packages/harness/test/recipes.test.ts cannot read its config: make them match again",
    );
  // Every line of a heredoc ends with a newline (HAProxy refuses a config whose last line has none).
  return lines
    .slice(at + 1, end)
    .map((l) => `${l}\n`)
    .join("");
}

/** `$name` or `${name}` in `text` at `i` (which is a `$`): the name and where the reference ends. */
function variableAt(text: string, i: number, context: string): { name: string; end: number } | undefined {
  const braced = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}/.exec(text.slice(i));
  if (braced) return { name: braced[1]!, end: i + braced[0].length };
  const bare = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(text.slice(i));
  if (bare) return { name: bare[1]!, end: i + bare[0].length };
  const next = text[i + 1];
  if (next !== undefined && /[({0-9!$?#*@-]/.test(next))
    throw new Error(`${context}: uses \`${text.slice(i, i + 12)}\`..., a shell expansion this test does not perform`);
  return undefined; // a lone `$` stays a `$`, as in the shell
}

/** The value of `name` in `vars`. @throws Error for a variable the test does not set. */
function variableValue(vars: Vars, name: string, context: string): string {
  const v = vars[name];
  if (v === undefined)
    throw new Error(
      `${context}: uses $${name}, which packages/harness/test/recipes.test.ts does not set (it sets ${Object.keys(vars)
        .map((k) => `$${k}`)
        .join(", ")})`,
    );
  return v;
}

/**
 * What bash makes of an unquoted heredoc body: `$name` and `${name}` replaced from `vars`, and
 * backslash escapes of `$`, `` ` ``, `\` and newline resolved (any other backslash stays).
 * @throws Error for a variable not in `vars`, or a command substitution or other expansion.
 */
function expandHeredoc(body: string, vars: Vars, context: string): string {
  let out = "";
  for (let i = 0; i < body.length; ) {
    const ch = body[i]!;
    if (ch === "\\" && i + 1 < body.length && "$`\\\n".includes(body[i + 1]!)) {
      if (body[i + 1] !== "\n") out += body[i + 1];
      i += 2;
    } else if (ch === "`") {
      throw new Error(`${context}: uses a backquote command substitution, which this test does not perform`);
    } else if (ch === "$") {
      const v = variableAt(body, i, context);
      if (v) {
        out += variableValue(vars, v.name, context);
        i = v.end;
      } else {
        out += ch;
        i++;
      }
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

/**
 * The words of a simple shell command line, with variables from `vars`: quotes (`'...'`,
 * `"..."`) and backslashes handled as bash does; stops at an unquoted `&`, `;`, `|`, `<`, `>` or
 * a `#` starting a word (a background `& pid=$!`, a comment). Unquoted expansions are not
 * word-split (the test's values have no blanks).
 * @throws Error for a variable not in `vars` or an expansion this does not perform.
 */
function shellWords(line: string, vars: Vars, context: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const dollar = (): void => {
    const v = variableAt(line, i, context);
    if (v) {
      word = (word ?? "") + variableValue(vars, v.name, context);
      i = v.end;
    } else {
      word = `${word ?? ""}$`;
      i++;
    }
  };
  while (i < line.length) {
    const ch = line[i]!;
    if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if ("&;|<>".includes(ch) || (ch === "#" && word === undefined)) {
      break;
    } else if (ch === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new Error(`${context}: unterminated ' in \`${line}\``);
      word = (word ?? "") + line.slice(i + 1, close);
      i = close + 1;
    } else if (ch === '"') {
      word ??= "";
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && '$`"\\'.includes(line[i + 1] ?? "")) {
          word += line[i + 1];
          i += 2;
        } else if (line[i] === "$") dollar();
        else if (line[i] === "`") throw new Error(`${context}: command substitution in \`${line}\``);
        else word += line[i++];
      }
      if (line[i] !== '"') throw new Error(`${context}: unterminated " in \`${line}\``);
      i++;
    } else if (ch === "\\") {
      word = (word ?? "") + (line[i + 1] ?? "");
      i += 2;
    } else if (ch === "$") {
      dollar();
    } else if (ch === "`") {
      throw new Error(`${context}: command substitution in \`${line}\``);
    } else {
      word = (word ?? "") + ch;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * The argv of the block's command lines that run `program` (the first word, or its last path
 * segment, is `program`), in order: a server's start line such as
 * `nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" & pid=$!`.
 * @throws Error when the block has no such line.
 */
function commandLines(block: RecipeBlock, program: string, vars: Vars): string[][] {
  const context = `${where(block.heading)} (block at line ${block.line})`;
  const found = block.code
    .split("\n")
    .filter((l) => {
      const first = l.trimStart().split(/\s/, 1)[0] ?? "";
      return first === program || first.endsWith(`/${program}`);
    })
    .map((l) => shellWords(l.trim(), vars, context));
  if (found.length === 0)
    throw new Error(
      `${context}: no command line running ${program}; the recipe changed shape: make packages/harness/test/recipes.test.ts match`,
    );
  return found;
}

/** One recipe as the test runs it: its config file (expanded) and the command line of each program it starts. */
interface Recipe {
  block: RecipeBlock;
  config: string;
  /** Program name → its command lines in the block (argv, expanded), in order. */
  commands: Record<string, string[][]>;
}

/**
 * The lines of a recipe's block that do something the test does too, in order, as written
 * (trimmed, without a trailing `# comment`): starting a server (`... & pid=$!`), `ocsp-ca`,
 * the expect-*.sh checks, `kill`, `curl`, `redis-cli`, `timeout`. The test compares them with
 * the steps it runs (RECIPES), so a recipe whose steps or expected staples change fails here too.
 */
function outline(block: RecipeBlock): string[] {
  const body = (() => {
    const lines = block.code.split("\n");
    const open = lines.findIndex((l) => /<<EOF$/.test(l.trimEnd()));
    const close = lines.findIndex((l, i) => i > open && l === "EOF");
    return open < 0 || close < 0 ? lines : [...lines.slice(0, open), ...lines.slice(close + 1)];
  })();
  return body
    .map((l) => l.replace(/\s+#\s.*$/, "").trim())
    .filter((l) => /(^|\s)(scripts\/expect-\S+|ocsp-ca|kill|curl|redis-cli|timeout)\s/.test(l) || /&\s+\w+=\$!$/.test(l));
}

/** `ocsp-ca issue` as every recipe runs it. */
const ISSUE = `serial=$(npx -y pnpm@10 exec ocsp-ca issue --dns localhost --ip 127.0.0.1 --ocsp-url "$responder" --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).serial')`;
const REVOKE = 'npx -y pnpm@10 exec ocsp-ca revoke "$serial" --reason keyCompromise';
const ocspGood = 'scripts/expect-ocsp.sh "$responder" "$ca" "$c/cert.pem" good';
const ocspRevoked = 'scripts/expect-ocsp.sh "$responder" "$ca" "$c/cert.pem" revoked';
const staple = (status: string): string => `scripts/expect-staple.sh 127.0.0.1:$port "$ca" ${status}`;

/**
 * What the test reads of each recipe: its heading, config file, the programs it starts, and
 * the steps (see outline) it runs, which the README's block must show in this order.
 */
const RECIPES = {
  nginx: {
    heading: "nginx",
    file: "nginx.conf",
    programs: ["nginx"],
    steps: [
      ISSUE,
      ocspGood,
      'nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" & pid=$!',
      staple("good"),
      REVOKE,
      ocspRevoked,
      staple("good 0"),
      'kill $pid && wait $pid && rm "$dir/error.log"',
      'nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" & pid=$!',
      staple("none"),
      `timeout 20 sh -c 'until grep -q "certificate status \\"revoked\\"" "$0"; do sleep 0.25; done' "$dir/error.log"`,
      staple("none 0"),
      "kill $pid && wait $pid",
    ],
  },
  apache: {
    heading: "Apache httpd (mod_ssl)",
    file: "httpd.conf",
    programs: ["apache2"],
    steps: [
      ISSUE,
      ocspGood,
      'apache2 -f "$dir/httpd.conf" -DFOREGROUND & pid=$!',
      staple("good"),
      REVOKE,
      staple("revoked"),
      "kill $pid && wait $pid",
    ],
  },
  haproxy: {
    heading: "HAProxy 2.6",
    file: "haproxy.cfg",
    programs: ["haproxy"],
    steps: [
      ISSUE,
      'mkdir -p "$dir" && npx -y pnpm@10 exec ocsp-ca export "$serial" --format pem-bundle --out "$dir/site.pem"',
      `${ocspGood} "$dir/site.pem.ocsp"`,
      'haproxy -W -db -f "$dir/haproxy.cfg" & pid=$!',
      staple("good"),
      REVOKE,
      staple("good 0"),
      `${ocspRevoked} "$dir/site.pem.ocsp"`,
      "kill -USR2 $pid",
      staple("revoked"),
      "kill $pid && wait $pid",
    ],
  },
  redis: {
    heading: "`ocsp-stapler` in front of redis-server",
    file: "stapler.yaml",
    programs: ["redis-server", "ocsp-stapler", "redis-cli"],
    steps: [
      ISSUE,
      ocspGood,
      "redis-server --bind 127.0.0.1 --port $redis --save '' --appendonly no & redis_pid=$!",
      'node_modules/.bin/ocsp-stapler --config "$dir/stapler.yaml" & stapler_pid=$!',
      staple("good"),
      'redis-cli --tls --cacert "$ca" --sni localhost -h 127.0.0.1 -p $port PING',
      REVOKE,
      ocspRevoked,
      "curl -sS -X POST http://127.0.0.1:$admin/admin/ocsp/query",
      staple("revoked"),
      "kill $stapler_pid $redis_pid && wait",
    ],
  },
} as const;

/**
 * Recipe `name` of README.md with `vars` put in: the expanded config heredoc and command lines.
 * @throws Error when the README's recipe cannot be read (see recipeBlock, heredoc, commandLines),
 *   or when its steps (outline) are not `RECIPES[name].steps`, showing both.
 */
function readRecipe(name: keyof typeof RECIPES, vars: Vars): Recipe {
  const spec = RECIPES[name];
  const block = recipeBlock(readFileSync(README, "utf8"), spec.heading);
  const raw = heredoc(block, spec.file); // first: a missing heredoc is the clearest message
  const steps = outline(block);
  if (JSON.stringify(steps) !== JSON.stringify(spec.steps))
    throw new Error(
      `${where(spec.heading)} (block at line ${block.line}): its steps are not the ones packages/harness/test/recipes.test.ts runs; ` +
        `make them match again.\nREADME:\n  ${steps.join("\n  ")}\ntest:\n  ${spec.steps.join("\n  ")}`,
    );
  const context = `${where(spec.heading)}, the heredoc of ${spec.file}`;
  const config = expandHeredoc(raw, vars, context);
  const commands: Record<string, string[][]> = {};
  for (const p of spec.programs) commands[p] = commandLines(block, p, vars);
  return { block, config, commands };
}

/** The single start line of `program` in `recipe`, or the error that there are several different ones. */
function startLine(recipe: Recipe, program: string): string[] {
  const lines = recipe.commands[program]!;
  const first = lines[0]!;
  for (const l of lines)
    if (JSON.stringify(l) !== JSON.stringify(first))
      throw new Error(`${where(recipe.block.heading)}: ${program} is started in different ways: ${JSON.stringify(lines)}`);
  return first;
}

// ---------------------------------------------------------------------------------------------
// Running things

/** A program as a recipe names it: a path relative to the repository root, or a name on PATH (or in /usr/sbin). */
function resolveProgram(word: string): string {
  if (isAbsolute(word)) return word;
  if (word.includes("/")) return join(ROOT, word);
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  return dirs.map((d) => join(d, word)).find((p) => existsSync(p)) ?? word;
}

/** A server started by the test: its process (own process group), what it printed, its exit. */
interface Server {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Signal it (default SIGTERM) and wait for its exit. */
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const servers: Server[] = [];

/** Start `argv` as a server in its own process group with cwd `cwd`, collecting its output. */
function startServer(argv: string[], cwd: string): Server {
  const [program, ...args] = argv;
  const child = spawn(resolveProgram(program!), args, { cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("error", (error) => {
      out += `\nspawn failed: ${error.message}`;
      resolve({ code: null, signal: null });
    });
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const server: Server = {
    name: program!,
    child,
    output: () => out,
    exited,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  servers.push(server);
  return server;
}

/** Stop every server still running: SIGTERM, then after 10 s SIGKILL of its process group (workers included). */
async function stopAll(): Promise<void> {
  for (const s of servers.splice(0)) {
    const alive = (): boolean => s.child.exitCode === null && s.child.signalCode === null;
    if (alive()) s.child.kill("SIGTERM");
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
    if ((await Promise.race([s.exited, timeout])) === "timeout") {
      try {
        process.kill(-s.child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      await s.exited;
    }
    // Whatever is left of its process group (workers a master did not take down with it) goes too.
    try {
      if (s.child.pid) process.kill(-s.child.pid, "SIGKILL");
    } catch {
      // the group is empty: nothing left
    }
  }
}

/** Whether 127.0.0.1:port accepts a TCP connection now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Wait until `server` accepts connections on `port`; fail at once, with its output, if it exits first. */
async function listening(server: Server, port: number, details: () => Promise<string> = async () => ""): Promise<void> {
  let gone = false;
  void server.exited.then(() => (gone = true));
  const state = await eventually(
    async () => (gone ? "exited" : (await accepts(port)) ? "up" : "down"),
    (s) => s !== "down",
    30_000,
    `${server.name} to accept connections on 127.0.0.1:${port}`,
  );
  if (state === "exited") throw new Error(`${server.name} exited at start:\n${server.output()}\n${await details()}`);
}

/** `scripts/<script>` with `args` (the README's own checks, which poll with a deadline); throws with their output unless they exit 0. */
async function script(path: string, args: string[], details: () => Promise<string> = async () => ""): Promise<Ran> {
  const r = await run("bash", [path, ...args], { timeoutMs: 40_000 });
  if (r.code !== 0)
    throw new Error(`${path.slice(ROOT.length)} ${args.join(" ")} exited ${r.code}: ${r.stdout}${r.stderr}\n${await details()}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The lab: one `ocsp-lab up`, as in the README; every recipe issues its own certificate from it.

let home: { dir: string; cleanup: () => Promise<void> };
let stateDir: string;
let up: { endpoints: LabEndpoints; child: ChildProcess };
let responder: string;

/** `ocsp-ca` (what `pnpm exec ocsp-ca` runs) on the lab's state folder. @throws Error with its stderr unless it exits 0. */
async function ocspCa(args: string[]): Promise<string> {
  const r = await run(process.execPath, [OCSP_CA_BIN, ...args], {
    env: { ...process.env, OCSP_LAB_HOME: stateDir },
    cwd: home.dir,
  });
  if (r.code !== 0) throw new Error(`ocsp-ca ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A certificate for localhost/127.0.0.1 whose OCSP URL is the lab's responder, as the recipes issue it: serial and folder ($c). */
async function issue(): Promise<{ serial: string; c: string }> {
  const out = await ocspCa(["issue", "--dns", "localhost", "--ip", "127.0.0.1", "--ocsp-url", responder, "--json"]);
  const { serial } = JSON.parse(out) as { serial: string };
  return { serial, c: join(stateDir, "certs", serial) };
}

/** The variables every recipe sets, for recipe folder `name`, with fresh ports. */
async function recipeVars(
  name: string,
  c: string,
): Promise<{ responder: string; c: string; ca: string; dir: string; port: string }> {
  const dir = join(stateDir, "recipes", name);
  await fs.mkdir(dir, { recursive: true });
  return { responder, c, ca: join(stateDir, "ca.pem"), dir, port: String(await freePort()) };
}

/** Apache's module folder ($mods): Debian's, else what `apxs -q LIBEXECDIR` says, as the recipe's comment suggests. */
async function apacheModules(): Promise<string> {
  const debian = "/usr/lib/apache2/modules";
  if (existsSync(join(debian, "mod_ssl.so"))) return debian;
  const apxs = await run("apxs", ["-q", "LIBEXECDIR"]).catch(() => undefined);
  if (apxs?.code === 0 && apxs.stdout.trim()) return apxs.stdout.trim();
  throw new Error(`no Apache module folder: ${debian} has no mod_ssl.so and apxs -q LIBEXECDIR answers nothing`);
}

afterEach(stopAll);

describe("README recipes: each config is read from README.md", () => {
  it("finds every recipe's config heredoc and the command lines that start its servers", () => {
    const vars = { responder: "R", c: "/C", ca: "/CA", dir: "/D", port: "1", mods: "/M", redis: "2", admin: "3" };
    for (const name of Object.keys(RECIPES) as Array<keyof typeof RECIPES>) {
      const r = readRecipe(name, vars);
      expect(r.config, name).toContain("/D");
      expect(r.config, name).not.toMatch(/\$[A-Za-z_{]/);
    }
    expect(startLine(readRecipe("nginx", vars), "nginx")).toEqual([
      "nginx",
      "-p",
      "/D",
      "-e",
      "/D/error.log",
      "-c",
      "/D/nginx.conf",
    ]);
  });

  it("says which recipe and what is missing when a block changes shape", () => {
    const block = { heading: "nginx", line: 1, code: "cat > \"$dir/nginx.conf\" <<'EOF'\nx\nEOF" };
    expect(() => heredoc(block, "nginx.conf")).toThrow(
      /"### nginx" \(block at line 1\): no config heredoc `cat > "\$dir\/nginx.conf" <<EOF`/,
    );
    expect(() => expandHeredoc("listen $host;", { port: "1" }, "ctx")).toThrow("ctx: uses $host, which");
    expect(() => expandHeredoc("x $(date)", {}, "ctx")).toThrow("a shell expansion this test does not perform");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell ${name} reference, expanded by expandHeredoc
    expect(expandHeredoc('return 200 "ok\\n"; \\$x ${port}', { port: "7" }, "ctx")).toBe('return 200 "ok\\n"; $x 7');
    expect(shellWords(`redis-server --port $p --save '' & pid=$!   # c`, { p: "9" }, "ctx")).toEqual([
      "redis-server",
      "--port",
      "9",
      "--save",
      "",
    ]);
  });
});

describe("README recipes: real servers against ocsp-lab up", () => {
  beforeAll(async () => {
    home = await tempDir("ocsp-lab-recipes-");
    stateDir = join(home.dir, ".ocsp-lab");
    await fs.mkdir(stateDir);
    up = await startUp(stateDir);
    // The recipes take the responder's port from lab.json.
    const lab = JSON.parse(await fs.readFile(join(stateDir, "lab.json"), "utf8")) as { responderPort: number };
    responder = `http://127.0.0.1:${lab.responderPort}`;
    expect(responder).toBe(up.endpoints.responderUrl);
  });

  afterAll(async () => {
    await stopAll();
    if (up && up.child.exitCode === null && up.child.signalCode === null) {
      const exited = once(up.child, "exit");
      up.child.kill("SIGTERM");
      await exited;
    }
    await home?.cleanup();
  });

  describeWithPeer(resolveProgram("nginx"), "nginx")("nginx", () => {
    it("staples good after the first (lazy) handshake, keeps stapling good after a revocation, staples nothing after a restart", async () => {
      const { serial, c } = await issue();
      const vars = await recipeVars("nginx", c);
      const { dir, ca, port } = vars;
      const recipe = readRecipe("nginx", vars);
      const errorLog = join(dir, "error.log");
      const log = async (): Promise<string> => `nginx error log:\n${await fs.readFile(errorLog, "utf8").catch(() => "(none)")}`;
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "good"]);
      await fs.writeFile(join(dir, "nginx.conf"), recipe.config);
      const target = `127.0.0.1:${port}`;

      let nginx = startServer(startLine(recipe, "nginx"), dir);
      await listening(nginx, Number(port), log);
      await script(EXPECT_STAPLE, [target, ca, "good"], log); // the first handshake starts the fetch
      await ocspCa(["revoke", serial, "--reason", "keyCompromise"]);
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "revoked"]);
      await script(EXPECT_STAPLE, [target, ca, "good", "0"], log); // nginx still staples the response it has

      expect(await nginx.stop(), nginx.output()).toEqual({ code: 0, signal: null });
      await fs.rm(errorLog);
      nginx = startServer(startLine(recipe, "nginx"), dir);
      await listening(nginx, Number(port), log);
      await script(EXPECT_STAPLE, [target, ca, "none"], log);
      await eventually(
        () => fs.readFile(errorLog, "utf8").catch(() => ""),
        (l) => l.includes('certificate status "revoked" in the OCSP response'),
        20_000,
        'nginx to log certificate status "revoked" in the OCSP response',
      );
      await script(EXPECT_STAPLE, [target, ca, "none", "0"], log); // nginx staples only good responses
      expect(await nginx.stop(), nginx.output()).toEqual({ code: 0, signal: null });
    }, 60_000);
  });

  describeWithPeer(resolveProgram("apache2"), "apache2")("Apache httpd (mod_ssl)", () => {
    it("staples good from the first handshake, revoked once the cached response is 5 s old", async () => {
      const { serial, c } = await issue();
      const mods = await apacheModules();
      const vars = { ...(await recipeVars("apache", c)), mods };
      const { dir, ca, port } = vars;
      const recipe = readRecipe("apache", vars);
      const log = async (): Promise<string> =>
        `apache error log:\n${await fs.readFile(join(dir, "error.log"), "utf8").catch(() => "(none)")}`;
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "good"]);
      await fs.writeFile(join(dir, "httpd.conf"), recipe.config);
      const target = `127.0.0.1:${port}`;

      const apache = startServer(startLine(recipe, "apache2"), dir);
      await listening(apache, Number(port), log);
      await script(EXPECT_STAPLE, [target, ca, "good"], log); // the first handshake waits for the fetch
      await ocspCa(["revoke", serial, "--reason", "keyCompromise"]);
      await script(EXPECT_STAPLE, [target, ca, "revoked"], log); // once the cached response is 5 s old
      const { code } = await apache.stop();
      expect(code, apache.output()).toBe(0);
    }, 60_000);
  });

  describeWithPeer(resolveProgram("haproxy"), "haproxy")("HAProxy 2.6", () => {
    it("staples the .ocsp file: good, still good after a revocation, revoked after a new .ocsp and SIGUSR2", async () => {
      const { serial, c } = await issue();
      const vars = await recipeVars("haproxy", c);
      const { dir, ca, port } = vars;
      const recipe = readRecipe("haproxy", vars);
      const site = join(dir, "site.pem");
      await ocspCa(["export", serial, "--format", "pem-bundle", "--out", site]);
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "good", `${site}.ocsp`]);
      await fs.writeFile(join(dir, "haproxy.cfg"), recipe.config);
      const target = `127.0.0.1:${port}`;

      const haproxy = startServer(startLine(recipe, "haproxy"), dir);
      const out = async (): Promise<string> => `haproxy output:\n${haproxy.output()}`;
      await listening(haproxy, Number(port), out);
      await script(EXPECT_STAPLE, [target, ca, "good"], out);
      await ocspCa(["revoke", serial, "--reason", "keyCompromise"]);
      await script(EXPECT_STAPLE, [target, ca, "good", "0"], out); // HAProxy never asks the responder itself
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "revoked", `${site}.ocsp`]);
      haproxy.child.kill("SIGUSR2"); // master-worker: reload, reading the new .ocsp
      await script(EXPECT_STAPLE, [target, ca, "revoked"], out);
      expect(await haproxy.stop(), haproxy.output()).toEqual({ code: 0, signal: null });
    }, 60_000);
  });

  describeWithPeer("redis-server")("ocsp-stapler in front of redis-server", () => {
    it("staples good, redis-cli --tls gets PONG, and after a revocation and POST /admin/ocsp/query staples revoked", async () => {
      const { serial, c } = await issue();
      const vars = { ...(await recipeVars("redis", c)), admin: String(await freePort()), redis: String(await freePort()) };
      const { dir, ca, port, admin } = vars;
      const recipe = readRecipe("redis", vars);
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "good"]);
      await fs.writeFile(join(dir, "stapler.yaml"), recipe.config);
      const target = `127.0.0.1:${port}`;

      const redis = startServer(startLine(recipe, "redis-server"), dir);
      await listening(redis, Number(vars.redis));
      const stapler = startServer(startLine(recipe, "ocsp-stapler"), dir);
      const out = async (): Promise<string> =>
        `ocsp-stapler output:\n${stapler.output()}\nredis-server output:\n${redis.output()}`;
      await listening(stapler, Number(port), out);
      await script(EXPECT_STAPLE, [target, ca, "good"], out); // listening once the first staple is in

      const [cli, ...cliArgs] = startLine(recipe, "redis-cli");
      const ping = await run(resolveProgram(cli!), cliArgs, { timeoutMs: 20_000 });
      expect(ping.code, ping.stderr).toBe(0);
      expect(ping.stdout.trim()).toBe("PONG");

      await ocspCa(["revoke", serial, "--reason", "keyCompromise"]);
      await script(EXPECT_OCSP, [responder, ca, join(c, "cert.pem"), "revoked"]);
      const query = await run("curl", ["-sS", "--fail-with-body", "-X", "POST", `http://127.0.0.1:${admin}/admin/ocsp/query`]);
      expect(query.code, query.stdout + query.stderr).toBe(0);
      await script(EXPECT_STAPLE, [target, ca, "revoked"], out);
      expect((await stapler.stop()).code, stapler.output()).toBe(0);
      await redis.stop();
    }, 60_000);
  });
});
