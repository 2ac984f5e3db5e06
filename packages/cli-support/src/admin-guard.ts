import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { bearerAuth } from "./bearer-auth.js";

/**
 * Whether a listen address keeps a server reachable from this machine only: `localhost`, an
 * IPv4 address in 127.0.0.0/8 (RFC 1122 §3.2.1.3), `::1`, or `::ffff:127.x.y.z`. Anything else
 * (0.0.0.0, ::, an interface address, any other host name) counts as reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** Whether a listen address is a wildcard (every interface of the machine). */
function isWildcard(address: string): boolean {
  return address === "0.0.0.0" || address === "::" || address === "0:0:0:0:0:0:0:0";
}

/** Methods that change nothing (RFC 9110 §9.2.1 safe methods); every other one is state-changing. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** What adminGuard needs. */
export interface AdminGuardOptions {
  /** The admin's bearer token (RFC 6750); when set every request needs it and the Host check is left to it. */
  token?: string | undefined;
  /**
   * The address and port the admin API's listener is bound to (read per request, so a guard
   * made before `listen` sees the port the OS chose); undefined while it is not listening.
   */
  listener: () => { address: string; port: number } | undefined;
  /** Largest body accepted, in bytes: a larger `Content-Length` is answered 413 before any byte of the body is read. */
  maxBodyBytes: number;
}

/** The host names and addresses (lower case, IPv6 without brackets) a Host header may name for `address`. */
function allowedHostNames(address: string): Set<string> {
  const names = new Set(["localhost", "127.0.0.1", "::1", address.toLowerCase()]);
  if (isWildcard(address)) {
    names.add(hostname().toLowerCase());
    for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) names.add(i.address.toLowerCase());
  }
  return names;
}

/** `host[:port]` or `[v6][:port]` of a Host header or an Origin's authority; undefined when it does not parse. */
function splitAuthority(authority: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s]+))(?::(\d{1,5}))?$/.exec(authority.trim());
  if (!m) return undefined;
  return { host: (m[1] ?? m[2]!).toLowerCase(), port: m[3] !== undefined ? Number(m[3]) : defaultPort };
}

function sendJson(res: ServerResponse, status: number, body: Record<string, unknown>, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...(close ? { Connection: "close" } : {}),
  });
  res.end(text);
}

/**
 * Connect/express middleware in front of an admin API (the responder's and the stapler's), in
 * this order:
 * 1. a `Content-Length` above `maxBodyBytes` is answered `413` `{error}` at once, with
 *    `Connection: close`, before a byte of the body is read (the unread body would otherwise be
 *    taken for the next request on the connection);
 * 2. without a token, the `Host` header (RFC 9110 §7.2) must name this listener: its port, and
 *    `localhost`, a loopback address, the bound address or (bound to 0.0.0.0 or ::) one of this
 *    machine's addresses or its host name; anything else is `421 Misdirected Request` `{error}`
 *    (RFC 9110 §15.5.20). A page that rebinds its own DNS name to 127.0.0.1 (DNS rebinding)
 *    sends its own name as Host, so it cannot drive the API. With a token the token is the
 *    check (a rebinding page does not know it), so tools may reach the API under any name;
 * 3. with a token, `Authorization: Bearer <token>` (bearerAuth: 401 otherwise);
 * 4. a state-changing request (any method but GET, HEAD, OPTIONS) with an `Origin` header
 *    (RFC 6454 §7; browsers send it on cross-origin and on non-GET requests) that is not this
 *    admin endpoint's own origin (`http://` + an allowed host + the port) is `403` `{error}`:
 *    a web page the operator happens to visit cannot change the lab's answers. `Origin: null`
 *    (sandboxed frames, file: pages) is refused too. Clients that are not browsers send no
 *    Origin and are not affected.
 */
export function adminGuard(options: AdminGuardOptions): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  const auth = bearerAuth(options.token);
  const checkHost = options.token === undefined;
  let names: { address: string; set: Set<string> } | undefined;
  const allowed = (address: string): Set<string> => {
    if (names?.address !== address) names = { address, set: allowedHostNames(address) };
    return names.set;
  };
  const matches = (authority: string, listener: { address: string; port: number }): boolean => {
    const parsed = splitAuthority(authority, 80);
    return parsed !== undefined && parsed.port === listener.port && allowed(listener.address).has(parsed.host);
  };
  const own = (listener: { address: string; port: number }): string => {
    const host = listener.address.includes(":") ? `[${listener.address}]` : listener.address;
    return isWildcard(listener.address) ? `http://localhost:${listener.port}` : `http://${host}:${listener.port}`;
  };
  return (req, res, next) => {
    const length = Number(req.headers["content-length"]);
    if (Number.isFinite(length) && length > options.maxBodyBytes) {
      sendJson(
        res,
        413,
        { error: `request body of ${length} bytes is over the admin API's limit of ${options.maxBodyBytes} bytes` },
        true,
      );
      return;
    }
    const listener = options.listener();
    if (checkHost && listener) {
      const host = req.headers.host;
      if (host === undefined || !matches(host, listener)) {
        sendJson(res, 421, {
          error: `Host ${JSON.stringify(host ?? "")} is not this admin endpoint: refused (DNS rebinding protection); send requests to ${own(listener)}, or set an admin token to reach it under other names`,
        });
        return;
      }
    }
    auth(req, res, () => {
      const origin = req.headers.origin;
      if (origin !== undefined && !SAFE_METHODS.has(req.method ?? "GET") && listener) {
        const m = /^http:\/\/(.+)$/i.exec(origin);
        if (!m || !matches(m[1]!, listener)) {
          sendJson(res, 403, {
            error: `cross-origin ${req.method} refused: Origin ${JSON.stringify(origin)} is not this admin endpoint (${own(listener)}); the admin API takes no requests from web pages`,
          });
          return;
        }
      }
      next();
    });
  };
}
