import { dirname, resolve } from "node:path";
import { z } from "zod";
import { pino, type Logger } from "pino";
import { readConfigFile, resolveStateDir } from "@ocsp-lab/cli-support";
import { ConfigError, InvalidPolicyError } from "./errors.js";
import { parsePolicy, pollingPolicySchema } from "./policy.js";
import type { Backend } from "./backends.js";
import { stapleSourceConfigSchema, stapleSourceFromConfig } from "./staple-source.js";
import { StaplingServer, type StartedStaplingServer } from "./stapling-server.js";

const port = z.number().int().min(0).max(65535);
const tlsVersion = z.enum(["TLSv1.2", "TLSv1.3"]);
const backend = z.string().superRefine((v, ctx) => {
  if (v === "status" || /^http:\/\/[^/\s]+(\/.*)?$/.test(v) || /^tcp:\/\/[^:/\s]+:\d{1,5}$/.test(v)) return;
  const message = v.startsWith("http")
    ? `${JSON.stringify(v)}: give http://host:port for an HTTP backend`
    : v.startsWith("tcp")
      ? `${JSON.stringify(v)}: give tcp://host:port for a TCP backend`
      : `${JSON.stringify(v)}: give status, http://host:port or tcp://host:port`;
  ctx.addIssue({ code: "custom", message });
});

/** An outline of the configuration file's keys, printed by a bare `ocsp-stapler` (`certificates` is the one required key). */
export const CONFIG_OUTLINE = `listen: { host: 127.0.0.1, port: 8443 }    # default 127.0.0.1, port 0 (any free port)
certificates:                             # required; chosen by SNI; paths relative to the config file
  - { cert: cert.pem, key: key.pem, chain: chain.pem }     # responder_url: when the certificate has no AIA OCSP URL
staple_source: verified                   # for testing clients: as-received, none, { kind: file, path: x.der }
backend: status                           # or http://127.0.0.1:8080 (HTTPS reverse proxy), tcp://127.0.0.1:6379 (TLS proxy)
policy: { query_frequency: 3600, response_timeout: 1, recovery_frequency: 60, recovery_max_tries: 5 }   # seconds
tls: { min_version: TLSv1.2, max_version: TLSv1.3 }
admin: { port: 9443 }                     # 127.0.0.1; token: ... ; false turns it off
                                          # host other than loopback: needs token, or allow_unauthenticated: true
state_dir: .ocsp-lab                      # staples persisted in <state_dir>/staples
watch_interval: 1                         # seconds between certificate file checks; 0: SIGHUP only
log_level: info`;

/**
 * The stapler's configuration file (YAML or JSON), with the library's names (policy fields
 * exactly as `withPolicy` takes them) and units in seconds:
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 8443 }
 * certificates:                      # several: chosen by SNI; paths relative to this file
 *   - { cert: rsa.pem, key: rsa.key, chain: ca.pem }
 *   - { cert: ec.pem, key: ec.key, responder_url: http://127.0.0.1:8080 }
 *   - { cert: t.pem, key: t.key, staple_source: { kind: file, path: flawed.der } }   # per certificate
 * staple_source: verified            # default; for testing clients: as-received, none,
 *                                    # { kind: bytes, base64: MAMKAQM= }, { kind: file, path: staple.der }
 * backend: tcp://127.0.0.1:6379      # or http://127.0.0.1:8080, or status (default)
 * policy: { query_frequency: 3600, response_timeout: 1, recovery_frequency: 60, recovery_max_tries: 5,
 *           on_failure: invalidate, expiry_margin: 60, mode: eager, startup: wait-for-staple,
 *           cert_id_hash: sha1 }          # or sha256: the CertID hash of each query
 * tls: { min_version: TLSv1.2, max_version: TLSv1.3 }
 * admin: { port: 9443, token: s3cretToken }   # 127.0.0.1 unless host is given; or false
 *                                            # a non-loopback host needs token (or allow_unauthenticated: true)
 * state_dir: .ocsp-lab               # staples persisted in <state_dir>/staples; default $OCSP_LAB_HOME or ./.ocsp-lab
 * persist: true
 * watch_interval: 1                  # seconds between certificate file checks; 0: SIGHUP only
 * log_level: info
 * ```
 */
