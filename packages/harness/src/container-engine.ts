/**
 * Whether a container engine (Docker, Podman's Docker API) is reachable, found the way
 * testcontainers finds one, without loading testcontainers: importing this module only loads
 * node built-ins.
 */
import { promises as fs } from "node:fs";
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";

/** What containerEngineAvailability found: an engine (and where), or why there is none, for a person. */
export type ContainerEngineAvailability = { ok: true; endpoint: string } | { ok: false; reason: string };

/** Options of containerEngineAvailability (defaults: this process's). */
export interface ContainerEngineOptions {
  /** Environment to read DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, XDG_RUNTIME_DIR from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Home folder holding `.testcontainers.properties` and `.docker/`; default os.homedir(). */
  home?: string;
  /**
   * Sockets tried when no DOCKER_HOST (or `docker.host`/`tc.host` property) is set, in order;
   * default testcontainers' list: /var/run/docker.sock, then the rootless ones
   * ($XDG_RUNTIME_DIR/docker.sock, ~/.docker/run/docker.sock, ~/.docker/desktop/docker.sock,
   * /run/user/<uid>/docker.sock). Given for tests.
   */
  sockets?: readonly string[];
  /** Deadline of the whole check, in milliseconds; default 1500 (an engine that is there answers in a few ms). */
  timeoutMs?: number;
}

/** Where an engine may be, and what told us so (for the reason). */
interface Candidate {
  source: string;
  uri: string;
}

const DEFAULT_SOCKET = "/var/run/docker.sock";
const INSTALL_HINT =
  "install Docker or Podman to run container targets (Podman: podman system service, then DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock)";

/**
 * Find out whether a container engine is reachable, as testcontainers would look for one, in
 * its order: `tc.host` then `docker.host` in ~/.testcontainers.properties, DOCKER_HOST (over
 * `docker.host`), /var/run/docker.sock, the rootless sockets; on Windows the
 * `//./pipe/docker_engine` pipe. Each candidate is asked `GET /_ping` (the Docker API's health
 * check; TLS with DOCKER_CERT_PATH's files when DOCKER_TLS_VERIFY=1); the first that answers
 * 200 wins. Missing sockets cost a stat each, so with nothing there this answers in a few
 * milliseconds; a host that does not answer costs at most `timeoutMs`.
 * @returns `{ ok: true, endpoint }` (the URI that answered), or `{ ok: false, reason }`: one
 * sentence for a person, e.g. "no container engine: /var/run/docker.sock does not exist and
 * DOCKER_HOST is not set; install Docker or Podman to run container targets (...)", or what
 * each configured endpoint said ("DOCKER_HOST=unix:///tmp/x.sock: nothing listens there
 * (ECONNREFUSED)"). Never throws.
 */
export async function containerEngineAvailability(options: ContainerEngineOptions = {}): Promise<ContainerEngineAvailability> {
  const env = options.env ?? process.env;
  const home = options.home ?? homedir();
  const deadline = performance.now() + (options.timeoutMs ?? 1500);
  const properties = await readProperties(join(home, ".testcontainers.properties"));
  const configured: Candidate[] = [];
  if (properties["tc.host"]) configured.push({ source: "tc.host in ~/.testcontainers.properties", uri: properties["tc.host"] });
  if (env.DOCKER_HOST) configured.push({ source: `DOCKER_HOST=${env.DOCKER_HOST}`, uri: env.DOCKER_HOST });
  else if (properties["docker.host"])
    configured.push({ source: "docker.host in ~/.testcontainers.properties", uri: properties["docker.host"] });
  const tlsVerify = (env.DOCKER_TLS_VERIFY ?? properties["docker.tls.verify"]) === "1";
  const certPath = env.DOCKER_CERT_PATH ?? properties["docker.cert.path"];

  const failures: string[] = [];
  for (const c of configured) {
    const why = await ping(c.uri, { tlsVerify, certPath, deadline });
    if (why === undefined) return { ok: true, endpoint: c.uri };
    failures.push(`${c.source}: ${why}`);
  }
  const sockets =
    options.sockets ??
    (process.platform === "win32"
      ? ["//./pipe/docker_engine"]
      : [
          DEFAULT_SOCKET,
          ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, "docker.sock")] : []),
          join(home, ".docker", "run", "docker.sock"),
          join(home, ".docker", "desktop", "docker.sock"),
          join("/run", "user", String(uid()), "docker.sock"),
        ]);
  const present: string[] = [];
  for (const socket of sockets) if (process.platform === "win32" || (await exists(socket))) present.push(socket);
  for (const socket of present) {
    const why = await ping(`unix://${socket}`, { tlsVerify: false, deadline });
    if (why === undefined) return { ok: true, endpoint: `unix://${socket}` };
    failures.push(`${socket}: ${why}`);
  }
  if (failures.length === 0) {
    const missing =
      sockets.length === 1
        ? `${sockets[0]} does not exist`
        : sockets.includes(DEFAULT_SOCKET)
          ? `${DEFAULT_SOCKET} does not exist (nor a rootless engine's socket)`
          : `none of ${sockets.join(", ")} exists`;
    return { ok: false, reason: `no container engine: ${missing} and DOCKER_HOST is not set; ${INSTALL_HINT}` };
  }
  return {
    ok: false,
    reason: `no container engine answers: ${failures.join("; ")}; start the engine, or point DOCKER_HOST at a running one, or ${INSTALL_HINT}`,
  };
}

