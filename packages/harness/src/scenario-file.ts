import { z } from "zod";
import { CRL_REASON_NAMES, UNSUCCESSFUL_STATUS_NAMES, parseCrlReason, type CRLReason } from "@ocsp-lab/ocsp";
import { KEY_TYPES } from "@ocsp-lab/ca";
import { CONTENT_FLAWS } from "@ocsp-lab/responder";
import { pollingPolicySchema, stapleSourceConfigSchema } from "@ocsp-lab/stapler";
import { durationSchema } from "./duration.js";
import { STAPLER_CHECK_NAMES } from "./stapler-checks.js";

/** A duration written `250ms`, `2s`, `1h` (see parseDuration), as milliseconds. */
const duration = durationSchema;

/** An RFC 5280 CRLReason by name (`keyCompromise`, `key-compromise`) or number. */
const reason = z.union([z.string(), z.number()]).transform((v, ctx): CRLReason => {
  try {
    return parseCrlReason(v);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `unknown CRLReason ${JSON.stringify(v)}: use one of ${CRL_REASON_NAMES.join(", ")}`,
    });
    return z.NEVER;
  }
});

/** What a `staple-status` check may expect: `staple good`, `staple revoked (keyCompromise)`... */
const STAPLE_STATUS_TEXT = new RegExp(`^staple (good|unknown|revoked( \\((${CRL_REASON_NAMES.join("|")})\\))?)$`);
/** What a `staple-sequence` check may expect: `staple good, revoked`, then optionally `; revoked within 1 s`. */
const STAPLE_SEQUENCE_TEXT = /^staple [a-zA-Z-]+(, [a-zA-Z-]+)*(; .+)?$/;

/** Expected outcomes per client (`node`, `curl`, `openssl`, `gnutls`) or class (`strict`, `soft-fail`); see expectSchema. */
const clientExpectShape = {
  node: z.string().min(1).optional(),
  curl: z.string().min(1).optional(),
  openssl: z.string().min(1).optional(),
  gnutls: z.string().min(1).optional(),
  strict: z.string().min(1).optional(),
  "soft-fail": z.string().min(1).optional(),
};

/** What a command client's name in a scenario's `expect` looks like (see COMMAND_CLIENT_NAME). */
const OTHER_CLIENT_NAME = /^[a-z][a-z0-9_-]*$/i;

/**
 * An `expect` object: the keys of `shape`, and any other key that is a command client's name
 * (`java: "refused: revoked"`; an entry for a client the run does not drive is not used). A key
 * that cannot be a client's name, or `reserved` (`stapler` where it has no place), is refused
 * as an unknown key.
 */
function withOtherClients<S extends z.ZodRawShape>(shape: S, reserved: readonly string[]) {
  return z
    .object(shape)
    .catchall(z.string().min(1))
    .superRefine((entries, ctx) => {
      for (const key of Object.keys(entries)) {
        if (key in shape) continue;
        if (reserved.includes(key) || !OTHER_CLIENT_NAME.test(key))
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `unknown key ${JSON.stringify(key)}: misspelt, or not a key here`,
          });
      }
    });
}

/**
 * What the run must see. `stapler`: the text the stapler check must observe (default: the
 * check's own, derived from the policy). Per client (`node`, `curl`, `openssl`) or per class
 * of clients (`strict`: node and curl, which refuse a bad or missing staple; `soft-fail`:
 * openssl s_client, which never refuses and reports what it saw; `gnutls`, gnutls-cli --ocsp,
 * is in neither: it accepts an unknown staple and asks the responder itself when nothing is
 * stapled); a command client (`--client-cmd`, a client file) by its name, else by its own
 * `class`. A client's own entry beats its class, and a client named nowhere is expected to be
 * `connected`.
 */
export const expectSchema = withOtherClients({ stapler: z.string().min(1).optional(), ...clientExpectShape }, []);

/**
 * What each client must see right after one timeline step (a step's `expect`): per client or
 * class as in expectSchema, with no `stapler` entry; a client named nowhere is expected to be
 * `connected`. Every installed client makes one handshake as soon as the step is applied.
 */
export const stepExpectSchema = withOtherClients(clientExpectShape, ["stapler"]);

/** The keys of a timeline step that are actions; exactly one per step. */
export const TIMELINE_ACTIONS = [
  "responder",
  "http",
  "responseStatus",
  "delay",
  "revoke",
  "revoke_issuer",
  "release",
  "status",
  "flaw",
] as const;

