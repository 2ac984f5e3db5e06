/**
 * Servers under test as containers of their official images (nginx, Apache httpd, HAProxy),
 * for machines with a container engine (see containerEngineAvailability). Importing this
 * module does not load testcontainers: startContainerServer imports it when called, so the
 * definitions can be listed (as skipped, with the reason) where no engine exists.
 */
import { promises as fs } from "node:fs";
import { toPemBundle } from "@ocsp-lab/ca";
import { ContainerError } from "./errors.js";
import { fetchForOperator } from "./servers/operator-fetch.js";

/** Names of the container server targets. */
export type ContainerServerName = "nginx" | "httpd" | "haproxy";

/** What a container server target is: its image (pinned tag), the port it serves TLS on in the container, how it staples. */
export interface ContainerServerDefinition {
  name: ContainerServerName;
  /** The official image, tag pinned (`nginx:1.27.4`). */
  image: string;
  /** The TLS port inside the container (published to a random host port). */
  containerPort: number;
  /** How it gets its staple, for reports and docs. */
  stapling: string;
}

/** Where the configuration and certificate files go in every target's container. */
const CONF_DIR = "/etc/ocsp-lab";
const TLS_PORT = 8443;
/** The most of a target's output kept for logs(), in characters (the tail). */
const MAX_LOG_CHARS = 64 * 1024;

/** The container server targets, by name. */
export const CONTAINER_SERVERS: Readonly<Record<ContainerServerName, ContainerServerDefinition>> = {
  nginx: {
    name: "nginx",
    image: "nginx:1.27.4",
    containerPort: TLS_PORT,
    stapling:
      "ssl_stapling on; ssl_stapling_verify on; ssl_stapling_responder <responderUrl>: queries the responder itself at the first handshake (which gets no staple) and caches the answer",
  },
  httpd: {
    name: "httpd",
    image: "httpd:2.4.62",
    containerPort: TLS_PORT,
    stapling:
      "mod_ssl SSLUseStapling on, SSLStaplingCache shmcb, SSLStaplingForceURL <responderUrl>: queries the responder during the first handshake and caches the answer",
  },
  haproxy: {
    name: "haproxy",
    image: "haproxy:3.0.5",
    containerPort: TLS_PORT,
    stapling:
      "crt site.pem with site.pem.ocsp next to it: serves the response it was given at start (fetched by the harness), never queries a responder itself here",
  },
};

/** Names of the container server targets, in report order. */
export const CONTAINER_SERVER_NAMES: readonly ContainerServerName[] = ["nginx", "httpd", "haproxy"];

/** Options of startContainerServer. */
export interface ContainerServerOptions {
  /** PEM files on this machine: the server certificate, its key, its chain (issuer first, without the root) and the root CA. */
  certFile: string;
  keyFile: string;
  chainFile: string;
  caFile: string;
  /**
   * The OCSP responder as the container reaches it (`http://host.testcontainers.internal:8080`
   * after `TestContainers.exposeHostPorts(8080)`, or a network alias): nginx and httpd query it
   * instead of the certificate's AIA URL.
   */
  responderUrl: string;
  /**
   * haproxy only: the responder as this process reaches it, to fetch the response put in
   * `site.pem.ocsp`; default `responderUrl`. Ignored when `ocspResponse` is given.
   */
  hostResponderUrl?: string;
  /** haproxy only: the DER OCSPResponse to serve instead of fetching one. */
  ocspResponse?: Uint8Array;
  /** Another image (and tag) than the definition's; default CONTAINER_SERVERS[name].image. */
  image?: string;
  /** How long the container may take to listen, in milliseconds; default 60000 (a first pull takes longer: pull beforehand). */
  startupTimeoutMs?: number;
}

