import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IssuedCertificate } from "@ocsp-lab/ca";
import { mapConcurrent } from "../concurrent.js";
import { UsageError } from "../errors.js";
import { OcspLab } from "../ocsp-lab.js";
import type { ReportRow, RunReport, ScenarioResult, ScenarioStart } from "../run.js";
import { ApacheServer } from "./apache-server.js";
import { HaproxyServer } from "./haproxy-server.js";
import { NginxServer } from "./nginx-server.js";
import type { ServedFiles, ServerAvailability, ServerDriver, StartedServerUnderTest } from "./server.js";
import { SERVER_CHECKS } from "./server-checks.js";
import { type ServerScenario, builtInServerScenarios, loadServerScenarioFile } from "./server-scenario.js";
import { StaplerServer } from "./stapler-server.js";

/**
 * How many scenario × server runs go at once by default: 4. They spend their time waiting on
 * the servers' own timers (Apache's cache timeout, the feed interval), not on the CPU.
 */
export const DEFAULT_SERVER_JOBS = 4;

/** Options of runServerScenarios. */
export interface ServerRunOptions {
  /** Server names (knownServers); default every built-in one. */
  servers?: string[];
  /** Built-in server scenario names to run; default all (none when `files` are given alone). */
  scenarios?: string[];
  /** Server scenario files to run after the named built-in ones. */
  files?: string[];
  /** How many scenario × server runs at once (each in its own lab); default DEFAULT_SERVER_JOBS. */
  jobs?: number;
  onRow?: (row: ReportRow) => void;
  onScenarioStart?: (scenario: ScenarioStart) => void;
  onScenarioDone?: (scenario: ScenarioResult) => void;
  /** Parent of the throw-away folders; default the OS temp folder. Removed afterwards. */
  workDir?: string;
  /** The wall clock the report's `startedAt` is read from; default `() => new Date()`. */
  now?: () => Date;
}

/** Every server the harness can start: nginx, Apache httpd, HAProxy and the lab's stapler. */
export function knownServers(): ServerDriver[] {
  return [new NginxServer(), new ApacheServer(), new HaproxyServer(), new StaplerServer()];
}

/**
 * The servers named, in the order given (every known one when none are).
 * @throws UsageError naming the first unknown server and the known ones.
 */
export function selectServers(names?: string[]): ServerDriver[] {
  const all = knownServers();
  if (!names || names.length === 0) return all;
  return names.map((n) => {
    const found = all.find((s) => s.name === n);
    if (!found)
      throw new UsageError(
        "server",
        n,
        all.map((s) => s.name),
      );
    return found;
  });
}

/**
 * The built-in server scenarios named (all when none), then those of `files`.
 * @throws UsageError for an unknown name; ScenarioFileError for a bad file.
 */
export async function selectServerScenarios(names?: string[], files?: string[]): Promise<ServerScenario[]> {
  const own = await Promise.all((files ?? []).map((f) => loadServerScenarioFile(f)));
  if (own.length > 0 && (!names || names.length === 0)) return own;
  const builtIn = await builtInServerScenarios();
  if (!names || names.length === 0) return [...builtIn, ...own];
  const picked = names.map((n) => {
    const found = builtIn.find((s) => s.name === n);
    if (!found)
      throw new UsageError(
        "server scenario",
        n,
        builtIn.map((s) => s.name),
      );
    return found;
  });
  return [...picked, ...own];
}

/**
 * Run server scenarios against servers under test: for each scenario × server, a throw-away
 * lab (CA and responder on 127.0.0.1 ephemeral ports, its own folder), a certificate issued by
 * it whose AIA OCSP URL is its responder, copied into the server's folder, the server started
 * from its template, driven and watched by the scenario's check (SERVER_CHECKS, real time: the
 * servers run on their own clocks), then stopped. One row per scenario × server (client column:
 * the server's name): expected (the scenario's `expect` for it, `-` when it names none: the row
 * then only reports, verdict `ok`), observed, verdict, detail (timings; the server's log when it
 * failed to start). A server that cannot run here (not installed) gets `skipped` rows with the reason.
 * @throws UsageError for an unknown server or scenario; ScenarioFileError for a bad file;
 * RangeError for `jobs` not a whole number ≥ 1.
 */
