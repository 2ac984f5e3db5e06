import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { connect, createServer } from "node:net";
import { ServerUnderTestError } from "../errors.js";

/** How long a server under test may take to listen or to exit, in milliseconds. */
export const SERVER_START_TIMEOUT_MS = 15_000;

/**
 * A free TCP port on 127.0.0.1, found by binding port 0 and closing it. The servers under test
 * take their port from a config file, so the harness cannot hand them a listening socket; a
 * start that finds it taken meanwhile is retried on another (see startWithPort).
 */
export async function freeLocalPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Resolve once `check()` is true, polling every `everyMs`; false when `deadlineMs` passed or `stop()` says so first. */
export async function pollUntil(
  check: () => Promise<boolean> | boolean,
  deadlineMs: number,
  options: { everyMs?: number; stop?: () => boolean } = {},
): Promise<boolean> {
  const end = performance.now() + deadlineMs;
  for (;;) {
    if (await check()) return true;
    if (options.stop?.() || performance.now() >= end) return false;
    await new Promise((r) => setTimeout(r, options.everyMs ?? 50));
  }
}

/** A server process the harness started: stopped with SIGTERM (SIGKILL after the deadline). */
export class ServerProcess {
  readonly child: ChildProcess;
  private output = "";
  private exited = false;
  private readonly exit: Promise<void>;

  /** Spawn `command args` with stdin closed, capturing its output (for the log on failure). */
  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => this.append(d));
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => this.append(d));
    this.exit = new Promise((resolve) => {
      this.child.once("error", (err) => {
        this.append(`${command}: ${err.message}\n`);
        this.exited = true;
        resolve();
      });
      this.child.once("exit", (code, signal) => {
        this.append(`[${command} exited: ${signal ?? code}]\n`);
        this.exited = true;
        resolve();
      });
    });
  }

  private append(d: string): void {
    // Keep the last 64 KiB: enough for a start-up failure, bounded for a long run.
    this.output = (this.output + d).slice(-65_536);
  }

  /** Whether it has exited. */
  get hasExited(): boolean {
    return this.exited;
  }

  /** What it printed on stdout and stderr so far. */
  get printed(): string {
    return this.output;
  }

  /**
   * Resolve once 127.0.0.1:port accepts connections.
   * @throws ServerUnderTestError (with what it printed and `logFile`'s tail) when it exits first or after SERVER_START_TIMEOUT_MS.
   */
  async waitListening(name: string, port: number, logFile?: string): Promise<void> {
    const ok = await pollUntil(() => accepts(port), SERVER_START_TIMEOUT_MS, { stop: () => this.exited });
    if (ok && !this.exited) return;
    const log = logFile ? await readTail(logFile) : "";
    await this.stop();
    throw new ServerUnderTestError(
      name,
      this.exited ? "exited before listening" : `not listening on 127.0.0.1:${port} within ${SERVER_START_TIMEOUT_MS} ms`,
      `${this.output}${log}`,
    );
  }

  /** Send `signal` (SIGHUP, SIGUSR1, SIGUSR2...) to it; nothing once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after SERVER_START_TIMEOUT_MS; resolves when it has exited. Never throws. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), SERVER_START_TIMEOUT_MS);
    await this.exit;
    clearTimeout(timer);
  }
}

/** The last 4 KiB of a log file, or "" when it cannot be read. */
export async function readTail(file: string): Promise<string> {
  try {
    return (await fs.readFile(file, "utf8")).slice(-4096);
  } catch {
    return "";
  }
}

/** Whether an executable exists at one of `paths` or as `name` on PATH; the first found. */
export async function findExecutable(name: string, paths: readonly string[]): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  for (const p of [...paths, ...dirs.map((d) => `${d}/${name}`)]) {
    try {
      await fs.access(p, fs.constants?.X_OK ?? 1);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}
