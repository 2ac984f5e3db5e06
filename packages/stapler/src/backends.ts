import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { StapleSnapshot } from "./staple-manager.js";

/**
 * What the server does with a connection once TLS is up:
 * - `status`: HTTPS, a plain-text status page of the staples on every path;
 * - `http`: HTTPS reverse proxy to an HTTP backend (`url`, e.g. http://127.0.0.1:8080);
 * - `tcp`: TLS-terminating TCP proxy to any TCP backend (as Redis Enterprise's proxy does in
 *   front of redis-server on 127.0.0.1:6379).
 */
export type Backend = { kind: "status" } | { kind: "http"; url: string } | { kind: "tcp"; host: string; port: number };

/**
 * The HTTPS request handler of the `status` and `http` backends.
 * - `status`: 200 text/plain, one line per certificate (`ocsp-lab stapler: <subject> serial
 *   <serial> staple <state>`, then ` (source <kind>, unverified)` when the staple source is not
 *   `verified`) from `status()`;
 * - `http`: the request passed to `backend.url` with `X-Forwarded-For` (the client address) and
 *   `X-Forwarded-Proto: https`, the backend's answer streamed back; an unreachable backend is
 *   a 502 (or a cut connection once the answer has begun), logged at warn.
 */
export function httpBackend(
  backend: Backend,
  status: () => StapleSnapshot[],
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  if (backend.kind !== "http") {
    return (_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(
        status()
          .map(
            (s) =>
              `ocsp-lab stapler: ${s.subject} serial ${s.serial} staple ${s.staple}${s.stapleSource === "verified" ? "" : ` (source ${s.stapleSource}, unverified)`}\n`,
          )
          .join(""),
      );
    };
  }
  return (req, res) => {
    const target = new URL(backend.url);
    const headers = { ...req.headers, "x-forwarded-for": req.socket.remoteAddress ?? "", "x-forwarded-proto": "https" };
    const upstream = httpRequest(
      { host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      logger.warn({ err: err.message, backend }, "backend unreachable");
      if (!res.headersSent)
        res.writeHead(502, { "Content-Type": "text/plain; charset=utf-8" }).end(`backend ${target.host} unreachable\n`);
      else res.destroy();
    });
    req.pipe(upstream);
  };
}

/** What the TCP proxy needs from the server it runs in. */
export interface TcpProxyDeps {
  /** Open sockets, destroyed by the server's stop(): both ends of every proxied connection are added, and removed once closed. */
  sockets: Set<Socket>;
  /** True once the server is stopping: a connection that completes its handshake then is closed. */
  stopped: () => boolean;
  logger: Logger;
}

/**
 * The connection handler of the `tcp` backend: each TLS connection is piped both ways to a
 * new TCP connection to `backend.host:backend.port`. A half-close is passed on (a client that
 * ends its side after sending still gets the whole answer); once either side is fully closed,
 * or fails, both are destroyed. An unreachable backend is logged at warn. With another
 * backend kind, or once stopped, the connection is destroyed.
 */
export function tcpBackend(backend: Backend, deps: TcpProxyDeps): (socket: TLSSocket) => void {
  return (socket) => {
    if (backend.kind !== "tcp" || deps.stopped()) {
      socket.destroy();
      return;
    }
    const upstream = netConnect({ host: backend.host, port: backend.port });
    deps.sockets.add(socket);
    deps.sockets.add(upstream);
    const done = (): void => {
      socket.destroy();
      upstream.destroy();
      deps.sockets.delete(socket);
      deps.sockets.delete(upstream);
    };
    socket.on("error", done);
    upstream.on("error", (err) => {
      deps.logger.warn({ err: err.message, backend }, "backend unreachable");
      done();
    });
    // Each direction's end is passed on by pipe (a half-close stays a half-close); once either
    // socket is fully closed, nothing more can flow and both go.
    socket.on("close", done);
    upstream.on("close", done);
    socket.pipe(upstream);
    upstream.pipe(socket);
  };
}
