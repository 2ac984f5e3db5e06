import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import { readConfigFile } from "@ocsp-lab/cli-support";
import { parsePolicy, type PollingPolicy, type PollingPolicyInput, type StapleSourceSpec } from "@ocsp-lab/stapler";
import type { ClientClass, ClientDriver, TlsTarget } from "./clients/client.js";
import { ScenarioFileError } from "./errors.js";
import type { Lab, LabParts } from "./lab.js";
import { scenarioFileSchema, type ScenarioFile, type StepExpect } from "./scenario-file.js";
import { STAPLER_CHECKS } from "./stapler-checks.js";
import { applyBeforeStart, playTimeline } from "./timeline.js";

/**
 * The stapler's polling policy, time-scaled so a whole run takes seconds: one hour of
 * query_frequency becomes one second, a minute of recovery_frequency a fifth of a second.
 * response_timeout keeps its real-world 1 s: a query takes 50–100 ms here, and a busy CI
 * machine must not turn a healthy query into a timeout. Retries stay five times faster than
 * regular queries, so the report can tell one from the other. A scenario file without a
 * `policy` runs with it.
 */
export const SCALED_POLICY = {
  query_frequency: 1,
  response_timeout: 1,
  recovery_frequency: 0.2,
  recovery_max_tries: 3,
} as const satisfies PollingPolicyInput;

/** One client's handshake right after a timeline step with an `expect` (see stepExpectSchema). */
export interface StepObservation {
  /** Index of the step in the file's timeline. */
  step: number;
  /** The step's `at`, in milliseconds from the start of the timeline. */
  at: number;
  client: string;
  expected: string;
  /** The client's outcome; `-` when it was skipped. */
  observed: string;
  detail: string;
  /** The client is not installed here. */
  skipped?: boolean;
}

/** What a scenario hands the report about the stapler itself. */
export interface StaplerCheck {
  expected: string;
  observed: string;
  /** The clients' handshakes right after the timeline steps that have an `expect`, in order. */
  steps?: StepObservation[];
  /** Where the clients connect afterwards when the check started a stapler of its own (default the lab's). */
  target?: TlsTarget;
  /** Stops what the check started (its own stapler); called after the clients' probes. */
  stop?: () => Promise<void>;
  /** The stapler row's detail when the check started a stapler of its own (default the lab stapler's status). */
  detail?: string;
}

/** One client's handshake as a scenario step probe gives it (ClientObservation, or skipped). */
export interface ProbeResult {
  client: string;
  outcome: string;
  detail: string;
  /** The client is not installed here: nothing was probed. */
  skipped?: boolean;
  /** The client's class (ClientDriver.clientClass), for a client the scenario names nowhere. */
  clientClass?: ClientClass;
}

/** Everything a scenario may act on. */
export interface ScenarioContext {
  /** The lab, on a TurnClock (as runScenarios starts it). */
  lab: Lab;
  /** The policy in force, in milliseconds. */
  policy: PollingPolicy;
  /** The strict Node client, for probes during an outage. */
  nodeClient: ClientDriver;
  /**
   * One handshake of every client the run drives against `target` (skipped ones marked), for
   * the timeline steps with an `expect`; with `keepSession` (a `save_session` step) each client
   * that can keeps the TLS session it got, for the run's resumed handshakes
   * (ClientDriver.probeKeepingSession). Default: the Node client alone, keeping nothing.
   */
  probeClients?: (target: TlsTarget, options?: { keepSession?: boolean }) => Promise<ProbeResult[]>;
}

/** Which built-in clients each client class of a scenario file's `expect` stands for. */
export const CLIENT_CLASSES = { strict: ["node", "curl"], "soft-fail": ["openssl"] } as const;