/** A started container server target. */
export interface StartedContainerServer {
  name: ContainerServerName;
  /** Where to connect from this machine: the engine's host and the published port. */
  host: string;
  port: number;
  /** The configuration file it runs with (for a report's detail). */
  config: string;
  /** The container's output so far (stdout and stderr, the last 64 KiB), for a report's detail. */
  logs(): Promise<string>;
  /** Stop and remove the container. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The nginx configuration of the target (files under CONF_DIR). */
export function nginxContainerConfig(responderUrl: string): string {
  return `worker_processes 1;
error_log /dev/stderr info;
pid /tmp/nginx.pid;
events {}
http {
  access_log off;
  server {
    listen ${TLS_PORT} ssl;
    server_name localhost;
    ssl_certificate ${CONF_DIR}/fullchain.pem;
    ssl_certificate_key ${CONF_DIR}/key.pem;
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate ${CONF_DIR}/trusted.pem;
    ssl_stapling_responder ${responderUrl};
    location / { return 200 "ok\\n"; }
  }
}
`;
}

/** The Apache httpd configuration of the target: mod_ssl with stapling, nothing else. */
export function httpdContainerConfig(responderUrl: string): string {
  return `ServerRoot "/usr/local/apache2"
ServerName localhost
Listen ${TLS_PORT}
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule unixd_module modules/mod_unixd.so
LoadModule socache_shmcb_module modules/mod_socache_shmcb.so
LoadModule ssl_module modules/mod_ssl.so
User daemon
Group daemon
ErrorLog /proc/self/fd/2
LogLevel warn ssl:info
DocumentRoot "/usr/local/apache2/htdocs"
SSLStaplingCache "shmcb:/usr/local/apache2/logs/ssl_stapling(65536)"
<VirtualHost *:${TLS_PORT}>
  SSLEngine on
  SSLCertificateFile ${CONF_DIR}/fullchain.pem
  SSLCertificateKeyFile ${CONF_DIR}/key.pem
  SSLCACertificateFile ${CONF_DIR}/trusted.pem
  SSLUseStapling on
  SSLStaplingForceURL ${responderUrl}
  SSLStaplingResponderTimeout 5
  SSLStaplingReturnResponderErrors off
</VirtualHost>
`;
}

/** The HAProxy configuration of the target: one TLS frontend whose `crt` has its `.ocsp` file next to it. */
export function haproxyContainerConfig(): string {
  return `global
  log stdout format raw local0
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend https
  bind :${TLS_PORT} ssl crt ${CONF_DIR}/site.pem
  http-request return status 200 content-type text/plain string "ok"
`;
}

/**
 * Start one container server target from its official image with the given certificate and
 * a responder the container can reach: nginx and httpd are pointed at `responderUrl` (their
 * own OCSP queries), haproxy is given a response fetched now from `hostResponderUrl` (default
 * `responderUrl`), or `ocspResponse`. Needs a container engine (containerEngineAvailability);
 * the image is pulled when missing. Resolves once the TLS port accepts connections (nginx
 * staples from its second handshake on; httpd from the first).
 * @param name `nginx`, `httpd` or `haproxy`.
 * @returns host and published port, the config, logs() and stop().
 * @throws ContainerError for an unknown name, an unreadable file, or haproxy without a
 * successful OCSP response to serve; testcontainers' errors when no engine answers or the
 * container does not start within `startupTimeoutMs`.
 */
export async function startContainerServer(
  name: ContainerServerName,
  options: ContainerServerOptions,
): Promise<StartedContainerServer> {
  const definition = CONTAINER_SERVERS[name];
  if (!definition)
    throw new ContainerError(
      `container target ${JSON.stringify(name)}`,
      `unknown: use one of ${CONTAINER_SERVER_NAMES.join(", ")}`,
    );
  const what = `container target ${name}`;
  const read = async (file: string): Promise<string> => {
    try {
      return await fs.readFile(file, "utf8");
    } catch (err) {
      throw new ContainerError(what, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
        cause: err,
      });
    }
  };
  const [certPem, keyPem, chainPem, caPem] = await Promise.all([
    read(options.certFile),
    read(options.keyFile),
    read(options.chainFile),
    read(options.caFile),
  ]);
  const fullchain = `${certPem.trimEnd()}\n${chainPem.trimEnd()}\n`;
  const trusted = `${chainPem.trimEnd()}\n${caPem.trimEnd()}\n`;
  const files: Array<{ content: string | Buffer; target: string; mode?: number }> = [];
  let config: string;
  let command: string[];
  switch (name) {
    case "nginx":
      config = nginxContainerConfig(options.responderUrl);
      command = ["nginx", "-c", `${CONF_DIR}/nginx.conf`, "-g", "daemon off;"];
      files.push({ content: config, target: `${CONF_DIR}/nginx.conf` });
      break;
    case "httpd":
      config = httpdContainerConfig(options.responderUrl);
      command = ["httpd-foreground", "-f", `${CONF_DIR}/httpd.conf`];
      files.push({ content: config, target: `${CONF_DIR}/httpd.conf` });
      break;
    case "haproxy": {
      config = haproxyContainerConfig();
      command = ["haproxy", "-W", "-db", "-f", `${CONF_DIR}/haproxy.cfg`];
      const der =
        options.ocspResponse ?? (await fetchResponse(what, certPem, chainPem, options.hostResponderUrl ?? options.responderUrl));
      files.push(
        { content: config, target: `${CONF_DIR}/haproxy.cfg` },
        { content: toPemBundle({ certPem, keyPem, chainPem }), target: `${CONF_DIR}/site.pem` },
        { content: Buffer.from(der), target: `${CONF_DIR}/site.pem.ocsp` },
      );
      break;
    }
  }
  files.push(
    { content: fullchain, target: `${CONF_DIR}/fullchain.pem` },
    // Readable by the image's unprivileged user (haproxy runs as `haproxy`): a throwaway test key.
    { content: keyPem, target: `${CONF_DIR}/key.pem` },
    { content: trusted, target: `${CONF_DIR}/trusted.pem` },
  );

  const { GenericContainer, Wait } = await import("testcontainers");
  let printed = "";
  const started = await new GenericContainer(options.image ?? definition.image)
    .withCopyContentToContainer(files.map((f) => ({ ...f, mode: f.mode ?? 0o644 })))
    .withCommand(command)
    .withExposedPorts(definition.containerPort)
    .withLogConsumer((stream) => {
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => (printed = (printed + d).slice(-MAX_LOG_CHARS)));
    })
    .withWaitStrategy(Wait.forListeningPorts())
    .withStartupTimeout(options.startupTimeoutMs ?? 60_000)
    .start();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= started.stop().then(() => undefined));
  return {
    name,
    host: started.getHost(),
    port: started.getMappedPort(definition.containerPort),
    config,
    async logs() {
      return printed;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * A successful OCSPResponse (DER) for the certificate in `certPem` (issuer first in `chainPem`)
 * from `url`: what an operator's cron job hands HAProxy.
 * @throws ContainerError when the responder cannot be reached or does not answer `successful`.
 */
async function fetchResponse(what: string, certPem: string, chainPem: string, url: string): Promise<Uint8Array> {
  try {
    return await fetchForOperator(certPem, chainPem, url, 5000);
  } catch (err) {
    throw new ContainerError(
      what,
      `cannot get a successful OCSP response for site.pem.ocsp from ${url}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}
