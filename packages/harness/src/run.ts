import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "@ocsp-lab/stapler";
import type { ClientDriver, ClientObservation, KeptSession, TlsTarget } from "./clients/client.js";
import { CurlClient } from "./clients/curl-client.js";
import { NodeStrictClient } from "./clients/node-client.js";
import { GnutlsClient } from "./clients/gnutls-client.js";
import { OpensslClient } from "./clients/openssl-client.js";
import { mapConcurrent } from "./concurrent.js";
import { CommandClientError, UsageError } from "./errors.js";
import { startLab } from "./lab.js";
import {
  builtInScenarios,
  expectedOutcome,
  loadScenarioFile,
  type ProbeResult,
  type Scenario,
  type StaplerCheck,
} from "./scenarios.js";
import { TurnClock } from "./turn-clock.js";

/** One row of the report: a scenario seen by one client (or by the stapler itself). */
export interface ReportRow {
  scenario: string;
  client: string;
  expected: string;
  observed: string;
  /** `ok`, `MISMATCH`, or `skipped` (client not installed). */
  verdict: "ok" | "MISMATCH" | "skipped";
  /** The client's own words. */
  detail: string;
}

/** One scenario of a run as it starts: its place in the run's order and its name. */
export interface ScenarioStart {
  /** 0-based position in the run's order (the catalogue's, then the files'). */
  index: number;
  /** How many scenarios the run has. */
  total: number;
  name: string;
}

/** One scenario of a run once it has finished: its rows and how long it took. */
export interface ScenarioResult extends ScenarioStart {
  /** Its rows: the stapler's, then one per client, in the clients' order. */
  rows: ReportRow[];
  /** Wall time from starting its lab to stopping it, in milliseconds. */
  durationMs: number;
}

/** How long one scenario took, for the report (time per scenario). */
export interface ScenarioTiming {
  name: string;
  /** Wall time from starting its lab to stopping it, in milliseconds. */
  durationMs: number;
  /** `MISMATCH` when any of its rows is one, else `ok`. */
  verdict: "ok" | "MISMATCH";
}

/** The result of a run. */
export interface RunReport {
  /** Every row, in the run's scenario order (stapler first, then the clients), whatever order the scenarios finished in. */
  rows: ReportRow[];
  /** True when no row is a mismatch. */
  ok: boolean;
  /** When the run started (RunOptions.now). */
  startedAt: Date;
  /** Wall time of the whole run, in milliseconds. */
  durationMs: number;
  /** How many scenarios ran at a time. */
  jobs: number;
  /** Time per scenario, in the run's order. */
  scenarios: ScenarioTiming[];
}

/** Options of runScenarios. */
export interface RunOptions {
  /** Built-in scenario names to run; default all, in order (none when `files` are given). */
  scenarios?: string[];
  /** Scenario files (YAML or JSON) to run after the named built-in ones. */
  files?: string[];
  /** Client names to drive (node, curl, openssl, gnutls); default node, curl, openssl. */
  clients?: string[];
  /**
   * Clients driven after those of `clients`, each under its own name: command-template clients
   * (`--client-cmd`, `--client-file`: parseClientCmd, loadClientFile) or any other ClientDriver.
   * Their expectations are a scenario's entries under their name, else under their clientClass.
   */
  commandClients?: ClientDriver[];
  /**
   * How many scenarios run at the same time, each in its own lab; default
   * `os.availableParallelism()` (the number of cores). A whole number ≥ 1.
   */
  jobs?: number;
  /** Called with each row as soon as it is known (for live output; scenarios running at once interleave their rows). */
  onRow?: (row: ReportRow) => void;
  /** Called when a scenario starts (its lab is being started). */
  onScenarioStart?: (scenario: ScenarioStart) => void;
  /** Called when a scenario has finished and its lab has stopped, in finishing order. */
  onScenarioDone?: (scenario: ScenarioResult) => void;
  /** Parent of the throw-away state folders; default the OS temp folder. Removed afterwards. */
  workDir?: string;
  /** The wall clock the report's `startedAt` is read from; default `() => new Date()`. */
  now?: () => Date;
}

/** The client drivers by name. */
export function defaultClients(): ClientDriver[] {
  return [new NodeStrictClient(), new CurlClient(), new OpensslClient()];
}