/** One revocation/timeout/recovery case, ready to run: a scenario file with its check in code. */
export interface Scenario {
  name: string;
  /** The real-world failure it reproduces; one line for `ocsp-lab run --list`. */
  description: string;
  policy: PollingPolicyInput;
  /** The responder's nextUpdate − thisUpdate in seconds (the file's `response_validity`); undefined: the lab's default. */
  responseValiditySeconds: number | undefined;
  /** The certificate options of the file (see certificateSchema). */
  certificate: ScenarioFile["certificate"];
  /** What the lab's stapler staples (see scenarioFileSchema's staple_source). */
  stapleSource: StapleSourceSpec;
  /** Where the clients' documentation says what they accept, per client (the file's `documented`). */
  documented: Record<string, string>;
  /** The text the stapler check must observe (the file's `expect.stapler`, or the check's default). */
  staplerExpected: string;
  /** Expected outcome per client name (see ClientObservation.outcome); absent means `connected`. */
  expect: Record<string, string>;
  /**
   * The file's class entries (`strict`, `soft-fail`), for command clients of that class it does
   * not name (ClientDriver.clientClass); the built-in clients' are in `expect` already.
   */
  expectByClass: Partial<Record<ClientClass, string>>;
  /**
   * The file's `expect_resumed`, per client name: what each client's resumption of the session it
   * kept at the `save_session` step must give, judged before its fresh handshake; undefined when
   * the file has none (no resumed handshakes). A client absent from it is expected `connected`.
   */
  expectResumed: Record<string, string> | undefined;
  /** The class entries of `expect_resumed` (see expectByClass); empty when it has none. */
  expectResumedByClass: Partial<Record<ClientClass, string>>;
  /** Where it came from: the file path. */
  file: string;
  /**
   * Apply the timeline's `before_start` steps: give it to startLab as `beforeStapler` (see
   * LabOptions) so the stapler's first query sees them. Without any such step it does nothing.
   */
  beforeStapler(lab: LabParts): Promise<void>;
  /**
   * Play the timeline and observe the stapler; resolves once the stapler is in the state to probe.
   * @throws ScenarioFileError when the file has `before_start` steps and the lab was started
   * without this scenario's beforeStapler.
   */
  act(ctx: ScenarioContext): Promise<StaplerCheck>;
}

/**
 * Turn a validated scenario file into a runnable Scenario: client classes expanded to the
 * built-in clients (a client's own entry first), the stapler check looked up by name.
 * @throws ScenarioFileError when neither the file nor its check gives the stapler's expected text.
 */
export function compileScenario(file: ScenarioFile, path: string): Scenario {
  const check = STAPLER_CHECKS[file.stapler_check];
  let policy: PollingPolicyInput = file.policy ?? SCALED_POLICY;
  const expected = file.expect.stapler ?? check.defaultExpected(parsePolicy(policy));
  if (expected === undefined)
    throw new ScenarioFileError(path, "expect.stapler", `stapler_check ${file.stapler_check} needs the expected text`);
  const expect = perClient(file.expect);
  const prepared = new WeakSet<LabParts["ca"]>();
  const firstBeforeStart = file.timeline.findIndex((s) => s.before_start);
  // The certificate's CertID hash is the stapler's query hash (the policy's cert_id_hash).
  const hash = file.certificate?.cert_id_hash;
  if (hash !== undefined && hash !== "sha1") policy = { ...policy, cert_id_hash: hash };
  return {
    name: file.name,
    description: file.description,
    policy,
    responseValiditySeconds: file.response_validity === undefined ? undefined : file.response_validity / 1000,
    certificate: file.certificate,
    stapleSource: stapleSourceSpec(file.staple_source, path),
    documented: { ...file.documented },
    staplerExpected: expected,
    expect,
    expectByClass: byClass(file.expect),
    expectResumed: file.expect_resumed === undefined ? undefined : perClient(file.expect_resumed),
    expectResumedByClass: file.expect_resumed === undefined ? {} : byClass(file.expect_resumed),
    file: path,
    async beforeStapler(lab) {
      await applyBeforeStart(lab, file.timeline);
      prepared.add(lab.ca);
    },
    async act(ctx) {
      if (firstBeforeStart !== -1 && !prepared.has(ctx.lab.ca))
        throw new ScenarioFileError(
          path,
          `timeline.${firstBeforeStart}.before_start`,
          "the lab was started without this step: give startLab the scenario's beforeStapler",
        );
      const steps: StepObservation[] = [];
      const probe =
        ctx.probeClients ??
        (async (target: TlsTarget, _options?: { keepSession?: boolean }): Promise<ProbeResult[]> => [
          await ctx.nodeClient.probe(target),
        ]);
      const afterStep = async (step: ScenarioFile["timeline"][number], index: number): Promise<void> => {
        if (step.expect === undefined) return;
        const wanted = perClient(step.expect);
        const classes = byClass(step.expect);
        for (const r of await probe(ctx.lab.target, { keepSession: step.save_session === true })) {
          const want = expectedOutcome(wanted, classes, { name: r.client, clientClass: r.clientClass });
          steps.push({
            step: index,
            at: step.at,
            client: r.client,
            expected: want,
            observed: r.outcome,
            detail: r.detail,
            ...(r.skipped ? { skipped: true } : {}),
          });
        }
      };
      const result = await check.observe({
        ...ctx,
        scenario: file.name,
        expected,
        applyTimeline: () => playTimeline(ctx.lab, file.timeline, afterStep),
      });
      const outcome = typeof result === "string" ? { observed: result } : result;
      return { expected, ...outcome, steps };
    },
  };
}

