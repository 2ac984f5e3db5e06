/**
 * Robustness of the responder's HTTP front: 10,000 random and mutated DER requests and
 * truncated/oversized bodies (limit 64 KiB) never crash it and always get a well-formed OCSP or
 * HTTP error; a client that connects and sends nothing does not block others.
 *
 * Inputs come from a seeded PRNG (mulberry32, seed in the test name) so a failure reproduces:
 * every failure message carries the request index, its kind and the hex of its first bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OCSPResponseStatus, OcspResponse, buildOcspRequest, responseStatusName, toPkiCertificate } from "@ocsp-lab/ocsp";
import { MAX_REQUEST_BYTES, OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import { eventually, tempDir } from "../../../test-support/index.js";

const SEED = 0x0c5b_2026;
const TOTAL = 10_000;
const IN_FLIGHT = 32;
/** Deadline of one exchange: it turns a hang into a failure; it is not a latency goal (those live in bench/). */
const REQUEST_TIMEOUT_MS = 30_000;

let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
/** Valid request DERs the mutations start from. */
let validDers: Uint8Array[];

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  process.on("uncaughtException", onUnhandled);
  let dir: string;
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  responder = await (await OcspResponder.forCa(ca)).start();
  leaf = await ca.issueServer({ ocspUrl: responder.url });
  const other = await ca.issueServer({ ocspUrl: responder.url });
  validDers = [];
  for (const cert of [leaf, other]) {
    for (const [hash, nonce] of [
      ["SHA-1", false],
      ["SHA-1", true],
      ["SHA-256", false],
      ["SHA-256", true],
    ] as const) {
      validDers.push(await requestDer(cert, hash, nonce));
    }
  }
});

afterAll(async () => {
  await responder?.stop();
  await cleanup?.();
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
});

async function requestDer(cert: IssuedCertificate, hash: "SHA-1" | "SHA-256" = "SHA-1", nonce = false): Promise<Uint8Array> {
  return (
    await buildOcspRequest({
      certificate: toPkiCertificate(cert.certificate),
      issuer: toPkiCertificate(ca.root.certificate),
      hash,
      nonce,
    })
  ).der;
}

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = "random" | "flip" | "truncate" | "append" | "hugeLength" | "getGarbage" | "getMutated";
const KINDS: readonly Kind[] = ["random", "flip", "truncate", "append", "hugeLength", "getGarbage", "getMutated"];

interface Case {
  index: number;
  kind: Kind;
  method: "GET" | "POST";
  /** POST body. */
  body?: Uint8Array;
  /** Path (GET) including the leading slash. */
  path: string;
  contentType?: string;
}

