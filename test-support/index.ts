/**
 * Helpers shared by every package's tests: real temp folders, real child processes, and
 * waiting on a condition with a deadline (never a bare sleep).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

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
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
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
export async function eventually<T>(probe: () => Promise<T> | T, accept: (v: T) => boolean, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await delay(50);
  }
}

/** Path of the built `ocsp-lab` command. */
export const OCSP_LAB_BIN = new URL("../packages/harness/bin/ocsp-lab.js", import.meta.url).pathname;