/**
 * Expected outcome per client from per-client and per-class entries: each built-in client's
 * own entry, else its class's (CLIENT_CLASSES); then every other client named (command clients).
 */
function perClient(entries: StepExpect): Record<string, string> {
  const expect: Record<string, string> = {};
  for (const [cls, members] of Object.entries(CLIENT_CLASSES)) {
    const text = entries[cls as keyof typeof CLIENT_CLASSES];
    if (text !== undefined) for (const m of members) expect[m] = text;
  }
  for (const [client, text] of Object.entries(entries)) {
    if (client in CLIENT_CLASSES || client === "stapler" || text === undefined) continue;
    expect[client] = text;
  }
  return expect;
}

/** The class entries of an `expect`. */
function byClass(entries: StepExpect): Partial<Record<ClientClass, string>> {
  return {
    ...(entries.strict !== undefined ? { strict: entries.strict } : {}),
    ...(entries["soft-fail"] !== undefined ? { "soft-fail": entries["soft-fail"] } : {}),
  };
}

/**
 * The built-in client a class's command clients are expected to behave like when a scenario
 * has no entry for them nor for their class: `node` (the harness' strict client) for `strict`,
 * `openssl` (s_client, which never refuses) for `soft-fail`.
 */
export const CLASS_REFERENCE_CLIENT = { strict: "node", "soft-fail": "openssl" } as const satisfies Record<ClientClass, string>;

/**
 * What a client must see: its own entry (`expect`, per client as Scenario.expect), else, for a
 * command client with a ClientDriver.clientClass, its class's entry (`byClassEntries`), else
 * what the class's reference client must see (CLASS_REFERENCE_CLIENT: the catalogue's files
 * name each built-in client, not classes), else `connected`.
 */
export function expectedOutcome(
  expect: Record<string, string>,
  byClassEntries: Partial<Record<ClientClass, string>>,
  client: { name: string; clientClass?: ClientClass | undefined },
): string {
  const cls = client.clientClass;
  return expect[client.name] ?? (cls ? (byClassEntries[cls] ?? expect[CLASS_REFERENCE_CLIENT[cls]]) : undefined) ?? "connected";
}

/** The stapler's spec of a file's staple_source; a `file` path is relative to the scenario file. */
function stapleSourceSpec(config: ScenarioFile["staple_source"], path: string): StapleSourceSpec {
  if (typeof config === "string") return { kind: config };
  if (config.kind === "bytes") return { kind: "bytes", der: new Uint8Array(Buffer.from(config.base64, "base64")) };
  if (config.kind === "file") return { kind: "file", path: resolve(dirname(path), config.path) };
  return { kind: config.kind };
}

/**
 * Read and validate one scenario file (YAML or JSON).
 * @throws ScenarioFileError naming `path` (as given) and the bad field, in one line.
 */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  const file = await readConfigFile(
    path,
    scenarioFileSchema,
    (field, problem, cause) => new ScenarioFileError(path, field, problem, { cause }),
  );
  return compileScenario(file, path);
}

/** The folder of the built-in scenario files, shipped with the package. */
export const BUILT_IN_SCENARIO_DIR = fileURLToPath(new URL("../scenarios/", import.meta.url));

/**
 * The built-in scenarios of `ocsp-lab run`, in order: every `*.yaml` file of
 * BUILT_IN_SCENARIO_DIR, sorted by file name (`01-good.yaml`, `02-revoked.yaml`...).
 * @throws ScenarioFileError for a file that does not validate.
 */
export async function builtInScenarios(): Promise<Scenario[]> {
  const names = (await readdir(BUILT_IN_SCENARIO_DIR)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  return Promise.all(names.map((n) => loadScenarioFile(join(BUILT_IN_SCENARIO_DIR, n))));
}