class Gen {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const word = Math.floor(this.next() * 4294967296);
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }
  flip(der: Uint8Array): Uint8Array {
    const out = Uint8Array.from(der);
    const flips = this.int(1, 8);
    for (let i = 0; i < flips; i++) {
      const at = this.int(0, out.length - 1);
      // Half single-bit flips (subtle), half whole-byte replacements (coarse).
      out[at] = this.int(0, 1) === 0 ? out[at]! ^ (1 << this.int(0, 7)) : this.int(0, 255);
    }
    return out;
  }
  truncate(der: Uint8Array): Uint8Array {
    return der.slice(0, this.int(0, der.length - 1));
  }
  append(der: Uint8Array): Uint8Array {
    const tail = this.bytes(this.int(1, 512));
    const out = new Uint8Array(der.length + tail.length);
    out.set(der);
    out.set(tail, der.length);
    return out;
  }
  /** Any of the mutations of a valid DER. */
  mutate(der: Uint8Array): Uint8Array {
    switch (this.int(0, 2)) {
      case 0:
        return this.flip(der);
      case 1:
        return this.truncate(der);
      default:
        return this.append(der);
    }
  }
  /** DER headers announcing absurd lengths or nesting absurdly deep. */
  hugeLength(valid: Uint8Array): Uint8Array {
    const concat = (...parts: (Uint8Array | number[])[]): Uint8Array => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    };
    const repeat = (unit: number[], times: number): Uint8Array => {
      const out = new Uint8Array(unit.length * times);
      for (let i = 0; i < times; i++) out.set(unit, i * unit.length);
      return out;
    };
    switch (this.int(0, 6)) {
      case 0:
        // SEQUENCE of length 2^32-1, then a little random content.
        return concat([0x30, 0x84, 0xff, 0xff, 0xff, 0xff], this.bytes(this.int(0, 64)));
      case 1:
        // Length-of-length beyond 8 octets (0x89..0xfe) and the reserved 0xff.
        return concat([0x30, this.pick([0x88, 0x89, 0x8f, 0xfe, 0xff])], this.bytes(this.int(0, 32)));
      case 2: {
        // Nested SEQUENCEs each claiming 4 GiB.
        return repeat([0x30, 0x84, 0xff, 0xff, 0xff, 0xff], this.int(2, 2000));
      }
      case 3: {
        // Deeply nested indefinite-length SEQUENCEs (BER, not DER), sometimes closed, sometimes not.
        const depth = this.int(100, 20_000);
        const open = repeat([0x30, 0x80], depth);
        return this.int(0, 1) === 0 ? open : concat(open, repeat([0x00, 0x00], depth));
      }
      case 4: {
        // Deeply nested definite-length SEQUENCEs with correct lengths (long form), around a NULL.
        const depth = this.int(100, 5000);
        const out = new Uint8Array(depth * 5 + 2);
        for (let level = 0; level < depth; level++) {
          const n = out.length - (level + 1) * 5; // bytes inside this level's header
          out.set([0x30, 0x83, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff], level * 5);
        }
        out.set([0x05, 0x00], depth * 5);
        return out;
      }
      case 5: {
        // A valid request whose outer length says much more than what follows.
        const body = valid.slice(2 + (valid[1]! & 0x80 ? valid[1]! & 0x7f : 0));
        return concat([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff], body);
      }
      default: {
        // Huge length on an inner element: an OCTET STRING / INTEGER / OID claiming gigabytes.
        const tag = this.pick([0x04, 0x02, 0x06, 0x03, 0xa0, 0xa2, 0x1f]);
        return concat([0x30, 0x0a, 0x30, 0x08, tag, 0x84, 0xff, 0xff, 0xff, 0xfe], this.bytes(this.int(0, 16)));
      }
    }
  }
  /** URL-safe garbage for a GET path, with an occasional raw or broken percent escape. */
  garbagePath(): string {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+=";
    const n = this.int(0, 600);
    let s = "";
    for (let i = 0; i < n; i++) {
      const r = this.int(0, 99);
      if (r < 3) s += `%${this.pick(["", "z", "zz", "0", "ff", "C0", "00", "2F", "3D"])}`;
      else if (r < 5) s += "/";
      else s += alphabet[this.int(0, alphabet.length - 1)];
    }
    return `/${s}`;
  }
  /** A GET path carrying base64 of a mutated valid DER, in one of the encodings clients use. */
  mutatedGetPath(valid: Uint8Array): string {
    const b64 = Buffer.from(this.mutate(valid)).toString("base64");
    switch (this.int(0, 3)) {
      case 0:
        return `/${encodeURIComponent(b64)}`;
      case 1:
        return `/${Buffer.from(this.mutate(valid)).toString("base64url")}`;
      case 2:
        return `//${b64}`; // raw: unescaped "/" and "+", doubled leading slash
      default:
        return `/${encodeURIComponent(b64.slice(0, this.int(0, b64.length)))}`; // cut base64
    }
  }

  case(index: number): Case {
    const kind = this.pick(KINDS);
    const valid = this.pick(validDers);
    const contentType = this.pick(["application/ocsp-request", "application/octet-stream", "text/plain", undefined]);
    const post = (body: Uint8Array): Case => ({
      index,
      kind,
      method: "POST",
      path: this.pick(["/", "/ocsp", "//"]),
      body,
      contentType,
    });
    switch (kind) {
      case "random":
        return post(this.bytes(this.int(0, 2048)));
      case "flip":
        return post(this.flip(valid));
      case "truncate":
        return post(this.truncate(valid));
      case "append":
        return post(this.append(valid));
      case "hugeLength":
        return post(this.hugeLength(valid));
      case "getGarbage":
        return { index, kind, method: "GET", path: this.garbagePath() };
      case "getMutated":
        return { index, kind, method: "GET", path: this.mutatedGetPath(valid) };
    }
  }
}

/** What a well-formed answer was: the OCSP responseStatus name, or `http-<code>`. */
type Outcome = string;