function uid(): number {
  try {
    return userInfo().uid;
  } catch {
    return -1;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `key=value` / `key: value` lines of a Java properties file; empty when it cannot be read. */
async function readProperties(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([^#!\s=:][^=:\s]*)\s*[=:]\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * Ask the Docker API at `uri` for `GET /_ping`.
 * @returns undefined when it answered 200; otherwise why not, for a person.
 */
async function ping(
  uri: string,
  options: { tlsVerify: boolean; certPath?: string | undefined; deadline: number },
): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `"${uri}" is not a URL (give unix:///path/to/docker.sock or tcp://host:port)`;
  }
  const request: RequestOptions = { method: "GET", path: "/_ping", headers: { host: "docker" } };
  let tls = false;
  switch (url.protocol) {
    case "unix:":
    case "npipe:":
      if (url.protocol === "unix:" && !(await exists(url.pathname))) return `socket ${url.pathname} does not exist`;
      request.socketPath = url.protocol === "npipe:" ? url.pathname.replace(/\//g, "\\") : url.pathname;
      break;
    case "tcp:":
    case "http:":
    case "https:": {
      tls = url.protocol === "https:" || (url.protocol === "tcp:" && options.tlsVerify);
      request.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      request.port = Number(url.port || (tls ? 2376 : 2375));
      if (tls && options.certPath) {
        try {
          request.headers = { host: url.host };
          Object.assign(request, {
            ca: await fs.readFile(join(options.certPath, "ca.pem")),
            cert: await fs.readFile(join(options.certPath, "cert.pem")),
            key: await fs.readFile(join(options.certPath, "key.pem")),
          });
        } catch (err) {
          return `cannot read the TLS files in DOCKER_CERT_PATH=${options.certPath} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
        }
      }
      break;
    }
    default:
      return `scheme ${url.protocol} is not one testcontainers can use here (give unix:///path/to/docker.sock or tcp://host:port)`;
  }
  const timeoutMs = Math.max(1, Math.round(options.deadline - performance.now()));
  return new Promise<string | undefined>((resolve) => {
    let req: ClientRequest | undefined;
    const timer = setTimeout(() => {
      req?.destroy();
      resolve(`no answer within ${timeoutMs} ms`);
    }, timeoutMs);
    const done = (why: string | undefined): void => {
      clearTimeout(timer);
      resolve(why);
    };
    req = (tls ? httpsRequest : httpRequest)(request, (res: IncomingMessage) => {
      res.resume();
      done(res.statusCode === 200 ? undefined : `answered HTTP ${res.statusCode} to GET /_ping: not a working Docker API`);
    });
    req.on("error", (err: NodeJS.ErrnoException) => done(describeConnectError(err)));
    req.end();
  });
}

function describeConnectError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ECONNREFUSED":
      return "nothing listens there (ECONNREFUSED)";
    case "ENOENT":
      return "the socket does not exist (ENOENT)";
    case "EACCES":
    case "EPERM":
      return `permission denied (${err.code}): this user cannot use the socket (add it to the docker group, or use a rootless engine)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found (${err.code})`;
    case "ENOTSOCK":
      return "not a socket (ENOTSOCK)";
    default:
      return `${err.message}${err.code ? ` (${err.code})` : ""}`;
  }
}
