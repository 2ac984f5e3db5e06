import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { pino, type DestinationStream, type Logger } from "pino";
import { CertificateAuthority, DATABASE_FILE } from "@ocsp-lab/ca";
import { constants, type Stats } from "node:fs";
import { access, stat } from "node:fs/promises";
import { describeSystemError, readConfigFile, resolveStateDir } from "@ocsp-lab/cli-support";
import { normalizeSerial } from "@ocsp-lab/ocsp";
import { behaviourSchema, stepSchema, type BehaviourInput, type Scope } from "./behaviour.js";
import { CaFolderError, ConfigError } from "./errors.js";
import { OcspResponder, type StartedOcspResponder } from "./responder.js";
import { DEFAULT_CACHE_MAX_BYTES } from "./answer-cache.js";

const port = z.number().int().min(0).max(65535);
/** A serial as written in the config, checked here so `--check` catches it. */
const serial = z.string().refine((v) => {
  try {
    normalizeSerial(v);
    return true;
  } catch {
    return false;
  }
}, "give a hexadecimal serial");
const scope = z.union([z.literal("global"), z.object({ issuer: serial }).strict(), z.object({ serial }).strict()]);

const MAX_VALIDITY_S = 10 * 365 * 86_400;
/** cache_max_mb is in mebibytes. */
const MIB = 1024 * 1024;
const validity = z.number().int().positive().max(MAX_VALIDITY_S);

/** An outline of the configuration file's keys, printed by a bare `ocsp-responder`. */
export const CONFIG_OUTLINE = `listen: { host: 127.0.0.1, port: 8080 }    # default 127.0.0.1, port 0 (any free port)
cas: [.ocsp-lab]                          # CA state folders; default $OCSP_LAB_HOME or ./.ocsp-lab
validity: 3600                            # seconds from thisUpdate to nextUpdate
signing: { by: delegated, responder_id: by_key, include_signer: true, rsa_pss: false }
unknown_issuer: unauthorized              # or: unknown
cache: true                               # pre-signed answers for nonce-less requests
cache_max_mb: 128                         # MiB of them at most; the oldest are dropped first
admin: { port: 8081, token: change-me-please }  # default: on the OCSP port, no token; own port: 127.0.0.1 always
                                          # a non-loopback listen.host needs admin.token, admin.port or allow_unauthenticated: true
log_level: info                           # debug: one line per OCSP request too
behaviours:                               # what to misbehave with from the start
  - scope: global                         # or { issuer: <serial> } or { serial: <serial> }
    steps: [{ actions: [{ kind: http, status: 503 }], count: 2 }, { actions: [{ kind: normal }] }]`;

/**
 * The responder's configuration file (YAML or JSON), names in snake_case as operators' tools
 * write them. Durations are in seconds and named without a unit (`validity`, like the stapler's
 * `query_frequency`); behaviour fields that are milliseconds say so (`ms`, `chunkDelayMs`).
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 8080 }
 * cas: [.ocsp-lab]                # CA state folders; default $OCSP_LAB_HOME or ./.ocsp-lab
 * validity: 3600                  # seconds, nextUpdate − thisUpdate (validity_seconds: deprecated alias)
 * signing: { by: delegated, responder_id: by_key, include_signer: true, rsa_pss: false }
 * unknown_issuer: unauthorized    # or: unknown
 * cache: true                     # pre-signed answers for nonce-less requests
 * cache_max_mb: 128               # MiB of them at most (~130,000 ECDSA answers); the oldest are dropped first
 * admin: { port: 8081, token: s3cret }   # default: on the OCSP port, no token; its own port binds 127.0.0.1
 *                                 # listen.host not loopback and admin on the OCSP port: token, or
 *                                 # allow_unauthenticated: true (else start is refused)
 * log_level: info                # debug: one line per OCSP request too
 * behaviours:
 *   - scope: global               # or { issuer: <serial> } or { serial: <serial> }
 *     steps: [{ actions: [{ kind: http, status: 503, retryAfter: 1 }], count: 2 }, { actions: [{ kind: normal }] }]
 *   - scope: { serial: 3fa0... }
 *     actions: [{ kind: status, status: revoked, revocationReason: keyCompromise }]
 * ```
 */
export const responderConfigSchema = z
  .object({
    listen: z
      .object({ host: z.string().min(1).default("127.0.0.1"), port: port.default(0) })
      .strict()
      .default({ host: "127.0.0.1", port: 0 }),
    cas: z.array(z.string().min(1)).min(1).optional(),
    validity: validity.optional(),
    /** Deprecated alias of `validity`. */
    validity_seconds: validity.optional(),
    signing: z
      .object({
        by: z.enum(["delegated", "issuer"]).default("delegated"),
        responder_id: z.enum(["by_key", "by_name"]).default("by_key"),
        include_signer: z.boolean().default(true),
        rsa_pss: z.boolean().default(false),
      })
      .strict()
      .default({ by: "delegated", responder_id: "by_key", include_signer: true, rsa_pss: false }),
    unknown_issuer: z.enum(["unauthorized", "unknown"]).default("unauthorized"),
    cache: z.boolean().default(true),
    cache_max_mb: z
      .number()
      .positive()
      .max(64 * 1024)
      .default(DEFAULT_CACHE_MAX_BYTES / MIB),
    admin: z
      .object({
        port: port.optional(),
        token: z.string().min(8).optional(),
        allow_unauthenticated: z.boolean().default(false),
      })
      .strict()
      .default({ allow_unauthenticated: false }),
    log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    behaviours: z
      .array(
        z.union([
          z.object({ scope }).merge(behaviourSchema).strict(),
          z
            .object({
              scope,
              actions: stepSchema.shape.actions,
              count: stepSchema.shape.count,
            })
            .strict(),
        ]),
      )
      .default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.validity !== undefined && c.validity_seconds !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["validity_seconds"],
        message: `both validity (${c.validity}) and validity_seconds (${c.validity_seconds}) are given: keep validity (seconds); validity_seconds is its deprecated alias`,
      });
    }
  })
  .transform(({ validity_seconds: alias, validity: given, ...rest }) => ({
    ...rest,
    validity: given ?? alias ?? 3600,
    /** Deprecated names the file used, each with what to write instead. */
    deprecations: alias !== undefined ? ["validity_seconds is deprecated: write validity (the same number of seconds)"] : [],
  }));