function describeCase(c: Case): string {
  const what =
    c.method === "POST"
      ? `POST ${c.path} body(${c.body!.length})=${Buffer.from(c.body!.subarray(0, 48)).toString("hex")}`
      : `GET ${c.path.slice(0, 120)}`;
  return `#${c.index} ${c.kind} ${what}`;
}

/** An HTTP answer as received. */
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Check one answer; returns its outcome or throws with why it is not well-formed. */
function judge(res: Answer): Outcome {
  if (res.status === 200) {
    const type = res.headers["content-type"];
    if (type !== "application/ocsp-response") throw new Error(`200 with content-type ${type}`);
    let decoded: OcspResponse;
    try {
      decoded = OcspResponse.fromDer(new Uint8Array(res.body));
    } catch (err) {
      throw new Error(
        `200 with an undecodable OCSP body (${res.body.length} bytes ${res.body.subarray(0, 32).toString("hex")}): ${String(err)}`,
      );
    }
    return responseStatusName(decoded.responseStatus);
  }
  if (res.status >= 400 && res.status <= 599) {
    if (res.body.length === 0) throw new Error(`HTTP ${res.status} without a body`);
    return `http-${res.status}`;
  }
  throw new Error(`unexpected HTTP status ${res.status}`);
}

/**
 * One HTTP exchange with node:http: on a fresh connection unless `agent` is given, body chunks
 * written as given (with backpressure), the whole exchange bounded by `timeoutMs` (a hang fails).
 */
function exchange(options: {
  method: string;
  path?: string;
  headers?: Record<string, string | number>;
  chunks?: Uint8Array[];
  agent?: Agent;
  timeoutMs?: number;
}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const req = httpRequest(
      {
        host: responder.host,
        port: responder.port,
        method: options.method,
        path: options.path ?? "/",
        headers: options.headers ?? {},
        agent: options.agent ?? false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (d: Buffer) => parts.push(d));
        res.on("end", () => {
          clearTimeout(deadline);
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) });
          // A body the server stopped reading may still be half-written: that connection is done.
          if (!req.writableEnded) req.destroy();
        });
        res.on("error", reject);
      },
    );
    const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    req.on("error", (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    // The server may answer (and stop reading) before the whole body is written: stop writing then.
    const chunks = [...(options.chunks ?? [])];
    let answered = false;
    req.on("response", () => (answered = true));
    const pump = (): void => {
      while (!answered && !req.destroyed) {
        const chunk = chunks.shift();
        if (!chunk) {
          req.end();
          return;
        }
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

function send(c: Case, agent: Agent): Promise<Answer> {
  if (c.method === "GET") return exchange({ method: "GET", path: c.path, agent });
  const headers: Record<string, string | number> = { "Content-Length": c.body!.length };
  if (c.contentType) headers["Content-Type"] = c.contentType;
  return exchange({ method: "POST", path: c.path, headers, chunks: [c.body!], agent });
}

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return [0x80 | bytes.length, ...bytes];
}

function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag, ...derLength(body.length)]), body]);
}

/** Content of the DER element starting at `at`, and where it ends. */
function readTlv(der: Uint8Array, at: number): { content: Uint8Array; end: number } {
  let len = der[at + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[at + 2 + i]!;
    header += n;
  }
  return { content: der.subarray(at + header, at + header + len), end: at + header + len };
}

/**
 * A valid OCSPRequest (without extensions) grown to exactly `total` bytes by a private,
 * non-critical requestExtension (1.3.6.1.4.1.99999.1) that a responder must ignore.
 */
function padRequest(request: Uint8Array, total: number): Uint8Array {
  const outer = readTlv(request, 0);
  const tbs = readTlv(outer.content, 0);
  const rest = outer.content.subarray(tbs.end);
  const oid = Uint8Array.from([0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01]);
  const build = (valueLength: number): Uint8Array =>
    tlv(0x30, tlv(0x30, tbs.content, tlv(0xa2, tlv(0x30, tlv(0x30, oid, tlv(0x04, new Uint8Array(valueLength)))))), rest);
  // Length-of-length steps make a few totals unreachable; search from the top.
  for (let value = total; value >= 0; value--) {
    const der = build(value);
    if (der.length === total) return der;
  }
  throw new Error(`cannot pad a request to ${total} bytes`);
}