/**
 * One step of a scenario's timeline: at `at` (from the start of the scenario, on the lab's
 * clock) do exactly one action to the responder or the CA:
 * - `responder: good | revoked | unknown`: answer this status for the lab's certificate
 *   whatever the CA says; `responder: down` (close every connection), `hang` (never answer),
 *   `reset` (TCP RST); `responder: normal` clears every behaviour, status and delay;
 * - `http: 500`: answer this HTTP error status with no OCSP body;
 * - `responseStatus: tryLater`: an unsigned unsuccessful OCSP answer (RFC 6960 §4.2.1);
 * - `delay: 2s`: wait this long before every answer;
 * - `revoke: keyCompromise`: revoke the lab's certificate in the CA with this RFC 5280 reason;
 * - `revoke_issuer: cACompromise`: revoke the intermediate CA that issued the lab's certificate
 *   (with `certificate: { issuer: intermediate }`), with this reason; the leaf stays good;
 * - `release: true`: release the lab's certificate from hold in the CA (after a `revoke:
 *   certificateHold`; RFC 5280 §5.3.1: it is good again);
 * - `status: unknown` (with `reason` for revoked): like `responder: <status>`, usually with `count`;
 * - `flaw: bad-signature`: sign the answers with this content flaw (the responder's CONTENT_FLAWS).
 * `count` limits `responder` (except normal), `http`, `responseStatus`, `status` and `flaw` to
 * the next `count` requests; without it the action holds until another step replaces it.
 *
 * A step's `expect` (see stepExpectSchema) is judged right after the step is applied: every
 * client makes one handshake then, and each gets a report row of its own. A step may be only an
 * `at` and an `expect` (a checkpoint, no action).
 *
 * `save_session: true` on a step with an `expect`: each client's handshake at that step keeps the
 * TLS session the server gave (a TLS 1.3 ticket, RFC 8446 §4.6.1; a TLS 1.2 session ID or
 * ticket), for the resumed handshakes the file's `expect_resumed` judges. One step at most.
 *
 * When the timeline starts: `at` counts from the moment the lab is up, which is after the
 * stapler's first query (its start-up fetch sees the responder as the CA made it). A step with
 * `before_start: true` is applied instead after the certificate is issued and before the
 * stapler starts, so that first query already sees it ("unknown from issuance on"); such a step
 * has `at: 0s` and comes before every other step.
 */
export const timelineStepSchema = z
  .object({
    at: duration,
    responder: z.enum(["good", "revoked", "unknown", "down", "hang", "reset", "normal"]).optional(),
    http: z.number().int().min(300).max(599).optional(),
    responseStatus: z.enum(UNSUCCESSFUL_STATUS_NAMES as [string, ...string[]]).optional(),
    delay: duration.optional(),
    revoke: reason.optional(),
    release: z.literal(true).optional(),
    status: z.enum(["good", "revoked", "unknown"]).optional(),
    reason: reason.optional(),
    revoke_issuer: reason.optional(),
    flaw: z.enum(CONTENT_FLAWS).optional(),
    count: z.number().int().positive().optional(),
    before_start: z.boolean().optional(),
    save_session: z.literal(true).optional(),
    expect: stepExpectSchema.optional(),
  })
  .strict()
  .superRefine((step, ctx) => {
    if (step.save_session && step.expect === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["save_session"],
        message: "a save_session step has an expect: the handshakes it judges are the ones that keep their sessions",
      });
    if (step.before_start && step.at !== 0)
      ctx.addIssue({ code: "custom", path: ["at"], message: "a before_start step is at 0s" });
    const given = TIMELINE_ACTIONS.filter((k) => step[k] !== undefined);
    // A checkpoint (an `expect` alone) has no action.
    if (given.length !== 1 && !(given.length === 0 && step.expect !== undefined))
      ctx.addIssue({
        code: "custom",
        message: `give exactly one action of ${TIMELINE_ACTIONS.join(", ")}${given.length ? `, not ${given.join(" and ")}` : " (or only an expect)"}`,
      });
    if (step.before_start && step.expect !== undefined)
      ctx.addIssue({ code: "custom", path: ["expect"], message: "a before_start step has no expect: no client can connect yet" });
    if (step.reason !== undefined && step.status !== "revoked")
      ctx.addIssue({ code: "custom", path: ["reason"], message: "reason goes with status: revoked" });
  });

/**
 * The certificate the lab's stapler serves. `key_type` and `must_staple` (RFC 7633 TLS Feature)
 * shape the issued leaf; `issuer: intermediate` issues it from an intermediate CA under the root.
 * `cert_id_hash` is the hash of the CertID the stapler asks with and so of the staple's
 * (RFC 6960 §4.1.1; the stapler policy's `cert_id_hash`): `sha1` (default, RFC 5019 §2.1.1) or
 * `sha256`.
 */
export const certificateSchema = z
  .object({
    key_type: z.enum(KEY_TYPES as [string, ...string[]]).optional(),
    must_staple: z.boolean().optional(),
    issuer: z.enum(["root", "intermediate"]).default("root"),
    cert_id_hash: z.enum(["sha1", "sha256"]).default("sha1"),
  })
  .strict();

/**
 * Where a client's documentation says it accepts (or does not judge) what the scenario staples,
 * per built-in client: a manual page section or URL, quoted or paraphrased, so an expectation
 * such as `staple: good` for a flawed staple is a documented behaviour, not an accident.
 */
export const documentedSchema = z
  .object({
    node: z.string().min(1).optional(),
    curl: z.string().min(1).optional(),
    openssl: z.string().min(1).optional(),
    gnutls: z.string().min(1).optional(),
  })
  .strict();