/**
 * A validated configuration: `validity` in seconds (from `validity` or the deprecated
 * `validity_seconds`; default 3600), `deprecations` listing deprecated names the file used.
 */
export type ResponderConfig = z.output<typeof responderConfigSchema> & { file: string };

/**
 * Read and validate a configuration file (YAML, of which JSON is a subset). Relative CA paths
 * are resolved against the file's folder.
 * @throws ConfigError naming the file, the field (`behaviours.0.steps.0.actions.0.kind`) and the fix.
 */
export async function loadResponderConfig(file: string): Promise<ResponderConfig> {
  const data = await readConfigFile(
    file,
    responderConfigSchema,
    (field, problem, cause) => new ConfigError(file, field, problem, { cause }),
  );
  const base = dirname(resolve(file));
  return { ...data, ...(data.cas ? { cas: data.cas.map((c) => resolve(base, c)) } : {}), file };
}

/**
 * Refuse a CA state folder the responder could not use, before opening it: not a folder, not
 * readable and searchable (ca.json and the keys are read from it). A missing folder is left to
 * CertificateAuthority.open (StateNotFoundError, which says how to create one).
 * @throws CaFolderError naming `key` (`cas.0`), the folder and the fix.
 */
async function checkCaFolder(dir: string, key: string): Promise<void> {
  let stats: Stats;
  try {
    stats = await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new CaFolderError(`${key}: ${describeSystemError(err) ?? String(err)}`, { cause: err });
  }
  if (!stats.isDirectory())
    throw new CaFolderError(`${key}: ${dir} is a file, not a CA state folder: give the folder that holds ca.json`);
  try {
    await access(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new CaFolderError(`${key}: ${describeSystemError(err) ?? String(err)}`, { cause: err });
  }
}

/**
 * Start a responder as the configuration says: open the CAs (watching their stores; a store
 * that changes but cannot be reloaded is logged at `error` with its folder and the reason, and
 * its last good state stays served), apply the start-up behaviours, listen. Logs go to `options.logger` when given (its own level), otherwise
 * to a pino logger at `config.log_level` writing to `options.destination` (default stdout).
 * @throws CaFolderError for a CA folder that is a file or cannot be read (its keys included),
 * naming it and the fix; StateNotFoundError for a folder without a CA; the start errors of
 * OcspResponder (AdminExposedError, ListenError).
 */
export async function startFromConfig(
  config: ResponderConfig,
  options: { env?: NodeJS.ProcessEnv; logger?: Logger; destination?: DestinationStream } = {},
): Promise<StartedOcspResponder> {
  const logger =
    options.logger ??
    (options.destination ? pino({ level: config.log_level }, options.destination) : pino({ level: config.log_level }));
  const folders = config.cas ?? [resolveStateDir(undefined, options.env)];
  await Promise.all(folders.map((dir, i) => checkCaFolder(dir, config.cas ? `cas.${i}` : "the state folder")));
  // A store that changed but cannot be reloaded (ca.json corrupted or inconsistent) is logged;
  // the CA keeps answering from its last good state.
  const cas = await Promise.all(
    folders.map((dir) =>
      CertificateAuthority.open(dir, {
        watch: true,
        onWatchError: (err) =>
          logger.error(
            { file: join(dir, DATABASE_FILE), code: err.code, reason: err.message },
            "cannot reload the CA store; serving its last good state",
          ),
      }).catch((err: unknown) => {
        const problem = describeSystemError(err, { fix: "give another folder in cas" });
        throw problem ? new CaFolderError(`CA state folder ${dir}: ${problem}`, { cause: err }) : err;
      }),
    ),
  );
  const builder = (await OcspResponder.forCas(cas))
    .withHost(config.listen.host)
    .withPort(config.listen.port)
    .withValidity(config.validity)
    .withSigning({
      by: config.signing.by,
      responderId: config.signing.responder_id === "by_name" ? "byName" : "byKey",
      includeSigner: config.signing.include_signer,
      rsaPss: config.signing.rsa_pss,
    })
    .withUnknownIssuer(config.unknown_issuer)
    .withCache(config.cache, { maxBytes: Math.round(config.cache_max_mb * MIB) })
    .withAdmin({
      ...(config.admin.port !== undefined ? { port: config.admin.port } : {}),
      ...(config.admin.token !== undefined ? { token: config.admin.token } : {}),
      allowUnauthenticated: config.admin.allow_unauthenticated,
    })
    .withLogger(logger);
  const responder = await builder.start();
  try {
    for (const b of config.behaviours) {
      const scope: Scope =
        b.scope === "global"
          ? { kind: "global" }
          : "issuer" in b.scope
            ? { kind: "issuer", issuer: b.scope.issuer }
            : { kind: "serial", serial: b.scope.serial };
      const spec: BehaviourInput =
        "actions" in b
          ? { steps: [{ actions: b.actions, ...(b.count !== undefined ? { count: b.count } : {}) }] }
          : { steps: b.steps, repeat: b.repeat };
      responder.setBehaviour(scope, spec);
    }
  } catch (err) {
    await responder.stop();
    throw err;
  }
  return responder;
}
