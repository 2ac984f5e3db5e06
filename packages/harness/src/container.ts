/**
 * The lab as a container, testcontainers style: `@ocsp-lab/harness/container`. This module
 * loads testcontainers (so it is not re-exported from `@ocsp-lab/harness`, which never does).
 *
 *   await using lab = await new OcspLabContainer().withAdminToken(token).start();
 *   lab.responderUrl(); lab.staplerHost(); lab.staplerPort(); await lab.caPem();
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { createInterface } from "node:readline";
import { AbstractStartedContainer, GenericContainer, Wait, type StartedTestContainer } from "testcontainers";
import { ContainerError, LabOptionError } from "./errors.js";
import type { LabEndpoints } from "./up.js";

export { containerEngineAvailability } from "./container-engine.js";
export { ContainerError } from "./errors.js";
export type { ContainerEngineAvailability, ContainerEngineOptions } from "./container-engine.js";
export {
  CONTAINER_SERVERS,
  CONTAINER_SERVER_NAMES,
  startContainerServer,
  nginxContainerConfig,
  httpdContainerConfig,
  haproxyContainerConfig,
} from "./container-servers.js";
export type {
  ContainerServerDefinition,
  ContainerServerName,
  ContainerServerOptions,
  StartedContainerServer,
} from "./container-servers.js";

/** Image OcspLabContainer runs by default: `$OCSP_LAB_IMAGE`, else `ocsp-lab:latest` (`docker build -t ocsp-lab .`). */
export const DEFAULT_OCSP_LAB_IMAGE = "ocsp-lab:latest";
/** The responder's port inside the container (the image's entry point fixes it; OCSP and its admin API). */
export const CONTAINER_RESPONDER_PORT = 8080;
/** The stapling TLS server's port inside the container. */
export const CONTAINER_STAPLER_PORT = 8443;
/** The first line `ocsp-lab up --json` prints once ready: the endpoints (LabEndpoints). */
const JSON_LINE = /^\{"stateDir":/;

/**
 * `ocsp-lab up --json` in a container of the lab's image (the repository's Dockerfile), on
 * testcontainers' GenericContainer: ports 8080 (responder) and 8443 (stapler) published to
 * random host ports, started once the JSON line is printed (Wait.forLogMessage). The image's
 * entry point needs an admin token (it publishes the admin API); without withAdminToken a
 * random one is used (StartedOcspLabContainer.adminToken() tells it).
 */
export class OcspLabContainer extends GenericContainer {
  private token: string | undefined;
  private upArguments: string[] = [];

  /**
   * @param image the lab's image; default `$OCSP_LAB_IMAGE`, else DEFAULT_OCSP_LAB_IMAGE.
   * Nothing is contacted before start().
   */
  constructor(image: string = process.env.OCSP_LAB_IMAGE || DEFAULT_OCSP_LAB_IMAGE) {
    super(image);
    this.withExposedPorts(CONTAINER_RESPONDER_PORT, CONTAINER_STAPLER_PORT)
      .withWaitStrategy(Wait.forLogMessage(JSON_LINE))
      .withStartupTimeout(120_000);
  }

  /**
   * The bearer token of the lab's admin APIs and metrics (`OCSP_LAB_ADMIN_TOKEN` in the container).
   * @throws LabOptionError for a token shorter than 8 characters or with white space.
   */
  withAdminToken(token: string): this {
    if (token.length < 8 || /\s/.test(token))
      throw new LabOptionError(
        "withAdminToken",
        `${token.length} characters`,
        "give 8 characters or more, without spaces (openssl rand -hex 16)",
      );
    this.token = token;
    return this;
  }

  /**
   * More `ocsp-lab up` arguments, after the entry point's `--json --responder-port 8080 --port
   * 8443`: e.g. `"--query-frequency", "2"`, `"--quiet"`, `"--new-cert"`. Replaces earlier ones.
   */
  withUpArguments(...args: string[]): this {
    this.upArguments = args;
    return this;
  }

  /**
   * Start the container and read its JSON line.
   * @returns the started lab, its getters filled from the JSON line.
   * @throws ContainerError when the JSON line cannot be read or parsed; testcontainers' errors
   * when no engine answers, the image is missing, or no JSON line comes within the startup
   * timeout (120 s by default; withStartupTimeout changes it).
   */
  override async start(): Promise<StartedOcspLabContainer> {
    const token = this.token ?? randomBytes(16).toString("hex");
    this.withEnvironment({ OCSP_LAB_ADMIN_TOKEN: token });
    if (this.upArguments.length > 0) this.withCommand(this.upArguments);
    const started = await super.start();
    try {
      return new StartedOcspLabContainer(started, await readJsonLine(started, this.imageName.string), token);
    } catch (err) {
      await started.stop();
      throw err;
    }
  }
}

/** The JSON line among the container's first output lines, parsed. */
async function readJsonLine(started: StartedTestContainer, image: string): Promise<LabEndpoints> {
  const what = `OcspLabContainer ${image}`;
  const stream = await started.logs();
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (!JSON_LINE.test(line)) continue;
      try {
        return JSON.parse(line) as LabEndpoints;
      } catch (err) {
        throw new ContainerError(what, `the JSON line does not parse (${String(err)}): ${line.slice(0, 200)}`, { cause: err });
      }
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  throw new ContainerError(what, "its output ended without the JSON line of ocsp-lab up --json");
}

/**
 * A running lab container (OcspLabContainer.start()). URLs and ports are as this machine
 * reaches them (the engine's host, the published ports); endpoints() is the JSON line as the
 * lab printed it inside the container (127.0.0.1 URLs, container paths). stop() (and
 * `Symbol.asyncDispose`, inherited: `await using lab = ...`) stops and removes the container.
 */
export class StartedOcspLabContainer extends AbstractStartedContainer {
  /** @internal built by OcspLabContainer.start(). */
  constructor(
    started: StartedTestContainer,
    private readonly lab: LabEndpoints,
    private readonly token: string,
  ) {
    super(started);
  }

  /** The JSON line of `ocsp-lab up --json`, as printed inside the container. */
  endpoints(): LabEndpoints {
    return this.lab;
  }

  /** The engine's host name for this machine (`localhost`, or the remote engine's host). */
  private hostForUrl(): string {
    const host = this.getHost();
    return host.includes(":") ? `[${host}]` : host;
  }

  /** The OCSP responder from this machine, e.g. `http://localhost:32771` (POST or GET /<base64>). */
  responderUrl(): string {
    return `http://${this.hostForUrl()}:${this.getMappedPort(CONTAINER_RESPONDER_PORT)}`;
  }

  /** The responder's admin API from this machine (`…/admin`; needs `Authorization: Bearer <adminToken()>`). */
  adminUrl(): string {
    return `${this.responderUrl()}/admin`;
  }

  /** The responder's Prometheus metrics from this machine (token required). */
  metricsUrl(): string {
    return `${this.responderUrl()}/metrics`;
  }

  /** Host where the stapling TLS server is reached from this machine. */
  staplerHost(): string {
    return this.getHost();
  }

  /** Published port of the stapling TLS server (a TCP port on staplerHost()). */
  staplerPort(): number {
    return this.getMappedPort(CONTAINER_STAPLER_PORT);
  }

  /** The TLS server name to send (SNI) and check: the certificate's (`localhost`). */
  serverName(): string {
    return this.lab.serverName;
  }

  /** Serial of the server certificate the stapler serves (lower-case hex). */
  serial(): string {
    return this.lab.serial;
  }

  /** The admin token the container runs with (the one given to withAdminToken, or the random one). */
  adminToken(): string {
    return this.token;
  }

  /**
   * A text file of the container (`endpoints().certFile`...), read with `cat` in the container.
   * @throws ContainerError when it cannot be read (the path and cat's message).
   */
  async readFile(path: string): Promise<string> {
    const r = await this.exec(["cat", path]);
    if (r.exitCode !== 0)
      throw new ContainerError(
        `OcspLabContainer ${this.getName()}`,
        `cannot read ${path}: ${r.stderr.trim() || `exit ${r.exitCode}`}`,
      );
    return r.stdout;
  }

  /** The root CA certificate (PEM), every client's CA file. @throws ContainerError as readFile. */
  caPem(): Promise<string> {
    return this.readFile(this.lab.caFile);
  }

  /** The server certificate the stapler serves (PEM). @throws ContainerError as readFile. */
  certificatePem(): Promise<string> {
    return this.readFile(this.lab.certFile);
  }

  /** Its chain (issuer first, PEM). @throws ContainerError as readFile. */
  chainPem(): Promise<string> {
    return this.readFile(this.lab.chainFile);
  }

  /**
   * Write the root CA certificate to `file` on this machine (for `openssl -CAfile`, `curl --cacert`).
   * @returns `file`. @throws ContainerError as readFile; the file system's error when `file` cannot be written.
   */
  async copyCaTo(file: string): Promise<string> {
    await fs.writeFile(file, await this.caPem());
    return file;
  }

  /**
   * Run `ocsp-lab <args>` in the container (e.g. `["revoke", serial(), "--reason", "keyCompromise"]`,
   * `["set", serial(), "unknown"]`): it finds the running up through its state folder.
   * @returns its exit code and output.
   */
  async ocspLab(...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await this.exec(["ocsp-lab", ...args]);
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }
}