/**
 * A scenario file (YAML or JSON): one real-world revocation, timeout, server-behaviour or
 * client-validation case. `policy` is the stapler's polling policy in seconds
 * (PollingPolicyInput; default SCALED_POLICY when absent); `staple_source` what the stapler
 * staples, as the stapler's own `staple_source` (`verified`, the default; `as-received`, the
 * responder's answers unverified; `none`; `{ kind: bytes, base64 }`; `{ kind: file, path }`
 * relative to the scenario file); `response_validity` the responder's nextUpdate − thisUpdate
 * (default 1h; short ones let a staple expire within the run); `stapler_check` names the code that observes the stapler
 * (see STAPLER_CHECKS); `documented` cites the clients' documentation for their expectations.
 *
 * `expect_resumed` (per client or class, as a step's expect; a client named nowhere is expected
 * to be `connected`): after the stapler check, right before its fresh handshake, each client
 * resumes the TLS session it kept at the timeline's `save_session` step, and that handshake is
 * judged (a report row `<client> resumed`; outcomes as ClientObservation words them for a
 * resumption, e.g. `connected (resumed, no staple seen)`). It needs a `save_session` step, and a
 * `save_session` step needs it.
 */
export const scenarioFileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "a name is letters, digits, '.', '_' and '-' (it names a folder)"),
    description: z.string().min(1),
    certificate: certificateSchema.optional(),
    response_validity: duration
      .refine((ms) => ms >= 1000 && ms % 1000 === 0, {
        message: "give whole seconds, at least 1s (the responder's nextUpdate − thisUpdate)",
      })
      .optional(),
    policy: pollingPolicySchema.optional(),
    staple_source: stapleSourceConfigSchema.default("verified"),
    timeline: z.array(timelineStepSchema).default([]),
    stapler_check: z.enum(STAPLER_CHECK_NAMES).default("staple-status"),
    expect: expectSchema,
    expect_resumed: stepExpectSchema.optional(),
    documented: documentedSchema.optional(),
  })
  .strict()
  .superRefine((file, ctx) => {
    const saves = file.timeline.flatMap((st, i) => (st.save_session ? [i] : []));
    if (saves.length > 1)
      ctx.addIssue({
        code: "custom",
        path: ["timeline", saves[1]!, "save_session"],
        message: `only one step keeps the sessions (step ${saves[0]} does already)`,
      });
    if (file.expect_resumed !== undefined && saves.length === 0)
      ctx.addIssue({
        code: "custom",
        path: ["expect_resumed"],
        message: "give a timeline step with save_session: true: its handshakes keep the sessions the clients resume",
      });
    if (file.expect_resumed === undefined && saves.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["timeline", saves[0]!, "save_session"],
        message: "nothing resumes the sessions it keeps: give expect_resumed",
      });
    for (let i = 1; i < file.timeline.length; i++) {
      if (file.timeline[i]!.at < file.timeline[i - 1]!.at)
        ctx.addIssue({ code: "custom", path: ["timeline", i, "at"], message: "steps must be in time order" });
      if (file.timeline[i]!.before_start && !file.timeline[i - 1]!.before_start)
        ctx.addIssue({
          code: "custom",
          path: ["timeline", i, "before_start"],
          message: "before_start steps come before every other step",
        });
    }
    const revokesIssuer = file.timeline.findIndex((st) => st.revoke_issuer !== undefined);
    if (revokesIssuer !== -1 && file.certificate?.issuer !== "intermediate")
      ctx.addIssue({
        code: "custom",
        path: ["timeline", revokesIssuer, "revoke_issuer"],
        message: "revoke_issuer revokes the intermediate that issued the certificate: give certificate: { issuer: intermediate }",
      });
    const stapler = file.expect.stapler ?? "";
    if (file.stapler_check === "staple-status" && !STAPLE_STATUS_TEXT.test(stapler))
      ctx.addIssue({
        code: "custom",
        path: ["expect", "stapler"],
        message:
          'with stapler_check staple-status, give "staple good", "staple revoked", "staple revoked (<reason>)" or "staple unknown"',
      });
    if (file.stapler_check === "staple-sequence" && !STAPLE_SEQUENCE_TEXT.test(stapler))
      ctx.addIssue({
        code: "custom",
        path: ["expect", "stapler"],
        message: 'with stapler_check staple-sequence, give the states in order, like "staple good, revoked"',
      });
  });

/** A scenario file as validated (durations in milliseconds, reasons as CRLReason numbers). */
export type ScenarioFile = z.output<typeof scenarioFileSchema>;
/** A scenario file as written (durations as `2s`, reasons by name). */
export type ScenarioFileInput = z.input<typeof scenarioFileSchema>;
/** A step's expect as validated. */
export type StepExpect = z.output<typeof stepExpectSchema>;
/** One timeline step as validated. */
export type TimelineStep = z.output<typeof timelineStepSchema>;
