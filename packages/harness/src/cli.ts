import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  configureProgram,
  describeSystemError,
  isMainModule,
  resolveStateDir,
  runProgram,
  processIo,
  type ServiceIo,
} from "@ocsp-lab/cli-support";
import { CRL_REASON_NAMES } from "@ocsp-lab/ocsp";
import { loadClientFile, parseClientCmd } from "./clients/command-client.js";
import { ReporterError, StateDirError } from "./errors.js";
import { formatHtml } from "./html.js";
import { formatJunit } from "./junit.js";
import { RunProgress } from "./progress.js";
import { formatMismatches, formatTable, TABLE_WIDTH } from "./report.js";
import { describeRevocation, revokeCertificate } from "./revoke.js";
import { ADMIN_TOKEN_ENV, clearRunningLab, recordRunningLab, watchParent } from "./running.js";
import { describeSetResult, LAB_STATES, parseLabState, setLabState } from "./set.js";
import { defaultJobs, runScenarios, selectClients, selectScenarios, type RunReport } from "./run.js";
import { builtInScenarios } from "./scenarios.js";
import {
  DEFAULT_SERVER_JOBS,
  knownServers,
  runServerScenarios,
  selectServerScenarios,
  selectServers,
} from "./servers/run-servers.js";
import {
  describeEndpoints,
  describeLabEvent,
  describeRevokedCertificate,
  stapleEvent,
  startPersistentLab,
  UP_POLICY,
  watchLabEvents,
  type LabEvent,
} from "./up.js";

/** What `ocsp-lab run --reporter` can make. */
const REPORTERS = ["table", "json", "junit", "html"] as const;
type Reporter = (typeof REPORTERS)[number];
/** The file each file-writing reporter writes in `--output`. */
const REPORT_FILES = { json: "report.json", junit: "junit.xml", html: "report.html" } as const;

/** Streams, environment and stop signal the CLI uses, injectable so tests read output without a child process. */
export type CliIo = ServiceIo;

const defaultIo = processIo;

