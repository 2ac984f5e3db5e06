import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Connect/express middleware that admits a request only with `Authorization: Bearer <token>`
 * (RFC 6750 §2.1), used by the responder's and the stapler's admin endpoints. Without a token
 * every request passes (the endpoints bind 127.0.0.1 by default). A wrong or missing token gets
 * `401` with `WWW-Authenticate: Bearer` and a JSON `{ error }` saying what to send. The
 * comparison takes the same time whatever the token (SHA-256 digests compared with
 * timingSafeEqual).
 */
export function bearerAuth(token: string | undefined): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  if (token === undefined) return (_req, _res, next) => next();
  const expected = digest(`Bearer ${token}`);
  return (req, res, next) => {
    const got = req.headers.authorization;
    if (got !== undefined && timingSafeEqual(digest(got), expected)) {
      next();
      return;
    }
    const body = JSON.stringify({ error: "missing or wrong bearer token: send Authorization: Bearer <token>" });
    res.writeHead(401, {
      "WWW-Authenticate": "Bearer",
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
  };
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
