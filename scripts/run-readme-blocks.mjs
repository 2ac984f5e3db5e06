#!/usr/bin/env node
/**
 * Runs every ```sh block of README.md, in order, with bash from the repository root, as a
 * newcomer would type them (issue 10: "A newcomer can follow the README exactly as written").
 *
 * Markers, an HTML comment on the line just before a block (invisible on GitHub):
 *   <!-- readme-blocks: skip — REASON -->
 *       the block is not run; the line printed for it says skipped and why.
 *   <!-- readme-blocks: background until FILE#KEY — REASON -->
 *       the block is started in the background (its own process group) and the next block runs
 *       once the JSON file FILE (relative to the root) has been written since the block started
 *       and has KEY, and KEY.pid (when present) is a live process. Background blocks are stopped
 *       (SIGTERM, then SIGKILL after 10 s) when the run ends, fails or is interrupted.
 * Transcripts are fenced ```text or bare ``` and are never run.
 *
 * Each block runs as `bash -e -o pipefail` with stdin closed and OCSP_LAB_HOME unset (the README
 * speaks of ./.ocsp-lab), in its own process group, which is killed when the block ends (so a
 * server a failing block started does not outlive it). The run stops at the first block that
 * fails, printing the block and the tail of its output. One line per block: its number, README
 * line, exit status and seconds.
 *
 * The README's blocks create and revoke certificates in ./.ocsp-lab, so the run refuses to start
 * when that folder exists, and removes it at the end together with every file the blocks created
 * that git does not ignore (build outputs and node_modules stay, so the clone stays usable);
 * `--keep` keeps them. Files git tracks that a block changed are reported, never reverted.
 *
 * Usage: node scripts/run-readme-blocks.mjs [--file README.md] [--timeout SECONDS] [--keep] [--list]
 * Exit status: 0 when every block ran and exited 0; 1 when one failed; 2 on bad usage.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const STATE_DIR = ".ocsp-lab";
const TAIL_LINES = 40;

/**
 * The fenced blocks of a markdown text, in order.
 * @param {string} text markdown
 * @returns {{ lang: string, line: number, code: string, marker?: string }[]} line is 1-based (the opening fence);
 *   marker is the `readme-blocks:` comment on the nearest non-blank line before the fence, without the prefix.
 */
export function fencedBlocks(text) {
  const lines = text.split("\n");
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[1];
    const start = i;
    let end = i + 1;
    while (end < lines.length && !(lines[end].startsWith(fence) && lines[end].trim() === fence)) end++;
    let p = start - 1;
    while (p >= 0 && lines[p].trim() === "") p--;
    const m = p >= 0 ? /^<!--\s*readme-blocks:\s*(.*?)\s*-->\s*$/.exec(lines[p]) : null;
    blocks.push({
      lang: open[2],
      line: start + 1,
      code: lines.slice(start + 1, end).join("\n"),
      ...(m ? { marker: m[1] } : {}),
    });
    i = end;
  }
  return blocks;
}

/**
 * What a marker asks for.
 * @param {string | undefined} marker text after `readme-blocks:`
 * @returns {{ kind: "run" } | { kind: "skip", reason: string } | { kind: "background", file: string, key: string, reason: string }}
 * @throws Error for a marker this script does not know (a typo must not silently run or skip a block).
 */
export function parseMarker(marker) {
  if (marker === undefined) return { kind: "run" };
  const [head, ...rest] = marker.split(/\s+[—-]\s+/);
  const reason = rest.join(" — ").trim();
  const words = head.trim().split(/\s+/);
  if (words[0] === "skip" && words.length === 1 && reason) return { kind: "skip", reason };
  if (words[0] === "background" && words[1] === "until" && words.length === 3) {
    const [file, key] = words[2].split("#");
    if (file && key) return { kind: "background", file, key, reason };
  }
  throw new Error(`unknown marker "readme-blocks: ${marker}": write "skip — reason" or "background until FILE#KEY — reason"`);
}

function tail(text, n = TAIL_LINES) {
  const lines = text.trimEnd().split("\n");
  return (lines.length > n ? [`… (${lines.length - n} earlier lines)`, ...lines.slice(-n)] : lines).join("\n");
}

