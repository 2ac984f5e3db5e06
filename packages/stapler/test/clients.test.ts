/**
 * The stapler against real peers: TLS clients other than OpenSSL (gnutls-cli, Node's TLS
 * client), a responder that misbehaves in every way it can, and real backends behind the TCP
 * and HTTP proxy modes (an echo server, redis-server, an HTTP server). Real sockets on
 * 127.0.0.1 (port 0), real child processes; every wait is on an event or polled with a deadline.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket, type TLSSocketOptions } from "node:tls";
import type { CertificateAuthority, IssuedCertificate } from "@ocsp-lab/ca";
import type { ActionInput, FaultKind, StartedOcspResponder } from "@ocsp-lab/responder";
import { systemClock, type Clock } from "@ocsp-lab/ocsp";
import {
  StaplingServer,
  type Backend,
  type FetchError,
  type PollingPolicyInput,
  type StapleSnapshot,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import {
  POLICIES,
  eventually,
  freePort,
  itWithPeer,
  run,
  sClient,
  startTestLab,
  type TestLab,
} from "../../../test-support/index.js";
import { labClock, nextEvent, timerDueAt } from "./manual-time.js";

let lab: TestLab;
let dir: string;
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
  // The CA and the responder on the system clock; a test that needs a ManualClock gives it to its stapler.
  lab = await startTestLab();
  ({ dir, ca, responder, leaf } = lab);
  rootPem = await readFile(ca.rootFile, "utf8");
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
  await lab.stop();
});

/** A stapler for the leaf; on the system clock unless the test brings a ManualClock. */
async function startStapler(
  policy: PollingPolicyInput,
  backend: Backend = { kind: "status" },
  clock: Clock = systemClock,
): Promise<StartedStaplingServer> {
  stapler = await new StaplingServer()
    .withCertificateFiles(leaf)
    .withPolicy(policy)
    .withBackend(backend)
    .withClock(clock)
    .withAdmin(false)
    .start();
  return stapler;
}

/** A good staple, once in, stays for the whole test whatever the responder does. */
const { STEADY } = POLICIES;

/** Listen on 127.0.0.1, ephemeral port; the server is closed in afterEach. */
async function listen<S extends NetServer | HttpServer>(server: S): Promise<number> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/**
 * A TLS connection to the stapler as a browser-like client would make it: asks for a staple,
 * verifies the chain against the lab root and the name `localhost`. Resolves once the handshake
 * is done, with the staple received (null when none was sent).
 */
async function connectTls(port: number): Promise<{ socket: TLSSocket; staple: Buffer | null }> {
  // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
  const options: ConnectionOptions & TLSSocketOptions = {
    host: "127.0.0.1",
    port,
    servername: "localhost",
    ca: rootPem,
    requestOCSP: true,
  };
  const socket = tlsConnect(options);
  sockets.push(socket);
  let staple: Buffer | null = null;
  socket.on("OCSPResponse", (response: Buffer | null) => (staple = response));
  await once(socket, "secureConnect", { signal: AbortSignal.timeout(10_000) });
  return { socket, staple };
}

/**
 * `count` sequential full handshakes, each completed; each must get `expected` (the staple the
 * stapler holds), or no staple at all when `expected` is undefined.
 */