/** How many scenarios runScenarios runs at once by default: the number of cores (`os.availableParallelism()`). */
export function defaultJobs(): number {
  return availableParallelism();
}

/**
 * The main job: for each scenario, a throw-away CA, responder and stapler on 127.0.0.1
 * ephemeral ports, on a TurnClock of its own (real time, standing still within a synchronous
 * run), driven into the scenario's state, then probed by every client. Up to `jobs` scenarios
 * run at once; they share nothing but the process (each lab has its own state folder, ports,
 * clock, CA, responder and stapler). Returns one row per scenario × client plus one for the
 * stapler itself, one per client for each timeline step with an `expect` (client named
 * `node @1.5s`: judged right after that step), and, for a scenario with `expect_resumed`, one per
 * client that can keep a session (ClientDriver.probeKeepingSession) for its resumption of the session kept at the `save_session` step (client named `node
 * resumed`, right before that client's fresh handshake), in the run's scenario order.
 * @throws UsageError for an unknown scenario or client name; CommandClientError for two clients
 * of one name; ScenarioFileError for a bad file;
 * RangeError for `jobs` not a whole number ≥ 1; the first error of a lab that could not start
 * (after the scenarios already running have finished).
 */
export async function runScenarios(options: RunOptions = {}): Promise<RunReport> {
  const started = performance.now();
  const startedAt = (options.now ?? (() => new Date()))();
  const jobs = options.jobs ?? defaultJobs();
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`jobs must be a whole number ≥ 1, got ${jobs}`);
  const scenarios = await selectScenarios(options.scenarios, options.files);
  const clients = [...selectClients(options.clients), ...(options.commandClients ?? [])];
  const twice = clients.find((c, i) => clients.findIndex((o) => o.name === c.name) !== i);
  if (twice) throw new CommandClientError("--client-cmd", `client name "${twice.name}" is given twice: give each client its own`);
  const node = clients.find((c) => c.name === "node") ?? new NodeStrictClient();
  const availability = new Map(await Promise.all(clients.map(async (c) => [c.name, await c.available()] as const)));
  const work = await mkdtemp(join(options.workDir ?? tmpdir(), "ocsp-lab-run-"));
  const total = scenarios.length;
  let results: ScenarioResult[];
  try {
    results = await mapConcurrent(scenarios, jobs, async (scenario, index) => {
      options.onScenarioStart?.({ index, total, name: scenario.name });
      const began = performance.now();
      const rows: ReportRow[] = [];
      await runOne(scenario, join(work, `${index + 1}-${scenario.name}`), clients, node, availability, (row) => {
        rows.push(row);
        options.onRow?.(row);
      });
      const result = { index, total, name: scenario.name, rows, durationMs: Math.round(performance.now() - began) };
      options.onScenarioDone?.(result);
      return result;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const rows = results.flatMap((r) => r.rows);
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
}

async function runOne(
  scenario: Scenario,
  stateDir: string,
  clients: ClientDriver[],
  node: ClientDriver,
  availability: Map<string, { ok: true } | { ok: false; reason: string }>,
  add: (row: ReportRow) => void,
): Promise<void> {
  // A TurnClock: the scenarios judge retry spacing from the stapler's own schedule (see retryCadence).
  const cert = scenario.certificate;
  const lab = await startLab({
    stateDir,
    policy: scenario.policy,
    ...(scenario.responseValiditySeconds !== undefined ? { responseValiditySeconds: scenario.responseValiditySeconds } : {}),
    stapleSource: scenario.stapleSource,
    clock: new TurnClock(),
    beforeStapler: (parts) => scenario.beforeStapler(parts),
    ...(cert ? { leaf: { keyType: cert.key_type, mustStaple: cert.must_staple, issuer: cert.issuer } } : {}),
  });
  let check: StaplerCheck | undefined;
  // The TLS sessions the clients kept at the `save_session` step, by client name.
  const sessions = new Map<string, KeptSession>();
  try {
    // Right after a step with an `expect`: one handshake of each client, all at once.
    const probeClients = (target: TlsTarget, options: { keepSession?: boolean } = {}): Promise<ProbeResult[]> =>
      Promise.all(
        clients.map(async (client): Promise<ProbeResult> => {
          const avail = availability.get(client.name)!;
          const cls = client.clientClass ? { clientClass: client.clientClass } : {};
          if (!avail.ok) return { client: client.name, outcome: "-", detail: avail.reason, skipped: true, ...cls };
          if (!options.keepSession || !client.probeKeepingSession) return { ...(await client.probe(target)), ...cls };
          const kept = await client.probeKeepingSession(target);
          await sessions.get(client.name)?.discard();
          sessions.set(client.name, kept.session);
          return { ...kept.observation, ...cls };
        }),
      );
    try {
      check = await scenario.act({ lab, policy: parsePolicy(scenario.policy), nodeClient: node, probeClients });
    } catch (err) {
      check = { expected: "scenario reached", observed: `failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    add({
      scenario: scenario.name,
      client: "stapler",
      expected: check.expected,
      observed: check.observed,
      verdict: check.expected === check.observed ? "ok" : "MISMATCH",
      detail: check.detail ?? JSON.stringify(lab.stapler.status()[0]),
    });
    for (const s of check.steps ?? []) {
      add({
        scenario: scenario.name,
        client: `${s.client} @${Number((s.at / 1000).toFixed(3))}s`,
        expected: s.expected,
        observed: s.observed,
        verdict: s.skipped ? "skipped" : s.observed === s.expected ? "ok" : "MISMATCH",
        detail: s.detail,
      });
    }
    const target = check.target ?? lab.target;
    for (const client of clients) {
      const expected = expectedOutcome(scenario.expect, scenario.expectByClass, client);
      const avail = availability.get(client.name)!;
      // A client that cannot keep a TLS session (gnutls-cli 3.7 saves none) has no resumed row.
      if (scenario.expectResumed && client.probeKeepingSession) {
        const want = expectedOutcome(scenario.expectResumed, scenario.expectResumedByClass, client);
        const row = { scenario: scenario.name, client: `${client.name} resumed`, expected: want };
        if (!avail.ok) add({ ...row, observed: "-", verdict: "skipped", detail: avail.reason });
        else {
          const kept = sessions.get(client.name);
          const obs: ClientObservation = kept
            ? await kept.resume()
            : { client: client.name, outcome: "no session to resume", detail: "the save_session step did not run" };
          add({ ...row, observed: obs.outcome, verdict: obs.outcome === want ? "ok" : "MISMATCH", detail: obs.detail });
        }
      }
      if (!avail.ok) {
        add({ scenario: scenario.name, client: client.name, expected, observed: "-", verdict: "skipped", detail: avail.reason });
        continue;
      }
      const obs = await client.probe(target);
      add({
        scenario: scenario.name,
        client: client.name,
        expected,
        observed: obs.outcome,
        verdict: obs.outcome === expected ? "ok" : "MISMATCH",
        detail: obs.detail,
      });
    }
  } finally {
    await Promise.all([...sessions.values()].map((s) => s.discard()));
    await check?.stop?.();
    await lab.stop();
  }
}

/**
 * The built-in scenarios named, in the order given, then the scenarios of `files` in order;
 * every built-in one when neither names nor files are given.
 * @throws UsageError naming the first unknown scenario and the known ones; ScenarioFileError
 * naming the first bad file and field.
 */
export async function selectScenarios(names?: string[], files?: string[]): Promise<Scenario[]> {
  const builtIn = await builtInScenarios();
  const own: Scenario[] = [];
  for (const f of files ?? []) own.push(await loadScenarioFile(f));
  if (own.length > 0 && (!names || names.length === 0)) return own;
  return [...pick(builtIn, names, "scenario"), ...own];
}

/**
 * The client drivers named (of knownClients); node, curl and openssl when `names` is empty or absent.
 * @throws UsageError naming the first unknown client and the known ones.
 */
export function selectClients(names?: string[]): ClientDriver[] {
  return names && names.length > 0 ? pick(knownClients(), names, "client") : defaultClients();
}

/**
 * Every client driver the harness has: the default ones, then gnutls, driven only when named
 * (it is in no client class, so a scenario file's `strict`/`soft-fail` entries say nothing of it).
 */
export function knownClients(): ClientDriver[] {
  return [...defaultClients(), new GnutlsClient()];
}

function pick<T extends { name: string }>(all: readonly T[], names: string[] | undefined, what: string): T[] {
  if (!names || names.length === 0) return [...all];
  return names.map((n) => {
    const found = all.find((x) => x.name === n);
    if (!found)
      throw new UsageError(
        what,
        n,
        all.map((x) => x.name),
      );
    return found;
  });
}