/** Assert a well-formed successful answer with one `good` SingleResponse. */
function expectGood(res: { status: number; contentType: string | null | undefined; body: Uint8Array }): void {
  expect(res.status).toBe(200);
  expect(res.contentType).toBe("application/ocsp-response");
  const decoded = OcspResponse.fromDer(res.body);
  expect(responseStatusName(decoded.responseStatus)).toBe("successful");
  expect(decoded.responses.map((r) => r.status)).toEqual(["good"]);
}

/** An oversized answer must be an OCSP malformedRequest (or HTTP 413), never a reset. */
function expectRefusedAsTooLarge(res: { status: number; headers: IncomingHttpHeaders; body: Buffer }): void {
  if (res.status === 413) {
    expect(res.body.length).toBeGreaterThan(0);
    return;
  }
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toBe("application/ocsp-response");
  expect(OcspResponse.fromDer(new Uint8Array(res.body)).responseStatus).toBe(OCSPResponseStatus.malformedRequest);
}

describe("responder robustness", () => {
  it(`answers ${TOTAL} random and mutated requests with well-formed OCSP or HTTP errors (mulberry32 seed 0x${SEED.toString(16)})`, async () => {
    const gen = new Gen(SEED);
    const cases = Array.from({ length: TOTAL }, (_, i) => gen.case(i));
    const counts: Record<string, Record<Outcome, number>> = {};
    const failures: string[] = [];
    const started = new Date();
    const t0 = performance.now();
    // Keep-alive connections, at most IN_FLIGHT of them; count how many were opened.
    const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    let connections = 0;
    const createConnection = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<Agent["createConnection"]>) => {
      connections++;
      return createConnection(...args);
    };

    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < cases.length) {
        const c = cases[nextIndex++]!;
        let outcome: Outcome;
        try {
          outcome = judge(await send(c, agent));
        } catch (err) {
          const cause = err instanceof Error && err.cause ? ` (cause: ${String(err.cause)})` : "";
          failures.push(`${describeCase(c)}: ${String(err)}${cause}`);
          outcome = "FAILED";
        }
        const byKind = (counts[c.kind] ??= {});
        byKind[outcome] = (byKind[outcome] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const elapsedMs = Math.round(performance.now() - t0);
    agent.destroy();

    console.log(
      `robustness: ${TOTAL} requests in ${elapsedMs} ms over ${connections} connections (seed 0x${SEED.toString(16)}), outcomes by kind:\n${JSON.stringify(counts, null, 2)}`,
    );
    expect(failures.slice(0, 20), `${failures.length} of ${TOTAL} answers were not well-formed`).toEqual([]);
    // Every request reached the OCSP handler and was logged (the log keeps its last 10,000 entries).
    await eventually(
      () => responder.requests({ since: started }).length,
      (n) => n >= Math.min(TOTAL, 10_000),
      5_000,
      "every fuzz request to be logged",
    );

    // Still alive and still right.
    const res = await fetch(responder.url, {
      method: "POST",
      body: Buffer.from(await requestDer(leaf)),
      headers: { "Content-Type": "application/ocsp-request" },
    });
    expectGood({
      status: res.status,
      contentType: res.headers.get("content-type"),
      body: new Uint8Array(await res.arrayBuffer()),
    });
  });

  it("answers bodies over 64 KiB (65 KiB, 10 MiB, chunked) with malformedRequest or 413, and keeps serving", async () => {
    expect(MAX_REQUEST_BYTES).toBe(64 * 1024);
    const valid = await requestDer(leaf);
    // 65 KiB: a valid request followed by padding, so only the size makes it wrong.
    const body65k = new Uint8Array(65 * 1024);
    body65k.set(valid);
    const headers = { "Content-Type": "application/ocsp-request" };

    const r65 = await exchange({ method: "POST", headers: { ...headers, "Content-Length": body65k.length }, chunks: [body65k] });
    expectRefusedAsTooLarge(r65);

    const tenMiB = 10 * 1024 * 1024;
    const slice = new Uint8Array(256 * 1024).fill(0x41);
    const r10m = await exchange({
      method: "POST",
      headers: { ...headers, "Content-Length": tenMiB },
      chunks: Array.from({ length: tenMiB / slice.length }, () => slice),
    });
    expectRefusedAsTooLarge(r10m);

    // Chunked transfer coding, no Content-Length: 16 KiB chunks up to 80 KiB.
    const chunk = new Uint8Array(16 * 1024).fill(0x30);
    const rChunked = await exchange({
      method: "POST",
      headers: { ...headers, "Transfer-Encoding": "chunked" },
      chunks: Array.from({ length: 5 }, () => chunk),
    });
    expectRefusedAsTooLarge(rChunked);

    // Same through fetch (undici): a 65 KiB and a 10 MiB buffer body.
    for (const size of [65 * 1024, tenMiB]) {
      const res = await fetch(responder.url, {
        method: "POST",
        body: Buffer.alloc(size, 0x30),
        headers,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      expectRefusedAsTooLarge({
        status: res.status,
        headers: { "content-type": res.headers.get("content-type") ?? undefined },
        body: Buffer.from(await res.arrayBuffer()),
      });
    }

    // The boundary: a valid request padded (unknown non-critical extension) to exactly 64 KiB is
    // answered; one byte more is refused. Both with Content-Length and chunked.
    const atLimit = padRequest(valid, MAX_REQUEST_BYTES);
    const overLimit = padRequest(valid, MAX_REQUEST_BYTES + 1);
    expect([atLimit.length, overLimit.length]).toEqual([MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1]);
    for (const chunked of [false, true]) {
      const framing: Record<string, string | number> = chunked
        ? { "Transfer-Encoding": "chunked" }
        : { "Content-Length": atLimit.length };
      const rAt = await exchange({
        method: "POST",
        headers: { ...headers, ...framing },
        chunks: [atLimit.subarray(0, 1000), atLimit.subarray(1000)],
      });
      expectGood({ status: rAt.status, contentType: rAt.headers["content-type"], body: new Uint8Array(rAt.body) });
      const overFraming: Record<string, string | number> = chunked ? framing : { "Content-Length": overLimit.length };
      const rOver = await exchange({
        method: "POST",
        headers: { ...headers, ...overFraming },
        chunks: [overLimit.subarray(0, 1000), overLimit.subarray(1000)],
      });
      expectRefusedAsTooLarge(rOver);
    }

    const after = await exchange({ method: "POST", headers: { ...headers, "Content-Length": valid.length }, chunks: [valid] });
    expectGood({ status: after.status, contentType: after.headers["content-type"], body: new Uint8Array(after.body) });
  });

  it("keeps answering others while clients hold idle or half-sent connections", async () => {
    const open = (): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const s = connect(responder.port, responder.host, () => resolve(s));
        s.on("error", reject);
      });
    const idle = await open(); // connects, sends nothing
    const halfHeader = await open();
    halfHeader.write("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocs");
    const halfBody = await open(); // full headers, 10 of 500 announced body bytes
    halfBody.write(
      "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 500\r\n\r\n0123456789",
    );
    const sockets = [idle, halfHeader, halfBody];
    const closedEarly: string[] = [];
    for (const [i, s] of sockets.entries()) s.on("close", () => closedEarly.push(String(i)));
    try {
      const valid = await requestDer(leaf);
      // Answered while the stalled clients are still connected: a responder they blocked would
      // answer none of these until the sockets went away (the exchange deadline catches that hang).
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          exchange({
            method: "POST",
            headers: { "Content-Type": "application/ocsp-request", "Content-Length": valid.length },
            chunks: [valid],
          }),
        ),
      );
      for (const a of answers)
        expectGood({ status: a.status, contentType: a.headers["content-type"], body: new Uint8Array(a.body) });
      // The stalled clients were neither answered nor dropped in the meantime (nothing forced them out).
      expect(closedEarly).toEqual([]);
    } finally {
      for (const s of sockets) s.destroy();
    }
    // And once they go away the responder still serves.
    const res = await fetch(responder.url, {
      method: "POST",
      body: Buffer.from(await requestDer(leaf)),
      headers: { "Content-Type": "application/ocsp-request" },
    });
    expectGood({
      status: res.status,
      contentType: res.headers.get("content-type"),
      body: new Uint8Array(await res.arrayBuffer()),
    });
  });

  it("saw no unhandled rejection or uncaught exception", () => {
    expect(unhandled.map(String)).toEqual([]);
  });
});