async function handshakes(s: StartedStaplingServer, count: number, expected: Buffer | undefined): Promise<void> {
  for (let i = 0; i < count; i++) {
    const { socket, staple } = await connectTls(s.port);
    socket.destroy();
    if (expected === undefined) expect(staple?.length ?? 0, `handshake ${i} got a staple`).toBe(0);
    else {
      expect(staple, `handshake ${i} got no staple`).not.toBeNull();
      expect(staple!.equals(expected)).toBe(true);
    }
  }
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
          timer = setTimeout(
            () => reject(new Error(`only ${this.size} of ${n} bytes arrived within ${timeoutMs} ms`)),
            timeoutMs,
          );
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
        [
          "-V",
          "--priority",
          priority,
          "--x509cafile",
          ca.rootFile,
          "--ocsp",
          "--save-ocsp",
          saved,
          "--port",
          String(s.port),
          "localhost",
        ],
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

  // What a hung responder costs a handshake in time is measured in bench/; here, that no
  // handshake waits on it. On a ManualClock the hung query's response_timeout never comes until
  // the test advances the clock, so the query stays in flight while every handshake completes.
  it("a handshake never waits on a query hung on the responder: each completes with the staple held", async () => {
    const clock = labClock();
    const s = await startStapler(STEADY, { kind: "status" }, clock);
    expect(s.status()[0]!.staple).toBe("good");
    const held = s.manager.current()!;
    responder.setFault({ kind: "hang" });
    let settled = false;
    const query = s.queryNow().finally(() => (settled = true));
    pending.push(query);
    // The query reached the responder, which now holds it open.
    const logged = await responder.waitForRequests({ count: 2 }, 10_000);
    expect(logged[1]!.outcome).toBe("fault:hang");
    // Its response_timeout is a timer on the stapler's clock, which the test holds still.
    await timerDueAt(clock, clock.now().getTime() + 5000, "the query's response_timeout timer");

    await handshakes(s, 40, held);
    expect(settled, "the query is still in flight after the handshakes").toBe(false);
    // At response_timeout the query fails; one failure of recovery_max_tries 5 keeps the staple.
    await clock.advance(5000);
    expect(await query).toEqual([{ serial: leaf.serial, stapled: false }]);
    expect(s.status()[0]).toMatchObject({ staple: "good", consecutiveFailures: 1 });
    expect(s.status()[0]!.lastFetch?.error).toMatch(/no answer .* within 5000 ms/);
    await handshakes(s, 5, held);
  });

  it("with no staple yet, a handshake does not wait on a hung query either: each completes without one", async () => {
    const clock = labClock();
    responder.setFault({ kind: "hang" });
    const starting = startStapler({ ...STEADY, startup: "ready-after-timeout" }, { kind: "status" }, clock);
    // The start-up query hangs; at response_timeout the stapler is ready without a staple.
    await responder.waitForRequests({ count: 1 }, 10_000);
    await clock.advance(5000);
    const s = await starting;
    expect(s.status()[0]!.staple).toBe("none");
    let settled = false;
    const query = s.queryNow().finally(() => (settled = true));
    pending.push(query);
    await responder.waitForRequests({ count: 2 }, 10_000);
    await timerDueAt(clock, clock.now().getTime() + 5000, "the query's response_timeout timer");

    await handshakes(s, 20, undefined);
    expect(settled, "the query is still in flight after the handshakes").toBe(false);
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
  ] as Array<[string, Fault, FetchError["kind"]]>)(
    "%s: no crash, no unhandled rejection, nothing stapled",
    async (_name, how, kind) => {
      const rejections: unknown[] = [];
      const onRejection = (reason: unknown): void => {
        rejections.push(reason);
      };
      process.on("unhandledRejection", onRejection);
      try {
        if ("fault" in how) responder.setFault({ kind: how.fault });
        else responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [how.action] }] });
        const clock = labClock();
        const hung = kind === "timeout";
        const starting = startStapler(
          {
            query_frequency: 3600,
            response_timeout: 0.5,
            recovery_frequency: 0.1,
            recovery_max_tries: 2,
            startup: "ready-after-timeout",
          },
          { kind: "status" },
          clock,
        );
        // A hung query ends at response_timeout, once the query is at the responder (logged on arrival).
        const timeOut = async (queries: number): Promise<void> => {
          if (!hung) return;
          await responder.waitForRequests({ count: queries }, 10_000);
          await clock.advance(500);
        };
        await timeOut(1);
        const s = await starting;
        // start() ran the first query; the retries follow every recovery_frequency.
        expect(s.status()[0]!.lastFetch?.ok).toBe(false);
        const failures: Array<{ error: FetchError; snapshot: StapleSnapshot }> = [];
        s.on("fetch:failed", (e) => failures.push(e));
        for (let retry = 1; retry <= 2; retry++) {
          const failed = nextEvent(s, "fetch:failed");
          await clock.advance(100);
          await timeOut(1 + retry);
          await failed;
        }
        expect(failures).toHaveLength(2);
        for (const f of failures) {
          expect(f.error.kind, f.error.message).toBe(kind);
          expect(f.snapshot.staple).toBe("none");
        }
        expect(failures[1]!.snapshot.consecutiveFailures).toBe(3);
        expect(s.status()[0]!.staple).toBe("none");

        const r = await sClient({ port: s.port, caFile: ca.rootFile });
        expect(r.stdout).toContain("OCSP response: no response sent");
        expect(r.stdout).toContain("Verify return code: 0 (ok)");
        expect(rejections).toEqual([]);
      } finally {
        process.off("unhandledRejection", onRejection);
      }
    },
  );
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
    const redis = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
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

    // redis-cli's own TLS client (Debian builds it with TLS) through the same stapler.
    const cli = await run(
      "redis-cli",
      ["--tls", "--cacert", ca.rootFile, "--sni", "localhost", "-h", "127.0.0.1", "-p", String(s.port), "GET", "stapled"],
      { timeoutMs: 20_000 },
    );
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout.trim()).toBe(value);
  });

  it("HTTP mode: curl --cert-status gets the backend's answer", async () => {
    const seen: Array<{ url: string | undefined; proto: string | string[] | undefined }> = [];
    const backend = createHttpServer((req, res) => {
      seen.push({ url: req.url, proto: req.headers["x-forwarded-proto"] });
      res.writeHead(200, { "Content-Type": "text/plain" }).end("hello from backend");
    });
    const port = await listen(backend);
    const s = await startStapler(STEADY, { kind: "http", url: `http://127.0.0.1:${port}` });
    const r = await run(
      "curl",
      [
        "-sS",
        "--cert-status",
        "--cacert",
        ca.rootFile,
        "--resolve",
        `localhost:${s.port}:127.0.0.1`,
        `https://localhost:${s.port}/x`,
      ],
      {
        timeoutMs: 20_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hello from backend");
    expect(seen).toEqual([{ url: "/x", proto: "https" }]);
  });
});
