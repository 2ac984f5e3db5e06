/**
 * The stapler against real peers: TLS clients other than OpenSSL (gnutls-cli, Node's TLS
 * client), a responder that misbehaves in every way it can, and real backends behind the TCP
 * and HTTP proxy modes (an echo server, redis-server, an HTTP server). Real sockets on
 * 127.0.0.1 (port 0), real child processes; every wait is on an event or polled with a deadline.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket, type TLSSocketOptions } from "node:tls";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OcspResponder, type ActionInput, type FaultKind, type StartedOcspResponder } from "@ocsp-lab/responder";
import { StaplingServer, type Backend, type FetchError, type PollingPolicyInput, type StapleSnapshot, type StartedStaplingServer } from "@ocsp-lab/stapler";
import { eventually, itWithPeer, run, tempDir } from "../../../test-support/index.js";


let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let rootPem: string;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let stapler: StartedStaplingServer | undefined;
/** Backends, sockets and child processes a test started; stopped in afterEach. */
let servers: Array<NetServer | HttpServer>;
let sockets: Socket[];
let children: ChildProcess[];
/** Promises a test left running on purpose (a query hanging on the responder); settled after the responder stops. */
let pending: Promise<unknown>[];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  rootPem = await readFile(ca.rootFile, "utf8");
  responder = await (await OcspResponder.forCa(ca)).start();
  leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: responder.url });
  servers = [];
  sockets = [];
  children = [];
  pending = [];
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  await stapler?.stop();
  stapler = undefined;
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    }
  }
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          if ("closeAllConnections" in s) s.closeAllConnections();
        }),
    ),
  );
  await responder.stop();
  await Promise.all(pending);
  await cleanup();
});

async function startStapler(policy: PollingPolicyInput, backend: Backend = { kind: "status" }): Promise<StartedStaplingServer> {
  stapler = await new StaplingServer().withCertificateFiles(leaf).withPolicy(policy).withBackend(backend).withAdmin(false).start();
  return stapler;
}

/** Policy under which a good staple, once in, stays for the whole test whatever the responder does. */
const STEADY: PollingPolicyInput = { query_frequency: 3600, response_timeout: 5, recovery_frequency: 60, recovery_max_tries: 5 };

function sClient(port: number) {
  return run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", "-status", "-CAfile", ca.rootFile], { timeoutMs: 20_000 });
}

/** Listen on 127.0.0.1, ephemeral port; the server is closed in afterEach. */
async function listen<S extends NetServer | HttpServer>(server: S): Promise<number> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** A free TCP port on 127.0.0.1 (for peers, such as redis-server, that cannot be told port 0). */
async function freePort(): Promise<number> {
  const probe = createNetServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * A TLS connection to the stapler as a browser-like client would make it: asks for a staple,
 * verifies the chain against the lab root and the name `localhost`. Resolves once the handshake
 * is done, with the staple received (null when none was sent) and the handshake time.
 */
async function connectTls(port: number): Promise<{ socket: TLSSocket; staple: Buffer | null; ms: number }> {
  const t0 = performance.now();
  // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
  const options: ConnectionOptions & TLSSocketOptions = { host: "127.0.0.1", port, servername: "localhost", ca: rootPem, requestOCSP: true };
  const socket = tlsConnect(options);
  sockets.push(socket);
  let staple: Buffer | null = null;
  socket.on("OCSPResponse", (response: Buffer | null) => (staple = response));
  await once(socket, "secureConnect", { signal: AbortSignal.timeout(10_000) });
  const ms = performance.now() - t0;
  return { socket, staple, ms };
}

/** `count` sequential full handshakes; each must get the staple the stapler holds. */
async function handshakeTimes(s: StartedStaplingServer, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const { socket, staple, ms } = await connectTls(s.port);
    socket.destroy();
    expect(staple, `handshake ${i} got no staple`).not.toBeNull();
    expect(staple!.equals(s.manager.current()!)).toBe(true);
    times.push(ms);
  }
  return times;
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
}

