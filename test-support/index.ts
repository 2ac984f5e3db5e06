/**
 * Helpers shared by every package's tests: real temp folders, real child processes, and
 * waiting on a condition with a deadline (never a bare sleep).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Writable } from "node:stream";
import { describe, it } from "vitest";
import type { CertificateAuthority, IssueServerOptions, IssuedCertificate } from "@ocsp-lab/ca";
import type { Clock } from "@ocsp-lab/ocsp";
import type { LabEndpoints } from "@ocsp-lab/harness";
import type { StartedOcspResponder } from "@ocsp-lab/responder";

/** A fresh temp folder, removed by the returned cleanup. */
export async function tempDir(prefix = "ocsp-lab-test-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Output of a finished child process. */
export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion with stdin closed; never rejects on a non-zero exit. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 60_000,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Evaluate `probe` until `accept` holds for its result, or fail after `timeoutMs`. The short
 * pause between attempts is a polling interval, not a synchronisation guess: the deadline is what
 * decides.
 */
export async function eventually<T>(
  probe: () => Promise<T> | T,
  accept: (v: T) => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (performance.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await delay(50);
  }
}

/** Path of the built `ocsp-lab` command. */
export const OCSP_LAB_BIN = new URL("../packages/harness/bin/ocsp-lab.js", import.meta.url).pathname;

/**
 * A free TCP port on 127.0.0.1, for peers (nginx, redis-server) that take their port from a
 * config file and cannot be handed port 0: listen on port 0, read what the kernel chose,
 * close. If another process grabs it in between, the peer fails to start with "Address
 * already in use" (a loud failure, never a wrong result).
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => probe.once("listening", () => resolve()));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * One handshake with `openssl s_client -status` (stdin closed, so it exits after the
 * handshake): stdout carries the staple (`OCSP Response Status: ...` / `no response sent`) and
 * the certificate.
 */
export function sClient(options: {
  port: number;
  caFile: string;
  servername?: string;
  host?: string;
  extra?: string[];
  timeoutMs?: number;
}): Promise<Ran> {
  return run(
    "openssl",
    [
      "s_client",
      "-connect",
      `${options.host ?? "127.0.0.1"}:${options.port}`,
      "-servername",
      options.servername ?? "localhost",
      "-status",
      "-CAfile",
      options.caFile,
      ...(options.extra ?? []),
    ],
    { timeoutMs: options.timeoutMs ?? 20_000 },
  );
}

/**
 * Stapling policies the tests share, named for what they are for (seconds, as in config files).
 * - `QUICK_RETRIES`: a good staple stays for the whole test (query_frequency 1 h); failures
 *   are retried every 0.15 s and invalidate after 3.
 * - `QUICK_REFRESH`: like QUICK_RETRIES, and a regular query every 0.3 s (sees a revocation soon).
 * - `STEADY`: a good staple, once in, stays whatever the responder does (retries a minute apart).
 */
export const POLICIES = {
  QUICK_RETRIES: { query_frequency: 3600, response_timeout: 1, recovery_frequency: 0.15, recovery_max_tries: 3 },
  QUICK_REFRESH: { query_frequency: 0.3, response_timeout: 1, recovery_frequency: 0.15, recovery_max_tries: 3 },
  STEADY: { query_frequency: 3600, response_timeout: 5, recovery_frequency: 60, recovery_max_tries: 5 },
} as const;

/** Whether `command` is on the PATH. */
export function hasCommand(command: string): boolean {
  return spawnSync("sh", ["-c", 'command -v "$1" >/dev/null 2>&1', "sh", command]).status === 0;
}

/** True when CI asks that every peer be present (`OCSP_LAB_REQUIRE_PEERS=1`, set by .ci/run). */
export const PEERS_REQUIRED = process.env.OCSP_LAB_REQUIRE_PEERS === "1";

function missingPeerMessage(command: string, aptPackage: string): string {
  return `${command} is not installed but OCSP_LAB_REQUIRE_PEERS=1 requires it: apt-get install -y ${aptPackage} (.ci/run does)`;
}

/**
 * `it` for a test that drives a real peer (nginx, gnutls-cli, redis-server, chromium...): the
 * test runs when `command` is installed; on a developer's machine without it the test is
 * skipped with the reason in its name; with `OCSP_LAB_REQUIRE_PEERS=1` (CI) it fails, saying
 * what to install.
 */
export function itWithPeer(command: string, aptPackage = command): typeof it {
  if (hasCommand(command)) return it;
  if (!PEERS_REQUIRED) {
    return ((name: string, ...rest: unknown[]) =>
      (it.skip as (...a: unknown[]) => void)(`${name} (skipped: ${command} is not installed)`, ...rest)) as unknown as typeof it;
  }
  return ((name: string) =>
    it(name, () => {
      throw new Error(missingPeerMessage(command, aptPackage));
    })) as unknown as typeof it;
}

/** `describe` for a group of tests that need a real peer, with the same rule as itWithPeer. */
export function describeWithPeer(command: string, aptPackage = command): typeof describe {
  if (hasCommand(command)) return describe;
  if (!PEERS_REQUIRED) {
    return ((name: string, ...rest: unknown[]) =>
      (describe.skip as (...a: unknown[]) => void)(
        `${name} (skipped: ${command} is not installed)`,
        ...rest,
      )) as unknown as typeof describe;
  }
  return ((name: string) =>
    describe(name, () => {
      it(`needs ${command}`, () => {
        throw new Error(missingPeerMessage(command, aptPackage));
      });
    })) as unknown as typeof describe;
}

/** Standard streams for a command run in-process. */
export interface CapturedStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Run a command's `main(argv, io)` (the function its bin calls) in-process with captured
 * stdout and stderr; `rest` is the rest of its io (env, stopSignal...). Resolves with the exit
 * code and what it printed.
 */
export async function inProcess<R extends object>(
  main: (argv: string[], io: R & CapturedStreams) => Promise<number>,
  argv: string[],
  rest: R,
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write: (chunk, _encoding, done) => {
        append(String(chunk));
        done();
      },
    });
  const code = await main(argv, { ...rest, stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
  return { code, out, err };
}

/** Options of startTestLab. */
export interface TestLabOptions<C extends Clock = Clock> {
  /** Clock of the CA (notBefore, revocation times) and the responder (thisUpdate, nextUpdate...); default systemClock. */
  clock?: C;
  /** nextUpdate − thisUpdate of the responder's answers, in seconds; default the responder's own (3600). */
  validitySeconds?: number;
  /**
   * The leaf, as options of `CertificateAuthority.issueServer` (ocspUrl defaults to the
   * responder's URL); default `{ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] }`.
   */
  leaf?: IssueServerOptions;
}

/** A lab CA with a running OcspResponder for it and a leaf that points at it; see startTestLab. */
export interface TestLab<C extends Clock = Clock> {
  /** The temp folder; the CA's state is in `<dir>/ca`. */
  dir: string;
  ca: CertificateAuthority;
  /** Listening on 127.0.0.1, port 0, on `clock`. */
  responder: StartedOcspResponder;
  /** A server certificate of `ca` whose OCSP URL is `responder.url`. */
  leaf: IssuedCertificate;
  /** The clock given, or systemClock. */
  clock: C;
  /** Another server certificate of `ca`, its OCSP URL `responder.url` unless `options.ocspUrl` says otherwise. */
  issue(options?: IssueServerOptions): Promise<IssuedCertificate>;
  /** Stop the responder, then remove `dir`. Idempotent. */
  stop(): Promise<void>;
  /** `await using` support: same as stop(). */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The lab the stapler's tests share: a fresh temp folder, a CA initialised in `<dir>/ca` on
 * `options.clock`, an OcspResponder for it (127.0.0.1, port 0) on the same clock answering with
 * `options.validitySeconds` of validity, and a leaf issued with the responder's URL as its OCSP
 * URL (RFC 5280 section 4.2.2.1, authorityInfoAccess). Stop it with `stop()` or `await using`
 * once whatever uses the responder is stopped. Rejects with the error of the step that failed
 * (CA init, responder start, issuance), after stopping what was started and removing the folder.
 * The packages are imported when called, so test files that never start a lab do not load them.
 */
export async function startTestLab<C extends Clock = Clock>(options: TestLabOptions<C> = {}): Promise<TestLab<C>> {
  const [{ CertificateAuthority }, { systemClock }, { OcspResponder }] = await Promise.all([
    import("@ocsp-lab/ca"),
    import("@ocsp-lab/ocsp"),
    import("@ocsp-lab/responder"),
  ]);
  const clock = options.clock ?? (systemClock as C);
  const { dir, cleanup } = await tempDir();
  let responder: StartedOcspResponder | undefined;
  const stop = async (): Promise<void> => {
    await responder?.stop();
    await cleanup();
  };
  try {
    const ca = await CertificateAuthority.init(join(dir, "ca"), { clock });
    const builder = (await OcspResponder.forCa(ca)).withClock(clock);
    if (options.validitySeconds !== undefined) builder.withValidity(options.validitySeconds);
    const started = await builder.start();
    responder = started;
    const issue = (o: IssueServerOptions = {}): Promise<IssuedCertificate> => ca.issueServer({ ocspUrl: started.url, ...o });
    const leaf = await issue(options.leaf ?? { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    return { dir, ca, responder: started, leaf, clock, issue, stop, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A fresh ECDSA P-256 key and a PKCS#10 CSR made by `openssl req` (a key the CA never sees),
 * written to `<dir>/<name>.key` and `<dir>/<name>.csr`. `subject` is openssl's `/CN=...` form;
 * `subjectAltName` is an `-addext` value such as `DNS:a.test,IP:127.0.0.2`.
 * @throws Error with openssl's stderr when it fails.
 */
export async function opensslCsr(options: {
  dir: string;
  name: string;
  subject: string;
  subjectAltName?: string;
}): Promise<{ keyFile: string; csrFile: string; csrPem: string }> {
  const keyFile = join(options.dir, `${options.name}.key`);
  const csrFile = join(options.dir, `${options.name}.csr`);
  const args = [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    keyFile,
    "-subj",
    options.subject,
  ];
  if (options.subjectAltName) args.push("-addext", `subjectAltName=${options.subjectAltName}`);
  const r = await run("openssl", [...args, "-out", csrFile]);
  if (r.code !== 0) throw new Error(`openssl req exited ${r.code}: ${r.stderr}`);
  return { keyFile, csrFile, csrPem: await readFile(csrFile, "utf8") };
}

/**
 * One HTTPS request with `curl --cert-status` to localhost:port (resolved to 127.0.0.1),
 * trusting `caFile`: exit 0 only with a good, verified staple.
 */
export function curlCertStatus(options: { port: number; caFile: string; servername?: string }): Promise<Ran> {
  const name = options.servername ?? "localhost";
  return run("curl", [
    "-sS",
    "--cert-status",
    "--cacert",
    options.caFile,
    "--resolve",
    `${name}:${options.port}:127.0.0.1`,
    `https://${name}:${options.port}/`,
  ]);
}

/**
 * Start `ocsp-lab up --json` (plus `args`) as a child process on the state folder `stateDir` and
 * resolve with its endpoints (the first line it prints) and the child, which the caller stops.
 */
export async function startUp(stateDir: string, args: string[] = []): Promise<{ endpoints: LabEndpoints; child: ChildProcess }> {
  const child = spawn(process.execPath, [OCSP_LAB_BIN, "up", "--json", ...args], {
    env: { ...process.env, OCSP_LAB_HOME: stateDir },
    cwd: stateDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await once(lines, "line", { signal: AbortSignal.timeout(30_000) })) as [string];
  return { endpoints: JSON.parse(first) as LabEndpoints, child };
}