const positiveSeconds =
  (name: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!(n > 0) || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name} must be a positive number of seconds, got "${v}"`);
    return n;
  };
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
/** An admin token as the admin APIs take it (8 characters or more, like `admin.token` in their config files). */
const adminToken = (v: string): string => {
  if (v.length < 8 || /\s/.test(v))
    throw new InvalidArgumentError(`--admin-token must be 8 characters or more, without spaces (got ${v.length})`);
  return v;
};
const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`a port is a whole number 0..65535, got "${v}"`);
  return n;
};

/**
 * The text of `ocsp-lab run --list`: one line per scenario, `name  description`, every
 * description starting two columns after the longest name. Empty string for no scenarios.
 */
export function formatScenarioList(scenarios: ReadonlyArray<{ name: string; description: string }>): string {
  const width = Math.max(0, ...scenarios.map((s) => s.name.length));
  return scenarios.map((s) => `${s.name.padEnd(width)}  ${s.description}\n`).join("");
}

/**
 * Run the `ocsp-lab` command with `argv` (without node and script). Resolves with the exit
 * code: 0 success, 1 failure or mismatch, 2 usage error. Errors are printed as one line,
 * without a stack trace.
 */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const builtIn = await builtInScenarios();
  const program = configureProgram(new Command("ocsp-lab"), "ocsp-lab", io, import.meta.url)
    .description("A private CA, an OCSP responder, a stapling server and real TLS clients: every revocation case on demand.")
    .option("--state-dir <dir>", "state folder of the lab CA (default $OCSP_LAB_HOME or ./.ocsp-lab)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  ocsp-lab run                                   every scenario, every client, one table",
        "  ocsp-lab run --scenario revoked --client curl  one scenario, one client",
        "  ocsp-lab run --jobs 1 --wide                   one scenario at a time, full text of every cell",
        "  ocsp-lab run my-case.yaml --client node        your own scenario file",
        "  ocsp-lab up                                    a lab that stays up; prints the commands to try",
        "  ocsp-lab up --json --query-frequency 2         the same, JSON lines for scripts (endpoints, then events)",
        "  ocsp-lab up --new-cert                         a fresh server certificate (after revoking the last one)",
        '  ocsp-lab up --admin-token "$(openssl rand -hex 16)"   both admin APIs need the token (set finds it in lab.json)',
        "  ocsp-lab revoke .ocsp-lab/certs/<serial>/cert.pem --reason keyCompromise",
        "  ocsp-lab set <serial> unknown                  a running `up` answers unknown for it (`clear` undoes)",
      ].join("\n"),
    );
  let code = 0;
  const stateDir = (): string => resolveStateDir(program.opts<{ stateDir?: string }>().stateDir, io.env);

  program
    .command("run")
    .description(
      "run every built-in scenario (or the scenario files given) against throw-away labs and print a scenario × client table; exit 1 on any mismatch",
    )
    .argument("[files...]", "scenario files (YAML or JSON) to run instead of the built-in ones")
    .option("--scenario <name...>", `built-in scenarios to run (${builtIn.map((s) => s.name).join(", ")})`)
    .option("--client <name...>", "clients to drive (default node, curl, openssl; also gnutls)")
    .option(
      "--client-cmd <name=template>",
      "also drive any client from a command template with {host} {port} {servername} {cafile}, e.g. 'mine=my-client {host}:{port} --ca {cafile}': exit 0 is connected, else refused (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option(
      "--client-file <file>",
      "also drive the command client a client file (YAML or JSON) describes: command, outcome rules, timeout, class (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .addOption(
      new Option(
        "--jobs <n>",
        `scenarios run at the same time, each in its own lab (default: the number of cores, ${defaultJobs()} here)`,
      ).argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`jobs must be a whole number ≥ 1, got "${v}"`);
        return n;
      }),
    )
    .addOption(
      new Option(
        "--reporter <name...>",
        "reports to make: table (standard output), json, junit (JUnit XML for CI), html (one self-contained page); json, junit and html go to standard output, or to --output",
      ).choices(REPORTERS),
    )
    .option(
      "--output <dir>",
      `write the json and junit reports to files in this folder (${REPORT_FILES.json}, ${REPORT_FILES.junit})`,
    )
    .option("--json", "same as --reporter json")
    .option("--wide", `print the full text of every cell, one line per row (default: fit ${TABLE_WIDTH} columns)`)
    .option("--list", "list the built-in scenarios (with --server: the server scenarios) and exit")
    .option(
      "--server-cert <file>",
      "with --server host:port: the PEM certificate that server serves, issued by the running ocsp-lab up (--state-dir) with its responder as OCSP URL",
    )
    .option(
      "--server <name...>",
      `run the server scenarios against servers under test instead (${knownServers()
        .map((s) => s.name)
        .join(", ")}; commas or spaces between names)`,
    )
    .action(
      async (
        files: string[],
        opts: {
          scenario?: string[];
          client?: string[];
          clientCmd?: string[];
          clientFile?: string[];
          jobs?: number;
          json?: boolean;
          wide?: boolean;
          list?: boolean;
          reporter?: Reporter[];
          output?: string;
          server?: string[];
          serverCert?: string;
        },
      ) => {
        const servers = opts.server?.flatMap((s) => s.split(",")).filter(Boolean);
        const attach = opts.serverCert !== undefined ? { stateDir: stateDir(), certFile: opts.serverCert } : undefined;
        if (opts.list && servers) {
          io.stdout.write(formatScenarioList(await selectServerScenarios()));
          return;
        }
        if (opts.list) {
          io.stdout.write(formatScenarioList(builtIn));
          return;
        }
        const reporters = [
          ...new Set([...(opts.reporter ?? (opts.json ? [] : ["table" as const])), ...(opts.json ? ["json" as const] : [])]),
        ];
        const toStdout = opts.output === undefined ? reporters.filter((r) => r !== "table") : [];
        if (toStdout.length > 1 || (toStdout.length === 1 && reporters.includes("table"))) throw new ReporterError(reporters);
        if (opts.output !== undefined) await mkdir(opts.output, { recursive: true });
        const progress = new RunProgress(io.stderr);
        let report: RunReport;
        if (servers) {
          const picked = selectServers(servers, attach);
          const scenarios = await selectServerScenarios(opts.scenario, files);
          const jobs = opts.jobs ?? DEFAULT_SERVER_JOBS;
          io.stderr.write(
            `ocsp-lab run: ${plural(scenarios.length, "server scenario")} × ${plural(picked.length, "server")}, ${jobs} at a time, each with a throw-away CA and responder\n`,
          );
          try {
            report = await runServerScenarios({
              servers,
              ...(attach ? { attach } : {}),
              ...(opts.scenario ? { scenarios: opts.scenario } : {}),
              files,
              jobs,
              onScenarioStart: (s) => progress.started(s),
              onScenarioDone: (r) => progress.finished(r),
            });
          } finally {
            progress.stop();
          }
        } else {
          const scenarios = await selectScenarios(opts.scenario, files);
          const commandClients = [...(opts.clientCmd ?? []).map((c) => parseClientCmd(c))];
          for (const f of opts.clientFile ?? []) commandClients.push(await loadClientFile(f));
          const clients = [...selectClients(opts.client), ...commandClients];
          const jobs = opts.jobs ?? defaultJobs();
          io.stderr.write(
            `ocsp-lab run: ${plural(scenarios.length, "scenario")} × ${plural(clients.length, "client")}, ${Math.min(jobs, scenarios.length)} at a time, each with a throw-away CA, responder and stapler\n`,
          );
          try {
            report = await runScenarios({
              scenarios: opts.scenario,
              files,
              clients: opts.client,
              commandClients,
              jobs,
              onScenarioStart: (s) => progress.started(s),
              onScenarioDone: (r) => progress.finished(r),
            });
          } finally {
            progress.stop();
          }
        }
        for (const reporter of reporters) {
          if (reporter === "table") {
            io.stdout.write(formatTable(report, { wide: opts.wide === true }));
            const mismatches = formatMismatches(report);
            if (mismatches) io.stdout.write(`${mismatches}\n`);
            continue;
          }
          const text =
            reporter === "json"
              ? `${JSON.stringify(report, null, 2)}\n`
              : reporter === "junit"
                ? formatJunit(report)
                : formatHtml(report);
          if (opts.output === undefined) io.stdout.write(text);
          else {
            const file = join(opts.output, REPORT_FILES[reporter]);
            await writeFile(file, text);
            io.stderr.write(`ocsp-lab run: wrote the ${reporter} report to ${file}\n`);
          }
        }
        // Whatever the reporters: 0 only when every row observed what it expected.
        code = report.ok ? 0 : 1;
      },
    );

  program
    .command("up")
    .description("start a persistent lab (CA in the state folder, responder, stapler) until Ctrl-C or SIGTERM")
    .option(
      "--json",
      "print one JSON line with the endpoints once ready, then one JSON line per event (for scripts; --quiet: endpoints only)",
    )
    .option("--quiet", "print no event lines after the endpoints (staples fetched, failures, revocations)")
    .option("--new-cert", "issue a fresh server certificate instead of reusing the last one (e.g. after revoking it)")
    .addOption(
      new Option(
        "--admin-token <token>",
        `bearer token the responder's and the stapler's admin APIs (and the responder's /metrics) require, 8 characters or more (default $${ADMIN_TOKEN_ENV}; none: loopback only, no token); recorded for ocsp-lab set in lab.json, mode 0600`,
      ).argParser(adminToken),
    )
    .addOption(new Option("--responder-port <port>", "responder port (default: last one used, else ephemeral)").argParser(port))
    .addOption(new Option("--port <port>", "stapler port (default ephemeral)").argParser(port))
    .addOption(
      new Option("--query-frequency <seconds>", `seconds between OCSP queries (default ${UP_POLICY.query_frequency})`).argParser(
        positiveSeconds("query-frequency"),
      ),
    )
    .addOption(
      new Option(
        "--response-timeout <seconds>",
        `seconds before a query fails (default ${UP_POLICY.response_timeout})`,
      ).argParser(positiveSeconds("response-timeout")),
    )
    .addOption(
      new Option(
        "--recovery-frequency <seconds>",
        `seconds between retries after a failure (default ${UP_POLICY.recovery_frequency})`,
      ).argParser(positiveSeconds("recovery-frequency")),
    )
    .addOption(
      new Option(
        "--recovery-max-tries <n>",
        `failures in a row before the staple is dropped (default ${UP_POLICY.recovery_max_tries})`,
      ).argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1)
          throw new InvalidArgumentError(`recovery-max-tries must be a whole number ≥ 1, got "${v}"`);
        return n;
      }),
    )
    .action(
      async (opts: {
        json?: boolean;
        quiet?: boolean;
        newCert?: boolean;
        adminToken?: string;
        responderPort?: number;
        port?: number;
        queryFrequency?: number;
        responseTimeout?: number;
        recoveryFrequency?: number;
        recoveryMaxTries?: number;
      }) => {
        const policy = {
          ...(opts.queryFrequency !== undefined ? { query_frequency: opts.queryFrequency } : {}),
          ...(opts.responseTimeout !== undefined ? { response_timeout: opts.responseTimeout } : {}),
          ...(opts.recoveryFrequency !== undefined ? { recovery_frequency: opts.recoveryFrequency } : {}),
          ...(opts.recoveryMaxTries !== undefined ? { recovery_max_tries: opts.recoveryMaxTries } : {}),
        };
        const envToken = io.env[ADMIN_TOKEN_ENV];
        if (opts.adminToken === undefined && envToken && (envToken.length < 8 || /\s/.test(envToken)))
          throw new InvalidArgumentError(
            `${ADMIN_TOKEN_ENV} must be 8 characters or more, without spaces (got ${envToken.length})`,
          );
        const token = opts.adminToken ?? (envToken || undefined);
        const stopping = io.stopSignal().then((signal) => `${signal} received`);
        const started = await startPersistentLab({
          ...(token !== undefined ? { adminToken: token } : {}),
          stateDir: stateDir(),
          policy,
          ...(opts.responderPort !== undefined ? { responderPort: opts.responderPort } : {}),
          ...(opts.port !== undefined ? { staplerPort: opts.port } : {}),
          ...(opts.newCert ? { newCert: true } : {}),
        });
        const { lab, endpoints } = started;
        // Events wait in a queue until the endpoints are out, so the first line is always the banner.
        const queued: LabEvent[] = [];
        let print = (e: LabEvent): void => void queued.push(e);
        const stopEvents = opts.quiet ? () => undefined : watchLabEvents(lab, (e) => print(e));
        for (const problem of started.problems) io.stderr.write(`ocsp-lab: skipped a saved state: ${problem}\n`);
        if (started.revokedCertificate) io.stderr.write(`ocsp-lab: ${describeRevokedCertificate(started.revokedCertificate)}\n`);
        await recordRunningLab(lab.ca, {
          pid: process.pid,
          adminUrl: endpoints.adminUrl,
          staplerAdminUrl: endpoints.staplerAdminUrl,
          serial: endpoints.serial,
          ...(token !== undefined ? { adminToken: token, staplerAdminToken: token } : {}),
        }).catch((err: unknown) => {
          throw new StateDirError(
            `state folder ${endpoints.stateDir}: cannot record the running lab in lab.json: ${describeSystemError(err) ?? String(err)}`,
            { cause: err },
          );
        });
        io.stdout.write(
          opts.json ? `${JSON.stringify(endpoints)}\n` : `${describeEndpoints(endpoints, { events: !opts.quiet })}\n`,
        );
        if (!opts.quiet) {
          print = (e) => io.stdout.write(opts.json ? `${JSON.stringify(e)}\n` : `${describeLabEvent(e)}\n`);
          // The staple the stapler started with (its first query ran before the events were watched).
          for (const s of lab.stapler.status()) print(stapleEvent(s, lab.clock.now()));
          for (const e of queued.splice(0)) print(e);
        }
        let stopParentWatch = (): void => undefined;
        const orphaned = new Promise<string>((resolve) => {
          stopParentWatch = watchParent((pid) => resolve(`process ${pid} that started it went away`));
        });
        const why = await Promise.race([stopping, orphaned]);
        stopParentWatch();
        stopEvents();
        await clearRunningLab(lab.ca, process.pid);
        await lab.stop();
        // The terminal or pipe may have gone with the parent: a failed write must not turn a clean stop into a crash.
        io.stdout.on?.("error", () => undefined);
        if (!opts.json) io.stdout.write(`ocsp-lab: ${why}, lab stopped; the CA is kept in ${endpoints.stateDir}\n`);
      },
    );

  program
    .command("revoke")
    .description("revoke a certificate of the lab CA by serial or certificate file; a running lab sees it within 1 s")
    .argument("<serial|certFile>", "hex serial, or path of a PEM certificate issued by the lab CA")
    .option("--reason <reason>", `RFC 5280 CRLReason (${CRL_REASON_NAMES.join(", ")})`, "unspecified")
    .addOption(
      new Option("--time <iso8601>", "revocation time (default now)").argParser((v) => {
        const t = new Date(v);
        if (Number.isNaN(t.getTime()))
          throw new InvalidArgumentError(`--time must be an ISO 8601 date such as 2026-01-31T12:00:00Z, got "${v}"`);
        return t;
      }),
    )
    .option("--force", "replace the reason and time of a certificate already revoked (one on hold needs no --force)")
    .action(async (target: string, opts: { reason: string; time?: Date; force?: boolean }) => {
      const time = opts.time;
      const rec = await revokeCertificate({
        stateDir: stateDir(),
        target,
        reason: opts.reason,
        ...(time ? { time } : {}),
        ...(opts.force ? { force: true } : {}),
        onLockWait: (line) => void io.stderr.write(`ocsp-lab: ${line}\n`),
      });
      io.stdout.write(`ocsp-lab: ${describeRevocation(rec)}\n`);
      io.stdout.write("A running responder answers revoked within 1 s; the stapler staples it at its next query.\n");
    });

  program
    .command("set")
    .description(
      "make a running `ocsp-lab up` answer one serial in a given way (until `clear`, kept across restarts of up), then have the stapler query at once",
    )
    .argument("<serial|certFile>", "hex serial, or path of a certificate issued by the lab CA")
    .argument("<state...>", `one of: ${LAB_STATES.join(", ")}`)
    .option("--reason <reason>", `with revoked: RFC 5280 CRLReason (${CRL_REASON_NAMES.join(", ")}); default unspecified`)
    .addOption(
      new Option(
        "--admin-token <token>",
        `the running up's admin token (default $${ADMIN_TOKEN_ENV}, else the one it recorded in lab.json)`,
      ).argParser(adminToken),
    )
    .addHelpText(
      "after",
      [
        "",
        "States (each applies to every OCSP request for the serial until `clear`; saved in the state folder,",
        "behaviours/<serial>.json, and put back by the next `ocsp-lab up`):",
        "  good, unknown, revoked   status override, whatever the CA says (revoked: reversible, the CA is untouched;",
        "                           use `ocsp-lab revoke` for a real revocation)",
        "  hang                     the responder reads the request and never answers",
        "  down                     the responder resets the connection",
        "  slow <seconds>           answer after a delay",
        "  http <status>            an HTTP error (300..599) without an OCSP body",
        "  trylater                 the unsigned tryLater responseStatus",
        "  flaw <name>              a signed response with a defect (bad-signature, stale, wrong-serial...)",
        "  clear                    back to what the CA says (with no up running: removes the saved state)",
      ].join("\n"),
    )
    .action(async (target: string, words: string[], opts: { reason?: string; adminToken?: string }) => {
      const state = parseLabState(words, opts.reason);
      const token = opts.adminToken ?? (io.env[ADMIN_TOKEN_ENV] || undefined);
      const result = await setLabState({ stateDir: stateDir(), target, state, ...(token ? { adminToken: token } : {}) });
      io.stdout.write(`ocsp-lab: ${describeSetResult(result)}\n`);
    });

  const status = await runProgram(program, "ocsp-lab", argv, io, [
    "OCSP_LAB_USAGE",
    "OCSP_LAB_SCENARIO_FILE",
    "OCSP_LAB_CLIENT_CMD",
    "OCSP_LAB_CLIENT_FILE",
    "OCSP_LAB_REPORTER",
    "OCSP_LAB_SERVER_ATTACH",
  ]);
  return status !== 0 ? status : code;
}

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).then((exit) => process.exit(exit));
}