/** Reads a socket into a buffer; `until(n)` resolves once `n` bytes in all have arrived. */
class Reader {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      for (const w of [...this.waiters]) {
        if (this.size >= w.n) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  /** All bytes read so far. */
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  async until(n: number, timeoutMs = 10_000): Promise<Buffer> {
    if (this.size < n) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push({ n, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`only ${this.size} of ${n} bytes arrived within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.bytes.subarray(0, n);
  }
}

/** Send one RESP command and read its reply, of known length. */
async function resp(socket: Socket, reader: Reader, args: string[], reply: string): Promise<string> {
  const already = reader.bytes.length;
  socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
  const bytes = await reader.until(already + Buffer.byteLength(reply));
  return bytes.subarray(already).toString("utf8");
}

describe("TLS clients other than OpenSSL", () => {
  // gnutls-cli comes with gnutls-bin; .ci/run installs it, so this only skips on a machine without it.
  itWithPeer("gnutls-cli", "gnutls-bin")("gnutls-cli --ocsp verifies the certificate from the staple alone", async () => {
    const s = await startStapler(STEADY);
    expect(s.status()[0]!.staple).toBe("good");
    // From now on the responder refuses every query: gnutls-cli, which asks the responder itself
    // when it gets no staple, can only succeed with the staple.
    responder.setFault({ kind: "close" });
    // TLS 1.3 (the staple in the Certificate message) and TLS 1.2 (the CertificateStatus message).
    for (const [version, priority] of [
      ["TLS1.3", "NORMAL"],
      ["TLS1.2", "NORMAL:-VERS-TLS1.3"],
    ] as const) {
      const saved = join(dir, `gnutls-staple-${version}.der`);
      const r = await run(
        "gnutls-cli",
        ["-V", "--priority", priority, "--x509cafile", ca.rootFile, "--ocsp", "--save-ocsp", saved, "--port", String(s.port), "localhost"],
        { timeoutMs: 20_000 },
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`- Version: ${version}`);
      expect(r.stdout).toMatch(/- Options: .*OCSP status request,/);
      expect(r.stdout).toContain("- Status: The certificate is trusted.");
      expect(r.stdout).toContain("- Handshake was completed");
      const info = r.stdout.slice(r.stdout.indexOf("OCSP Response Information:"));
      expect(info).toContain("Response Status: Successful");
      expect(info).toContain(`Serial Number: ${leaf.serial}`);
      expect(info).toContain("Certificate Status: good");
      expect(r.stderr).not.toContain("Connecting to OCSP server");
      expect((await readFile(saved)).equals(s.manager.current()!)).toBe(true);
    }
  });

  it("handshake latency does not change while a query hangs on the responder", async () => {
    const s = await startStapler(STEADY);
    expect(s.status()[0]!.staple).toBe("good");
    await handshakeTimes(s, 5); // warm-up: JIT, first allocations
    const healthy = await handshakeTimes(s, 40);

    const since = new Date();
    responder.setFault({ kind: "hang" });
    let settled = false;
    const query = s.queryNow().finally(() => (settled = true));
    pending.push(query);
    // The query reached the responder, which now holds it open.
    const [logged] = await responder.waitForRequests({ since }, 10_000);
    expect(logged!.outcome).toBe("fault:hang");

    const hung = await handshakeTimes(s, 40);
    expect(settled, "the query should still be hanging while the handshakes were measured").toBe(false);
    expect(s.status()[0]!.staple).toBe("good");
    const [h, x] = [p95(healthy), p95(hung)];
    expect(x, `p95 healthy ${h.toFixed(1)} ms, while hanging ${x.toFixed(1)} ms`).toBeLessThan(3 * h + 50);
  });
});

describe("responder faults", () => {
  type Fault = { fault: FaultKind } | { action: ActionInput };
  it.each([
    ["hang", { fault: "hang" }, "timeout"],
    ["reset", { fault: "reset" }, "network"],
    ["close", { fault: "close" }, "network"],
    ["garbage-body", { action: { kind: "garbage-body" } }, "invalid"],
    ["http-500", { fault: "http-500" }, "http"],
    ["bad-signature", { action: { kind: "content", flaw: "bad-signature" } }, "invalid"],
    ["wrong-serial", { action: { kind: "content", flaw: "wrong-serial" } }, "invalid"],
    ["stale", { action: { kind: "content", flaw: "stale" } }, "invalid"],
  ] as Array<[string, Fault, FetchError["kind"]]>)("%s: no crash, no unhandled rejection, nothing stapled", async (_name, how, kind) => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };
    process.on("unhandledRejection", onRejection);
    try {
      if ("fault" in how) responder.setFault({ kind: how.fault });
      else responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [how.action] }] });
      const s = await startStapler({ query_frequency: 3600, response_timeout: 0.5, recovery_frequency: 0.1, recovery_max_tries: 2, startup: "ready-after-timeout" });
      // start() ran the first query; the retries follow every recovery_frequency.
      expect(s.status()[0]!.lastFetch?.ok).toBe(false);
      const failures: Array<{ error: FetchError; snapshot: StapleSnapshot }> = [];
      s.on("fetch:failed", (e) => failures.push(e));
      await eventually(
        () => failures.length,
        (n) => n >= 2,
        10_000,
        "two retries to fail",
      );
      for (const f of failures) {
        expect(f.error.kind, f.error.message).toBe(kind);
        expect(f.snapshot.staple).toBe("none");
      }
      expect(failures[1]!.snapshot.consecutiveFailures).toBeGreaterThanOrEqual(3);
      expect(s.status()[0]!.staple).toBe("none");

      const r = await sClient(s.port);
      expect(r.stdout).toContain("OCSP response: no response sent");
      expect(r.stdout).toContain("Verify return code: 0 (ok)");
      expect(rejections).toEqual([]);
    } finally {
      process.off("unhandledRejection", onRejection);
    }
  });
});

describe("proxy backends", () => {
  it("TCP mode carries bytes both ways to an echo server, behind a stapled handshake", async () => {
    const echo = createNetServer((socket) => {
      sockets.push(socket);
      socket.on("error", () => socket.destroy());
      socket.pipe(socket);
    });
    const port = await listen(echo);
    const s = await startStapler(STEADY, { kind: "tcp", host: "127.0.0.1", port });
    const { socket, staple } = await connectTls(s.port);
    expect(staple).not.toBeNull();
    expect(staple!.equals(s.manager.current()!)).toBe(true);

    const reader = new Reader(socket);
    const sent = randomBytes(100 * 1024);
    socket.write(sent);
    const echoed = await reader.until(sent.length);
    expect(echoed.equals(sent)).toBe(true);
    // And a second exchange on the same connection.
    socket.write("ping\n");
    expect((await reader.until(sent.length + 5)).subarray(sent.length).toString()).toBe("ping\n");
  });

  // A client that half-closes after sending (socat, ncat, `redis-cli < file`) still gets the
  // backend's whole answer: the proxy passes the half-close on instead of closing both sides.
  it("TCP mode returns the backend's whole answer to a client that half-closes after sending", async () => {
    const echo = createNetServer({ allowHalfOpen: true }, (socket) => {
      sockets.push(socket);
      socket.on("error", () => socket.destroy());
      socket.pipe(socket);
    });
    const port = await listen(echo);
    const s = await startStapler(STEADY, { kind: "tcp", host: "127.0.0.1", port });
    const { socket } = await connectTls(s.port);
    const reader = new Reader(socket);
    const sent = randomBytes(1024 * 1024);
    socket.end(sent);
    await once(socket, "close", { signal: AbortSignal.timeout(10_000) });
    expect(reader.bytes.length).toBe(sent.length);
    expect(reader.bytes.equals(sent)).toBe(true);
  });

  // redis-server comes with the redis-server package; .ci/run installs it, so this only skips on a machine without it.
  itWithPeer("redis-server")("TCP mode in front of redis-server: RESP over the stapled TLS connection", async () => {
    const port = await freePort();
    const redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(redis);
    let log = "";
    redis.stdout.setEncoding("utf8").on("data", (d: string) => (log += d));
    redis.stderr.setEncoding("utf8").on("data", (d: string) => (log += d));
    await eventually(
      () => log,
      (l) => l.includes("Ready to accept connections") || redis.exitCode !== null,
      15_000,
      "redis-server to be ready",
    );
    expect(redis.exitCode, log).toBeNull();

    const s = await startStapler(STEADY, { kind: "tcp", host: "127.0.0.1", port });
    const { socket, staple } = await connectTls(s.port);
    expect(staple).not.toBeNull();
    expect(staple!.equals(s.manager.current()!)).toBe(true);
    const reader = new Reader(socket);
    expect(await resp(socket, reader, ["PING"], "+PONG\r\n")).toBe("+PONG\r\n");
    const value = randomBytes(16).toString("hex");
    expect(await resp(socket, reader, ["SET", "stapled", value], "+OK\r\n")).toBe("+OK\r\n");
    const reply = `$${value.length}\r\n${value}\r\n`;
    expect(await resp(socket, reader, ["GET", "stapled"], reply)).toBe(reply);

    // redis-cli's own TLS client (built with TLS on Debian) through the same stapler.
    if (spawnSync("redis-cli", ["--help"], { encoding: "utf8" }).stdout.includes("--tls")) {
      const cli = await run("redis-cli", ["--tls", "--cacert", ca.rootFile, "--sni", "localhost", "-h", "127.0.0.1", "-p", String(s.port), "GET", "stapled"], { timeoutMs: 20_000 });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout.trim()).toBe(value);
    }
  });

  it("HTTP mode: curl --cert-status gets the backend's answer", async () => {
    const seen: Array<{ url: string | undefined; proto: string | string[] | undefined }> = [];
    const backend = createHttpServer((req, res) => {
      seen.push({ url: req.url, proto: req.headers["x-forwarded-proto"] });
      res.writeHead(200, { "Content-Type": "text/plain" }).end("hello from backend");
    });
    const port = await listen(backend);
    const s = await startStapler(STEADY, { kind: "http", url: `http://127.0.0.1:${port}` });
    const r = await run("curl", ["-sS", "--cert-status", "--cacert", ca.rootFile, "--resolve", `localhost:${s.port}:127.0.0.1`, `https://localhost:${s.port}/x`], {
      timeoutMs: 20_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hello from backend");
    expect(seen).toEqual([{ url: "/x", proto: "https" }]);
  });
});
