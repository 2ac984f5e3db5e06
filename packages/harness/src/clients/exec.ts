import { spawn } from "node:child_process";

/** What a child process did. */
export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the process could not be started (ENOENT...). */
  spawnError?: NodeJS.ErrnoException;
}

/** A child process started by startCapture, its output captured as it arrives. */
export interface CapturedProcess {
  /**
   * The first match of `pattern` in the process' stderr, checked at once and as output arrives;
   * undefined once the process has ended without one.
   */
  stderrMatch(pattern: RegExp): Promise<RegExpExecArray | undefined>;
  /** Resolves when the process has ended (or could not start); never rejects. */
  readonly done: Promise<ExecResult>;
  /** Whether it has ended. */
  readonly ended: boolean;
  /** Its stderr so far. */
  readonly stderr: string;
  /** Kill it with SIGKILL; nothing when it has ended. */
  kill(): void;
}

/**
 * Start a command and capture its output as it comes. stdin is closed, or carries `input`
 * and is then closed. The process is killed after `timeoutMs` (default 15 s). Never throws: a
 * command that cannot start ends at once with `spawnError`.
 */
export function startCapture(
  command: string,
  args: string[],
  options: { timeoutMs?: number; input?: string } = {},
): CapturedProcess {
  const child = spawn(command, args, {
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    timeout: options.timeoutMs ?? 15_000,
    killSignal: "SIGKILL",
  });
  let stdout = "";
  let stderr = "";
  let ended = false;
  const waiting = new Set<() => void>();
  const changed = (): void => {
    for (const w of [...waiting]) w();
  };
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    changed();
  });
  if (options.input !== undefined) {
    // A process that exits before reading its input makes the write fail (EPIPE): not our error.
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(options.input);
  }
  const done = new Promise<ExecResult>((resolve) => {
    const finish = (result: ExecResult): void => {
      if (ended) return;
      ended = true;
      resolve(result);
      changed();
    };
    child.on("error", (err) => finish({ code: null, stdout, stderr, spawnError: err }));
    child.on("close", (code) => finish({ code, stdout, stderr }));
  });
  return {
    done,
    get ended() {
      return ended;
    },
    get stderr() {
      return stderr;
    },
    kill() {
      if (!ended) child.kill("SIGKILL");
    },
    stderrMatch(pattern) {
      return new Promise((resolve) => {
        const check = (): void => {
          const m = pattern.exec(stderr);
          if (m || ended) {
            waiting.delete(check);
            resolve(m ?? undefined);
          }
        };
        waiting.add(check);
        check();
      });
    },
  };
}

/**
 * Run a command with stdin closed (so `openssl s_client` ends after the handshake), or given
 * `input` and then closed; capture its output, kill it after `timeoutMs`. Never throws.
 */
export function execCapture(command: string, args: string[], timeoutMs = 15_000, input?: string): Promise<ExecResult> {
  return startCapture(command, args, { timeoutMs, ...(input !== undefined ? { input } : {}) }).done;
}

/** Whether `command` can be run (`command args` exits at all). */
export async function commandAvailable(command: string, args: string[]): Promise<{ ok: true } | { ok: false; reason: string }> {
  const r = await execCapture(command, args, 10_000);
  return r.spawnError ? { ok: false, reason: `${command} is not installed (${r.spawnError.code})` } : { ok: true };
}