export const staplerConfigSchema = z
  .object({
    listen: z
      .object({ host: z.string().min(1).default("127.0.0.1"), port: port.default(0) })
      .strict()
      .default({ host: "127.0.0.1", port: 0 }),
    certificates: z
      .array(
        z
          .object({
            cert: z.string().min(1),
            key: z.string().min(1),
            chain: z.string().min(1).optional(),
            responder_url: z.string().url().optional(),
            staple_source: stapleSourceConfigSchema.optional(),
          })
          .strict(),
      )
      .min(1, "give at least one certificate: certificates: [{ cert: leaf.pem, key: leaf.key }]"),
    responder_url: z.string().url().optional(),
    staple_source: stapleSourceConfigSchema.default("verified"),
    backend: backend.default("status"),
    policy: pollingPolicySchema.default(pollingPolicySchema.parse({})),
    tls: z
      .object({ min_version: tlsVersion.default("TLSv1.2"), max_version: tlsVersion.default("TLSv1.3") })
      .strict()
      .refine((t) => t.min_version <= t.max_version, {
        message: "min_version is above max_version: give min_version ≤ max_version",
        path: ["min_version"],
      })
      .default({ min_version: "TLSv1.2", max_version: "TLSv1.3" }),
    admin: z
      .union([
        z.literal(false),
        z
          .object({
            host: z.string().min(1).optional(),
            port: port.optional(),
            token: z.string().min(8).optional(),
            allow_unauthenticated: z.boolean().default(false),
          })
          .strict(),
      ])
      .default({ allow_unauthenticated: false }),
    state_dir: z.string().min(1).optional(),
    persist: z.boolean().default(true),
    watch_interval: z.number().min(0).max(3600).default(1),
    log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  })
  .strict();

/** A validated configuration; paths resolved against the file's folder. */
export type StaplerConfig = z.output<typeof staplerConfigSchema> & { file: string };

/**
 * Read and validate a configuration file (YAML, of which JSON is a subset).
 * @throws ConfigError naming the file, the field (`policy.on_failure`, `certificates.0.key`) and the fix.
 */
export async function loadStaplerConfig(file: string): Promise<StaplerConfig> {
  const data = await readConfigFile(
    file,
    staplerConfigSchema,
    (field, problem, cause) => new ConfigError(file, field, problem, { cause }),
  );
  try {
    parsePolicy(data.policy);
  } catch (err) {
    if (err instanceof InvalidPolicyError) throw new ConfigError(file, "policy", err.message);
    throw err;
  }
  const base = dirname(resolve(file));
  const inBase = (p: string): string => resolve(base, p);
  const relative = <T extends { kind: string; path?: string } | string>(source: T): T =>
    typeof source === "object" && source.kind === "file" && source.path ? { ...source, path: inBase(source.path) } : source;
  return {
    ...data,
    staple_source: relative(data.staple_source),
    certificates: data.certificates.map((c) => ({
      ...c,
      cert: inBase(c.cert),
      key: inBase(c.key),
      ...(c.chain ? { chain: inBase(c.chain) } : {}),
      ...(c.staple_source ? { staple_source: relative(c.staple_source) } : {}),
    })),
    ...(data.state_dir ? { state_dir: resolve(base, data.state_dir) } : {}),
    file,
  };
}

/** The Backend of a config's `backend` string. */
export function parseBackend(value: string): Backend {
  if (value === "status") return { kind: "status" };
  if (value.startsWith("http://")) return { kind: "http", url: value };
  const m = /^tcp:\/\/([^:/\s]+):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError("backend", "", `${JSON.stringify(value)}: give status, http://host:port or tcp://host:port`);
  return { kind: "tcp", host: m[1]!, port: Number(m[2]) };
}

/**
 * Start a stapling server as the configuration says.
 * @throws the start errors of StaplingServer (certificate setup, policy, listen).
 */
export async function startFromConfig(
  config: StaplerConfig,
  options: { env?: NodeJS.ProcessEnv; logger?: Logger } = {},
): Promise<StartedStaplingServer> {
  return builderFromConfig(config, options).start();
}

/** The StaplingServer builder a configuration describes (not started: `check()` or `start()` it). */
export function builderFromConfig(
  config: StaplerConfig,
  options: { env?: NodeJS.ProcessEnv; logger?: Logger } = {},
): StaplingServer {
  const logger = options.logger ?? pino({ level: config.log_level });
  let builder = new StaplingServer()
    .withHost(config.listen.host)
    .withPort(config.listen.port)
    .withPolicy(config.policy)
    .withBackend(parseBackend(config.backend))
    .withTls({ minVersion: config.tls.min_version, maxVersion: config.tls.max_version })
    .withAdmin(
      config.admin === false
        ? false
        : {
            ...(config.admin.host !== undefined ? { host: config.admin.host } : {}),
            ...(config.admin.port !== undefined ? { port: config.admin.port } : {}),
            ...(config.admin.token !== undefined ? { token: config.admin.token } : {}),
            allowUnauthenticated: config.admin.allow_unauthenticated,
          },
    )
    .withWatch(config.watch_interval * 1000)
    .withStapleSource(stapleSourceFromConfig(config.staple_source, (p) => p))
    .withLogger(logger);
  if (config.responder_url) builder = builder.withResponderUrl(config.responder_url);
  if (config.persist) builder = builder.withStateDir(config.state_dir ?? resolveStateDir(undefined, options.env));
  for (const c of config.certificates) {
    builder = builder.withCertificateFiles({
      certFile: c.cert,
      keyFile: c.key,
      ...(c.chain ? { chainFile: c.chain } : {}),
      ...(c.responder_url ? { responderUrl: c.responder_url } : {}),
      ...(c.staple_source ? { stapleSource: stapleSourceFromConfig(c.staple_source, (p) => p) } : {}),
    });
  }
  return builder;
}
