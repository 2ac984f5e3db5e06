import type { ScenarioResult, ScenarioStart } from "./run.js";

/** A stream progress is written to; `isTTY` and `columns` as a terminal's stderr has them. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** Options of RunProgress. */
export interface RunProgressOptions {
  /** Draw a spinner line of the scenarios running; default: when the stream is a TTY. */
  spinner?: boolean;
  /** Milliseconds between spinner frames; default 100. */
  frameMs?: number;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const PREFIX = "ocsp-lab run:";
/** Erase the current terminal line and return to its start (ECMA-48 CR + EL). */
const CLEAR_LINE = "\r\x1b[K";

/**
 * `ocsp-lab run: [12/37] staple-stale ok (1.2 s)`: one scenario finished, as the `done`-th of
 * `total`. The verdict is `ok` or `MISMATCH (client, …)` naming the mismatched rows' clients;
 * clients skipped (not installed) follow in parentheses.
 */
export function progressLine(done: number, result: ScenarioResult): string {
  const mismatched = result.rows.filter((r) => r.verdict === "MISMATCH").map((r) => r.client);
  const skipped = result.rows.filter((r) => r.verdict === "skipped").map((r) => r.client);
  const verdict = mismatched.length > 0 ? `MISMATCH (${mismatched.join(", ")})` : "ok";
  const skip = skipped.length > 0 ? `, ${skipped.join(", ")} skipped` : "";
  return `${PREFIX} [${done}/${result.total}] ${result.name} ${verdict}${skip} (${(result.durationMs / 1000).toFixed(1)} s)`;
}

/**
 * Live progress of a run on a stream (stderr): a line per scenario as it finishes (see
 * progressLine), and, on a terminal, a spinner line below them naming the scenarios still
 * running, redrawn every frame and erased before each finished line and by `stop()`.
 * Feed it runScenarios' onScenarioStart/onScenarioDone; call `stop()` when the run ends (also
 * when it fails), which ends the spinner's timer.
 */
export class RunProgress {
  private readonly stream: ProgressStream;
  private readonly spinner: boolean;
  private readonly frameMs: number;
  private readonly running = new Map<number, string>();
  private done = 0;
  private total = 0;
  private frame = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private drawn = false;

  /** Progress on `stream`; see RunProgressOptions. */
  constructor(stream: ProgressStream, options: RunProgressOptions = {}) {
    this.stream = stream;
    this.spinner = options.spinner ?? stream.isTTY === true;
    this.frameMs = options.frameMs ?? 100;
  }

  /** A scenario started: it joins the spinner line. */
  started(s: ScenarioStart): void {
    this.total = s.total;
    this.running.set(s.index, s.name);
    if (!this.spinner) return;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.frame = (this.frame + 1) % FRAMES.length;
        if (this.running.size > 0) this.draw();
      }, this.frameMs);
      this.timer.unref();
    }
    this.draw();
  }

  /** A scenario finished: its line is written (above the spinner). */
  finished(result: ScenarioResult): void {
    this.total = result.total;
    this.running.delete(result.index);
    this.done++;
    this.erase();
    this.stream.write(`${progressLine(this.done, result)}\n`);
    if (this.spinner && this.running.size > 0) this.draw();
  }

  /** The run is over: erase the spinner line and stop its timer. Idempotent. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.erase();
  }

  private draw(): void {
    const names = [...this.running.entries()].sort(([a], [b]) => a - b).map(([, n]) => n);
    let text = `${FRAMES[this.frame]} ${PREFIX} ${this.done}/${this.total} done, running ${names.join(", ")}`;
    const columns = this.stream.columns;
    if (columns !== undefined && columns > 1 && text.length > columns - 1) text = `${text.slice(0, columns - 2)}…`;
    this.stream.write(`${CLEAR_LINE}${text}`);
    this.drawn = true;
  }

  private erase(): void {
    if (!this.drawn) return;
    this.stream.write(CLEAR_LINE);
    this.drawn = false;
  }
}
