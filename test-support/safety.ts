/**
 * Helpers of the "safe by default" tests: HTTP requests with the headers fetch will not send
 * (Host, Origin, a Content-Length with no body yet), the machine's non-loopback address, and
 * child processes that file modes apply to (as root, a child without capabilities).
 */
import { chmod } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, createServer } from "node:net";
import { once } from "node:events";
import { networkInterfaces } from "node:os";
import { run, type Ran } from "./index.js";

/** One HTTP answer: status, headers, body as text. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP/1.1 request with node:http (no agent: its own connection), so that `Host` and
 * `Origin` can be set as a browser under DNS rebinding or on another site would send them.
 */
export function rawRequest(options: {
  port: number;
  host?: string;
  method: string;
  path: string;
  headers?: Record<string, string | number>;
  body?: string;
}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: options.host ?? "127.0.0.1",
        port: options.port,
        method: options.method,
        path: options.path,
        headers: options.headers ?? {},
        agent: false,
        setHost: !Object.keys(options.headers ?? {}).some((h) => h.toLowerCase() === "host"),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
    req.end(options.body);
  });
}

/**
 * Send only the head of a request declaring `Content-Length: contentLength` (no byte of the
 * body), and resolve with the raw answer text once the server closes the connection: what a
 * server that "answers at once, without reading the body" sends. Rejects after 10 s (a server
 * waiting for the body never answers).
 */
export function headOnlyRequest(options: {
  port: number;
  method: string;
  path: string;
  contentLength: number;
  headers?: Record<string, string>;
}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(options.port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 10 s; got ${JSON.stringify(text)}`));
    }, 10_000);
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (text += d));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on("error", () => undefined);
    const extra = Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(
      `${options.method} ${options.path} HTTP/1.1\r\nHost: 127.0.0.1:${options.port}\r\nContent-Length: ${options.contentLength}\r\n${extra.join("")}\r\n`,
    );
  });
}

/** An IPv4 address of this machine that is not loopback (for "listens beyond this machine"), or undefined. */
export function nonLoopbackAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) if (i.family === "IPv4" && !i.internal) return i.address;
  return undefined;
}

/**
 * Whether the tests run as root, whom file modes bind only without its capabilities: a child is
 * then run by `setpriv` with an empty capability bounding set (no CAP_DAC_OVERRIDE nor
 * CAP_DAC_READ_SEARCH), still uid 0. (Another user such as `nobody` would also need to traverse
 * every folder above the checkout, which a fresh clone in a 0700 temp folder does not allow.)
 */
export const RUNNING_AS_ROOT = process.getuid?.() === 0;

/**
 * Make `path` mode `mode` (e.g. 0o555 read-only, 0o000 unreadable) so that a child started by
 * runDenied cannot do what the mode forbids: chmod, which binds the tests' own user, and root's
 * children too as runDenied starts them without capabilities. Folders above `path` that the
 * child must traverse are given in `traverse` (made 0755).
 */
export async function deny(path: string, mode: number, traverse: string[] = []): Promise<void> {
  for (const dir of traverse) await chmod(dir, 0o755);
  await chmod(path, mode);
}

/**
 * Run a command to completion (stdin closed) so that the modes set by `deny` apply to it: as
 * this user, or as root without capabilities (setpriv) when the tests run as root. Never
 * rejects on a non-zero exit.
 */
export function runDenied(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Ran> {
  return RUNNING_AS_ROOT
    ? run("setpriv", ["--bounding-set=-all", "--inh-caps=-all", "--", command, ...args], options)
    : run(command, args, options);
}

/** That nothing listens on 127.0.0.1:`port`: this process can bind it itself (and lets it go). */
export async function portIsFree(port: number): Promise<boolean> {
  const probe = createServer();
  probe.listen(port, "127.0.0.1");
  try {
    await once(probe, "listening");
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}
