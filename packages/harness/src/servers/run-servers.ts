import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IssuedCertificate } from "@ocsp-lab/ca";
import { mapConcurrent } from "../concurrent.js";
import { ServerAttachError, ServerUnderTestError, UsageError } from "../errors.js";
import { parseLabState, setLabState } from "../set.js";
import { OcspLab } from "../ocsp-lab.js";
import type { ReportRow, RunOptions, RunReport, ScenarioResult } from "../run.js";
import { ApacheServer } from "./apache-server.js";
import { HaproxyServer } from "./haproxy-server.js";
import { NginxServer } from "./nginx-server.js";
import type { ServedFiles, ServerAvailability, ServerDriver, StartedServerUnderTest } from "./server.js";
import { CHECKS_THAT_START, SERVER_CHECKS } from "./server-checks.js";
import { RemoteServer, parseHostPort } from "./remote-server.js";
import { type ServerScenario, builtInServerScenarios, loadServerScenarioFile } from "./server-scenario.js";
import { StaplerServer } from "./stapler-server.js";

/**
 * How many scenario × server runs go at once by default: 4. They spend their time waiting on
 * the servers' own timers (Apache's cache timeout, the feed interval), not on the CPU.
 */
export const DEFAULT_SERVER_JOBS = 4;

/**
 * Options of runServerScenarios. The callbacks, `workDir` and `now` are RunOptions' (one row
 * per scenario × server; a scenario is done when every server has run it).
 */
export interface ServerRunOptions extends Pick<RunOptions, "onRow" | "onScenarioStart" | "onScenarioDone" | "workDir" | "now"> {
  /** Server names (knownServers); default every built-in one. */
  servers?: string[];
  /** Built-in server scenario names to run; default all (none when `files` are given alone). */
  scenarios?: string[];
  /** Server scenario files to run after the named built-in ones. */
  files?: string[];
  /** How many scenario × server runs at once (each in its own lab); default DEFAULT_SERVER_JOBS. */
  jobs?: number;
  /**
   * For servers given as `host:port` in `servers` (RemoteServer): the running `ocsp-lab up`
   * whose responder the served certificate points at, and that certificate's PEM file.
   */
  attach?: { stateDir: string; certFile: string };
}

/** Every server the harness can start: nginx, Apache httpd, HAProxy and the lab's stapler. */
export function knownServers(): ServerDriver[] {
  return [new NginxServer(), new ApacheServer(), new HaproxyServer(), new StaplerServer()];
}

/**
 * The servers named, in the order given (every known one when none are); a `host:port` name is
 * a RemoteServer, which needs `attach`.
 * @throws UsageError naming the first unknown server and the known ones; ServerAttachError for
 * a host:port without `attach`.
 */
export function selectServers(names?: string[], attach?: ServerRunOptions["attach"]): ServerDriver[] {
  const all = knownServers();
  if (!names || names.length === 0) return all;
  return names.map((n) => {
    const remote = parseHostPort(n);
    if (remote) {
      if (!attach) throw new ServerAttachError(n);
      return new RemoteServer({ ...remote, ...attach });
    }
    const found = all.find((s) => s.name === n);
    if (!found) throw new UsageError("server", n, [...all.map((s) => s.name), "host:port"]);
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
  const servers = selectServers(options.servers, options.attach);
  const scenarios = await selectServerScenarios(options.scenarios, options.files);
  const availability = new Map<string, ServerAvailability>(
    await Promise.all(servers.map(async (s) => [s.name, await s.available()] as const)),
  );
  const units = scenarios.flatMap((scenario, index) => servers.map((server) => ({ scenario, index, server })));
  // Servers the harness did not start share one responder (the user's up): one check at a time.
  let attachedTurn: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(task: () => Promise<T>): Promise<T> => {
    const result = attachedTurn.then(task);
    attachedTurn = result.catch(() => undefined);
    return result;
  };
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
      const avail = availability.get(server.name)!;
      const row =
        server instanceof RemoteServer
          ? await inTurn(() => runAttached(scenario, server, avail))
          : await runUnit(scenario, server, avail, join(work, `${u + 1}`));
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
      setResponder: async (state) => lab.responder.set(leaf, state),
      clearResponder: async () => lab.responder.clear(leaf),
      revoke: async () => {
        await lab.revoke(leaf, "keyCompromise");
      },
      withinMs: scenario.within,
      start: async () => {
        if (running) return running;
        running = await server.start({ dir: serverDir, files, responderUrl: lab.responderUrl, servername: "localhost" });
        return running;
      },
      renew: async () => {
        const renewed = await lab.issue();
        await place(renewed);
        return renewed.serial;
      },
    });
    return judged(row, result.observed, result.detail);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return judged(row, `failed: ${message}`, message);
  } finally {
    await (running as StartedServerUnderTest | undefined)?.stop();
    await lab.stop();
  }
}

/**
 * One scenario against a server the harness did not start, through the running up's admin API
 * (setLabState, as `ocsp-lab set`): the revocation is a reversible status override, and every
 * state the check set is cleared afterwards, so the user's lab is left as it was. Checks that
 * start or reload the server are skipped. Never throws.
 */
async function runAttached(scenario: ServerScenario, server: RemoteServer, avail: ServerAvailability): Promise<ReportRow> {
  const expected = scenario.expect[server.name] ?? "-";
  const row = { scenario: scenario.name, client: server.name, expected };
  if (!avail.ok) return { ...row, observed: "-", verdict: "skipped", detail: avail.reason };
  if ((CHECKS_THAT_START as readonly string[]).includes(scenario.check))
    return {
      ...row,
      observed: "-",
      verdict: "skipped",
      detail: `check ${scenario.check} starts or reloads the server, and the harness did not start ${server.name}`,
    };
  const { stateDir, certFile } = server.options;
  const set = async (words: string[]): Promise<void> => {
    await setLabState({ stateDir, target: certFile, state: parseLabState(words) });
  };
  let touched = false;
  try {
    const running = await server.start();
    const result = await SERVER_CHECKS[scenario.check]!({
      setResponder: async (state) => {
        touched = true;
        await set([state]);
      },
      clearResponder: () => set(["clear"]),
      revoke: async () => {
        touched = true;
        await set(["revoked"]);
      },
      start: async () => running,
      renew: async () => {
        throw new ServerUnderTestError(server.name, "cannot be renewed by the harness: it did not start it");
      },
      withinMs: scenario.within,
    });
    return judged(row, result.observed, result.detail);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return judged(row, `failed: ${message}`, message);
  } finally {
    if (touched) await set(["clear"]).catch(() => undefined);
  }
}

/** A row with its verdict: `ok` when the server observed what was expected, or nothing was (`-`: the row only reports). */
function judged(row: Pick<ReportRow, "scenario" | "client" | "expected">, observed: string, detail: string): ReportRow {
  return { ...row, observed, verdict: row.expected === "-" || observed === row.expected ? "ok" : "MISMATCH", detail };
}
