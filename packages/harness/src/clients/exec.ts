import { spawn } from "node:child_process";

/** What a child process did. */
export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the process could not be started (ENOENT...). */
  spawnError?: NodeJS.ErrnoException;
}

/**
 * Run a command with stdin closed (so `openssl s_client` ends after the handshake), capture its
 * output, kill it after `timeoutMs`. Never throws.
 */
export function execCapture(command: string, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, killSignal: "SIGKILL" });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) => resolve({ code: null, stdout, stderr, spawnError: err }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Whether `command` can be run (`command args` exits at all). */
export async function commandAvailable(command: string, args: string[]): Promise<{ ok: true } | { ok: false; reason: string }> {
  const r = await execCapture(command, args, 10_000);
  return r.spawnError ? { ok: false, reason: `${command} is not installed (${r.spawnError.code})` } : { ok: true };
}