export async function runServerScenarios(options: ServerRunOptions = {}): Promise<RunReport> {
  const started = performance.now();
  const startedAt = (options.now ?? (() => new Date()))();
  const jobs = options.jobs ?? DEFAULT_SERVER_JOBS;
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`jobs must be a whole number ≥ 1, got ${jobs}`);
  const servers = selectServers(options.servers);
  const scenarios = await selectServerScenarios(options.scenarios, options.files);
  const availability = new Map<string, ServerAvailability>(
    await Promise.all(servers.map(async (s) => [s.name, await s.available()] as const)),
  );
  const units = scenarios.flatMap((scenario, index) => servers.map((server) => ({ scenario, index, server })));
  const work = await mkdtemp(join(options.workDir ?? tmpdir(), "ocsp-lab-servers-"));
  const began = new Map<number, number>();
  const pending = new Map<number, number>(scenarios.map((_, i) => [i, servers.length]));
  const byScenario = new Map<number, ReportRow[]>();
  const results: ScenarioResult[] = [];
  try {
    const rows = await mapConcurrent(units, jobs, async ({ scenario, index, server }, u) => {
      if (!began.has(index)) {
        began.set(index, performance.now());
        options.onScenarioStart?.({ index, total: scenarios.length, name: scenario.name });
      }
      const row = await runUnit(scenario, server, availability.get(server.name)!, join(work, `${u + 1}`));
      options.onRow?.(row);
      byScenario.set(index, [...(byScenario.get(index) ?? []), row]);
      const left = pending.get(index)! - 1;
      pending.set(index, left);
      if (left === 0) {
        const result: ScenarioResult = {
          index,
          total: scenarios.length,
          name: scenario.name,
          // In the servers' order, whatever order they finished in.
          rows: servers.map((s) => byScenario.get(index)!.find((r) => r.client === s.name)!),
          durationMs: Math.round(performance.now() - began.get(index)!),
        };
        results[index] = result;
        options.onScenarioDone?.(result);
      }
      return row;
    });
    return {
      rows,
      ok: rows.every((r) => r.verdict !== "MISMATCH"),
      startedAt,
      durationMs: Math.round(performance.now() - started),
      jobs,
      scenarios: results.map((r) => ({
        name: r.name,
        durationMs: r.durationMs,
        verdict: r.rows.some((row) => row.verdict === "MISMATCH") ? "MISMATCH" : "ok",
      })),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One scenario against one server, in `dir`: its row. Never throws (a failure is the row's observation). */
async function runUnit(
  scenario: ServerScenario,
  server: ServerDriver,
  avail: ServerAvailability,
  dir: string,
): Promise<ReportRow> {
  const expected = scenario.expect[server.name] ?? "-";
  const row = { scenario: scenario.name, client: server.name, expected };
  if (!avail.ok) return { ...row, observed: "-", verdict: "skipped", detail: avail.reason };
  await fs.mkdir(dir, { recursive: true });
  const lab = await new OcspLab()
    .withStateDir(join(dir, "lab"))
    .withDefaultLeaf(false)
    .withResponseValidity(scenario.response_validity / 1000)
    .start();
  let running: StartedServerUnderTest | undefined;
  try {
    const serverDir = join(dir, server.name);
    await fs.mkdir(serverDir, { recursive: true });
    const files: ServedFiles = {
      certFile: join(serverDir, "cert.pem"),
      keyFile: join(serverDir, "key.pem"),
      chainFile: join(serverDir, "chain.pem"),
      fullchainFile: join(serverDir, "fullchain.pem"),
      caFile: lab.caFile,
    };
    const place = async (leaf: IssuedCertificate): Promise<void> => {
      for (const k of ["certFile", "keyFile", "chainFile", "fullchainFile"] as const) await fs.copyFile(leaf[k], files[k]);
    };
    const leaf = await lab.issue();
    await place(leaf);
    const result = await SERVER_CHECKS[scenario.check]!({
      lab,
      leaf,
      withinMs: scenario.within,
      start: async () => {
        if (running) return running;
        running = await server.start({ dir: serverDir, files, responderUrl: lab.responderUrl, servername: "localhost" });
        return running;
      },
      renew: async () => {
        const renewed = await lab.issue();
        await place(renewed);
        return renewed;
      },
    });
    const verdict = expected === "-" || result.observed === expected ? "ok" : "MISMATCH";
    return { ...row, observed: result.observed, verdict, detail: result.detail };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { ...row, observed: `failed: ${message}`, verdict: expected === "-" ? "ok" : "MISMATCH", detail: message };
  } finally {
    await (running as StartedServerUnderTest | undefined)?.stop();
    await lab.stop();
  }
}
