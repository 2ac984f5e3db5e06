import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { systemClock, type Clock } from "@ocsp-lab/ocsp";
import { FetchError } from "./errors.js";

/** Largest response accepted, in bytes: a response with a delegated signer is ~1 KiB. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * POST a DER OCSP request to `url` (RFC 6960 Appendix A.1, `application/ocsp-request`) and
 * return the DER body of a 200 answer. The whole exchange (connect, send, receive) is bounded
 * by `timeoutMs` milliseconds of `clock` (default the system clock; a ManualClock in tests, so a
 * hung responder times out when the test advances it); no connection is pooled, so a hung
 * responder never holds a socket we reuse. `signal` aborts it (the stapler stopping).
 * @throws FetchError kind `timeout`, `network` (connect refused/reset, bad URL, aborted) or
 * `http` (status other than 200, a Content-Type other than application/ocsp-response as RFC
 * 6960 Appendix A.1 requires, body over 64 KiB).
 */
export function fetchOcsp(
  url: string,
  der: Uint8Array,
  timeoutMs: number,
  signal?: AbortSignal,
  clock: Clock = systemClock,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      reject(new FetchError("network", `bad responder URL ${JSON.stringify(url)}`, { cause }));
      return;
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      reject(new FetchError("network", `bad responder URL ${JSON.stringify(url)}: only http and https are supported`));
      return;
    }
    const send = parsed.protocol === "https:" ? httpsRequest : httpRequest;
    let settled = false;
    const finish = (err: FetchError | undefined, body?: Uint8Array): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      signal?.removeEventListener("abort", onAbort);
      req.destroy();
      if (err) reject(err);
      else resolve(body!);
    };
    const req = send(parsed, {
      method: "POST",
      agent: false,
      headers: {
        "Content-Type": "application/ocsp-request",
        "Content-Length": der.byteLength,
        Accept: "application/ocsp-response",
      },
    });
    const timer = clock.setTimeout(
      () => finish(new FetchError("timeout", `no answer from ${url} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    // Removed in finish(): the signal outlives every query of a manager.
    const onAbort = (): void => finish(new FetchError("network", `query to ${url} aborted`));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (cause) => finish(new FetchError("network", `${url}: ${cause.message}`, { cause })));
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(new FetchError("http", `${url} answered HTTP ${res.statusCode}`));
        return;
      }
      const type = (res.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      if (type !== "application/ocsp-response") {
        res.resume();
        finish(
          new FetchError(
            "http",
            `${url} answered Content-Type ${JSON.stringify(res.headers["content-type"] ?? "")}, not application/ocsp-response`,
          ),
        );
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) finish(new FetchError("http", `${url} sent more than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on("end", () => finish(undefined, new Uint8Array(Buffer.concat(chunks))));
      res.on("error", (cause) => finish(new FetchError("network", `${url}: ${cause.message}`, { cause })));
    });
    req.end(der);
  });
}