function indent(text) {
  return text
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** Send `signal` to the process group `pgid`; false when it is gone. */
function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Stop a process group: SIGTERM, then SIGKILL after `graceMs` if anything in it is still alive. */
async function stopGroup(pgid, graceMs = 10_000) {
  if (!killGroup(pgid, "SIGTERM")) return;
  const end = Date.now() + graceMs;
  while (Date.now() < end) {
    if (!killGroup(pgid, 0)) return;
    await delay(100);
  }
  killGroup(pgid, "SIGKILL");
}

function startBlock(code, env) {
  const child = spawn("bash", ["-e", "-o", "pipefail", "-c", code], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so whatever it starts can be stopped with it
  });
  const state = { output: "", exit: undefined };
  child.stdout.setEncoding("utf8").on("data", (d) => (state.output += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (state.output += d));
  state.done = new Promise((resolveDone) => {
    child.on("error", (err) => {
      state.output += `\n${err.message}\n`;
      state.exit = { code: 127, signal: null };
      resolveDone(state.exit);
    });
    child.on("close", (code, signal) => {
      state.exit = { code, signal };
      resolveDone(state.exit);
    });
  });
  return { child, state };
}

/** Whether FILE (JSON) was written at or after `sinceMs` and has KEY with a live KEY.pid (when it has one). */
function readyFile(file, key, sinceMs) {
  const path = join(root, file);
  try {
    if (statSync(path).mtimeMs < sinceMs - 1000) return false;
    const value = JSON.parse(readFileSync(path, "utf8"))[key];
    if (value === undefined || value === null) return false;
    return typeof value.pid !== "number" || alive(value.pid);
  } catch {
    return false;
  }
}

function gitPaths(args) {
  const r = spawnSync("git", args, { cwd: root, encoding: "utf8" });
  if (r.status !== 0) return undefined;
  return new Set(r.stdout.split("\0").filter(Boolean));
}

function status(label, code, seconds, what) {
  console.log(`${label.padEnd(7)} ${what.padEnd(44)} ${String(code).padStart(4)}  ${seconds.toFixed(1).padStart(6)} s`);
}

async function main() {
  let opts;
  try {
    ({ values: opts } = parseArgs({
      options: {
        file: { type: "string", default: "README.md" },
        timeout: { type: "string", default: "900" },
        keep: { type: "boolean", default: false },
        list: { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    console.error(`run-readme-blocks: ${err.message}`);
    return 2;
  }
  const timeoutMs = Number(opts.timeout) * 1000;
  if (!(timeoutMs > 0)) {
    console.error(`run-readme-blocks: --timeout ${opts.timeout}: give a number of seconds`);
    return 2;
  }
  const readme = join(root, opts.file);
  let blocks;
  try {
    blocks = fencedBlocks(readFileSync(readme, "utf8"))
      .filter((b) => b.lang === "sh")
      .map((b) => ({ ...b, plan: parseMarker(b.marker) }));
  } catch (err) {
    console.error(`run-readme-blocks: ${opts.file}: ${err.message}`);
    return 2;
  }
  if (opts.list) {
    blocks.forEach((b, i) => {
      const first = b.code.split("\n")[0];
      console.log(`${String(i + 1).padStart(2)}  ${opts.file}:${b.line}  ${b.plan.kind}  ${first}`);
    });
    return 0;
  }
  if (existsSync(join(root, STATE_DIR))) {
    console.error(
      `run-readme-blocks: ${join(root, STATE_DIR)} exists; the README's blocks create and revoke certificates there: move it away, or run in a fresh clone`,
    );
    return 2;
  }

  const env = { ...process.env };
  delete env.OCSP_LAB_HOME;
  const untrackedBefore = gitPaths(["ls-files", "-z", "--others", "--exclude-standard", "--directory"]);
  const background = [];
  const current = new Set();
  let interrupted = false;
  const onSignal = (signal) => {
    interrupted = true;
    console.error(`run-readme-blocks: ${signal}: stopping`);
    for (const pgid of current) killGroup(pgid, "SIGTERM");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const total = performance.now();
  let failed = false;
  let ran = 0;
  let skipped = 0;
  console.log(`run-readme-blocks: ${blocks.length} sh blocks of ${opts.file}, from ${root}`);
  try {
    for (const [i, b] of blocks.entries()) {
      if (interrupted) {
        failed = true;
        break;
      }
      const what = `block ${i + 1} (${opts.file}:${b.line})`;
      if (b.plan.kind === "skip") {
        skipped++;
        console.log(`skip    ${what.padEnd(44)}    -       - s  ${b.plan.reason}`);
        continue;
      }
      const t0 = performance.now();
      const since = Date.now();
      const { child, state } = startBlock(b.code, env);
      current.add(child.pid);
      if (b.plan.kind === "background") {
        background.push({ pgid: child.pid, state, what });
        let outcome = "waiting";
        while (outcome === "waiting") {
          if (state.exit) outcome = "exited";
          else if (readyFile(b.plan.file, b.plan.key, since)) outcome = "ready";
          else if (performance.now() - t0 > timeoutMs) outcome = "timeout";
          else if (interrupted) outcome = "interrupted";
          else await delay(100);
        }
        const seconds = (performance.now() - t0) / 1000;
        if (outcome !== "ready") {
          failed = true;
          status("FAIL", state.exit?.code ?? "-", seconds, what);
          console.log(
            `  the background block ${outcome === "exited" ? `exited (${state.exit.code ?? state.exit.signal}) before` : outcome === "timeout" ? `timed out after ${opts.timeout} s waiting for` : "was interrupted waiting for"} ${b.plan.file}#${b.plan.key}:\n${indent(b.code)}\n  output:\n${indent(tail(state.output))}`,
          );
          break;
        }
        ran++;
        status("started", "bg", seconds, what);
        continue;
      }
      const timer = setTimeout(() => {
        state.output += `\nrun-readme-blocks: timed out after ${opts.timeout} s\n`;
        killGroup(child.pid, "SIGKILL");
      }, timeoutMs);
      const exit = await state.done;
      clearTimeout(timer);
      await stopGroup(child.pid, 2000); // anything the block left running
      current.delete(child.pid);
      const seconds = (performance.now() - t0) / 1000;
      ran++;
      if (exit.code !== 0) {
        failed = true;
        status("FAIL", exit.code ?? exit.signal, seconds, what);
        console.log(`  block:\n${indent(b.code)}\n  output (last ${TAIL_LINES} lines):\n${indent(tail(state.output))}`);
        break;
      }
      status("ok", 0, seconds, what);
    }
  } finally {
    for (const bg of background.reverse()) {
      await stopGroup(bg.pgid);
      current.delete(bg.pgid);
      const e = bg.state.exit;
      console.log(`stopped ${bg.what} (${e ? (e.signal ?? `exit ${e.code}`) : "still running after SIGKILL"})`);
      if (failed) console.log(`  its output (last ${TAIL_LINES} lines):\n${indent(tail(bg.state.output))}`);
    }
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    const changed = gitPaths(["diff", "-z", "--name-only"]);
    if (changed?.size) console.log(`warning: blocks changed tracked files: ${[...changed].join(", ")}`);
    if (!opts.keep) {
      const removed = [];
      if (existsSync(join(root, STATE_DIR))) {
        rmSync(join(root, STATE_DIR), { recursive: true, force: true });
        removed.push(`${STATE_DIR}/`);
      }
      const after = gitPaths(["ls-files", "-z", "--others", "--exclude-standard", "--directory"]);
      if (untrackedBefore && after)
        for (const p of after)
          if (!untrackedBefore.has(p)) {
            rmSync(join(root, p), { recursive: true, force: true });
            removed.push(p);
          }
      if (removed.length) console.log(`removed what the blocks created: ${removed.join(", ")} (--keep keeps it)`);
    }
  }
  const seconds = (performance.now() - total) / 1000;
  console.log(
    `${failed ? "FAILED" : "ok"}: ${ran} blocks run, ${skipped} skipped, of ${blocks.length} (${seconds.toFixed(1)} s)`,
  );
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
