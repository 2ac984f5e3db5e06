/**
 * The staple sources for testing clients (`as-received`, `bytes`, `file`, `none`) with a real
 * Node TLS client asking for a staple: what it receives is compared byte for byte with what
 * the responder sent (recorded by a plain HTTP relay between the stapler and the responder) or
 * with the bytes given. Real sockets on 127.0.0.1 (port 0), real files; waits are on events.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from "node:http";
import { get as httpsGet } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket, type TLSSocketOptions } from "node:tls";
import { pino } from "pino";
import type { CertificateAuthority, IssuedCertificate } from "@ocsp-lab/ca";
import { unsuccessfulResponse } from "@ocsp-lab/ocsp";
import type { ActionInput, FaultKind, StartedOcspResponder } from "@ocsp-lab/responder";
import {
  CertificateSetupError,
  InvalidStapleSourceError,
  StaplingServer,
  staplerMain,
  type StaplerCliIo,
  type StapleSourceInput,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import { POLICIES, startTestLab, type TestLab } from "../../../test-support/index.js";
import { PassThrough } from "node:stream";
import { advanceFor, labClock, nextEvent } from "./manual-time.js";

let lab: TestLab;
let dir: string;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let rootPem: string;
let relay: { url: string; bodies: Buffer[]; server: HttpServer } | undefined;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  lab = await startTestLab({ leaf: { dnsNames: ["localhost"] } });
  ({ dir, ca, responder, leaf } = lab);
  rootPem = await fs.readFile(ca.rootFile, "utf8");
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  if (relay) {
    const r = relay.server;
    await new Promise<void>((resolve) => {
      r.close(() => resolve());
      r.closeAllConnections();
    });
    relay = undefined;
  }
  await lab.stop();
});

/**
 * An HTTP relay to the responder that records every response body it passes on, so a test
 * knows the exact bytes the responder sent.
 */
async function startRelay(): Promise<{ url: string; bodies: Buffer[]; server: HttpServer }> {
  const bodies: Buffer[] = [];
  const target = new URL(responder.url);
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const got: Buffer[] = [];
          answer.on("data", (c: Buffer) => got.push(c));
          answer.on("end", () => {
            const body = Buffer.concat(got);
            bodies.push(body);
            res.writeHead(answer.statusCode ?? 502, { "Content-Type": answer.headers["content-type"] ?? "" }).end(body);
          });
        },
      );
      up.on("error", () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  relay = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, server };
  return relay;
}

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A stapler for the leaf with `source`, logging into `lines`; via the relay when one is started. */
async function startStapler(
  source: StapleSourceInput,
  more: (b: StaplingServer) => StaplingServer = (b) => b,
): Promise<{ s: StartedStaplingServer; lines: Line[] }> {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split("\n")) if (text) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  let b = new StaplingServer()
    .withCertificateFiles(leaf)
    .withPolicy({ ...POLICIES.STEADY, startup: "ready-after-timeout" })
    .withStapleSource(source)
    .withWatch(0)
    .withLogger(pino({ level: "debug" }, stream));
  if (relay) b = b.withResponderUrl(relay.url);
  const s = await more(b).start();
  cleanups.push(() => s.stop());
  return { s, lines };
}

/** One TLS handshake asking for a staple (requestOCSP); resolves with the staple received, null when none. */
async function stapleSeen(port: number): Promise<Buffer | null> {
  // tls.connect passes requestOCSP through to TLSSocket; @types/node only declares it there.
  const options: ConnectionOptions & TLSSocketOptions = {
    host: "127.0.0.1",
    port,
    servername: "localhost",
    ca: rootPem,
    requestOCSP: true,
  };
  const socket: TLSSocket = tlsConnect(options);
  let staple: Buffer | null = null;
  socket.on("OCSPResponse", (response: Buffer | null) => (staple = response));
  try {
    await once(socket, "secureConnect", { signal: AbortSignal.timeout(10_000) });
  } finally {
    socket.destroy();
  }
  return staple;
}

async function metricsText(s: StartedStaplingServer): Promise<string> {
  return s.metrics.registry.metrics();
}

const WARNING = "stapling unverified responses: for testing clients only";

describe("staple source as-received", () => {
  type Flaw = { fault: FaultKind } | { action: ActionInput };
  it.each([
    ["bad-signature", { action: { kind: "content", flaw: "bad-signature" } }, "good", /bad signature/],
    ["stale", { action: { kind: "content", flaw: "stale" } }, "good", /stale/],
    ["wrong-serial", { action: { kind: "content", flaw: "wrong-serial" } }, "good", /wrong certificate/],
    ["tryLater", { fault: "tryLater" }, "tryLater", /not successful.*tryLater/],
  ] as Array<[string, Flaw, string, RegExp]>)(
    "%s: the client receives exactly the bytes the responder sent",
    async (_name, how, state, reason) => {
      if ("fault" in how) responder.setFault({ kind: how.fault });
      else responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [how.action] }] });
      const r = await startRelay();
      const { s, lines } = await startStapler("as-received");
      expect(r.bodies).toHaveLength(1);
      const sent = r.bodies[0]!;
      expect(sent.length).toBeGreaterThan(0);
      const staple = await stapleSeen(s.port);
      expect(staple, "no staple sent").not.toBeNull();
      expect(staple!.equals(sent)).toBe(true);
      expect(s.status()[0]).toMatchObject({ staple: state, stapleSource: "as-received", source: "fetched" });
      expect(s.status()[0]!.verifyError).toMatch(reason);
      expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: WARNING, stapleSource: "as-received" }));
      const metrics = await metricsText(s);
      expect(metrics).toContain(`ocsp_staple_source{serial="${leaf.serial}",source="as-received"} 1`);
      expect(metrics).toContain(`ocsp_staple_source{serial="${leaf.serial}",source="verified"} 0`);
    },
  );

  it("a response that verifies is stapled as received too, with no verifyError; the admin endpoint names the source", async () => {
    const r = await startRelay();
    const { s } = await startStapler("as-received", (b) => b.withAdmin({}));
    const staple = await stapleSeen(s.port);
    expect(staple!.equals(r.bodies[0]!)).toBe(true);
    const snap = s.status()[0]!;
    expect(snap).toMatchObject({ staple: "good", stapleSource: "as-received" });
    expect(snap.verifyError).toBeUndefined();
    const admin = (await (await fetch(`${s.adminUrl}/admin/ocsp`)).json()) as {
      certificates: Array<{ stapleSource: string }>;
    };
    expect(admin.certificates[0]!.stapleSource).toBe("as-received");
    const page = await (await fetch(`${s.adminUrl}/metrics`)).text();
    expect(page).toContain(`ocsp_staple_source{serial="${leaf.serial}",source="as-received"} 1`);
  });

  it("follows the polling policy: the next query_frequency brings the responder's next answer, as received", async () => {
    const clock = labClock();
    const r = await startRelay();
    const { s } = await startStapler("as-received", (b) => b.withClock(clock));
    expect((await stapleSeen(s.port))!.equals(r.bodies[0]!)).toBe(true);
    expect(s.status()[0]!.nextFetch!.getTime() - clock.now().getTime()).toBe(3600_000);
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "content", flaw: "wrong-serial" }] }] });
    const updated = await advanceFor<{ verifyError?: string }>(clock, 3600_000, s, "staple:updated");
    expect(updated.verifyError).toMatch(/wrong certificate/);
    expect(r.bodies).toHaveLength(2);
    expect((await stapleSeen(s.port))!.equals(r.bodies[1]!)).toBe(true);
  });

  it("the status page says the source is not verified", async () => {
    const { s } = await startStapler("as-received");
    const page = await new Promise<string>((resolve, reject) => {
      httpsGet(`${s.url}/`, { ca: rootPem, servername: "localhost" }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve(text));
      }).on("error", reject);
    });
    expect(page).toContain(`serial ${leaf.serial} staple good (source as-received, unverified)`);
  });

  it("a garbage body is stapled as received, reported unreadable", async () => {
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "garbage-body" }] }] });
    const r = await startRelay();
    const { s } = await startStapler("as-received");
    expect((await stapleSeen(s.port))!.equals(r.bodies[0]!)).toBe(true);
    expect(s.status()[0]!.staple).toBe("unreadable");
  });
});

describe("staple source verified (the default)", () => {
  it("refuses the flawed response, says verified, logs no warning", async () => {
    responder.setBehaviour({ kind: "global" }, { steps: [{ actions: [{ kind: "content", flaw: "bad-signature" }] }] });
    const { s, lines } = await startStapler("verified");
    expect(await stapleSeen(s.port)).toBeNull();
    expect(s.status()[0]).toMatchObject({ staple: "none", stapleSource: "verified" });
    expect(lines.map((l) => l.msg)).not.toContain(WARNING);
    expect(await metricsText(s)).toContain(`ocsp_staple_source{serial="${leaf.serial}",source="verified"} 1`);
  });
});

describe("staple sources bytes, file and none", () => {
  it("bytes: the client receives exactly those bytes, and the responder is never asked", async () => {
    const der = Buffer.from(unsuccessfulResponse("tryLater"));
    const { s, lines } = await startStapler({ kind: "bytes", der });
    expect((await stapleSeen(s.port))!.equals(der)).toBe(true);
    const garbage = Buffer.from("not an OCSP response at all");
    const { s: g } = await startStapler({ kind: "bytes", der: garbage });
    expect((await stapleSeen(g.port))!.equals(garbage)).toBe(true);
    expect(s.status()[0]).toMatchObject({ staple: "tryLater", stapleSource: "bytes", source: "configured" });
    expect(g.status()[0]!.staple).toBe("unreadable");
    expect(await s.queryNow()).toEqual([{ serial: leaf.serial, stapled: true }]);
    expect(responder.requests()).toHaveLength(0);
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: WARNING }));
  });

  it("bytes per certificate: beside a verified certificate, each gets its own staple", async () => {
    const other = await lab.issue({ dnsNames: ["other.test"] });
    const der = Buffer.from(unsuccessfulResponse("internalError"));
    const { s } = await startStapler("verified", (b) =>
      b.withCertificateFiles({ ...other, stapleSource: { kind: "bytes", der } }),
    );
    expect(s.status().map((x) => [x.serial, x.stapleSource, x.staple])).toEqual([
      [leaf.serial, "verified", "good"],
      [other.serial, "bytes", "internalError"],
    ]);
    expect((await stapleSeen(s.port))!.length).toBeGreaterThan(5);
  });

  it("file: the client receives the file's bytes, and the new bytes after a reload or a change of the file", async () => {
    const file = join(dir, "staple.der");
    const first = Buffer.from(unsuccessfulResponse("tryLater"));
    await fs.writeFile(file, first);
    const { s } = await startStapler({ kind: "file", path: file }, (b) => b.withWatch(20));
    expect((await stapleSeen(s.port))!.equals(first)).toBe(true);
    expect(s.status()[0]).toMatchObject({ stapleSource: "file", stapleFile: file, staple: "tryLater" });

    const second = Buffer.from(unsuccessfulResponse("sigRequired"));
    await fs.writeFile(join(dir, "next.der"), second);
    const reloaded = nextEvent(s, "reload");
    await fs.rename(join(dir, "next.der"), file);
    await reloaded;
    expect((await stapleSeen(s.port))!.equals(second)).toBe(true);
    expect(s.status()[0]!.staple).toBe("sigRequired");

    // A staple file that cannot be read: the reload fails, the previous bytes stay.
    await fs.rm(file);
    await expect(s.reload()).rejects.toThrow(/cannot read staple file.*staple\.der/);
    expect((await stapleSeen(s.port))!.equals(second)).toBe(true);
    expect(responder.requests()).toHaveLength(0);
  });

  it("file: a missing file stops start() naming it", async () => {
    const file = join(dir, "missing.der");
    await expect(startStapler({ kind: "file", path: file })).rejects.toBeInstanceOf(CertificateSetupError);
    await expect(startStapler({ kind: "file", path: file })).rejects.toThrow(/missing\.der/);
  });

  it("none: no staple is sent and the responder is never asked", async () => {
    const { s, lines } = await startStapler("none");
    expect(await stapleSeen(s.port)).toBeNull();
    expect(s.status()[0]).toMatchObject({ staple: "none", stapleSource: "none" });
    expect(responder.requests()).toHaveLength(0);
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: WARNING, stapleSource: "none" }));
  });

  it("rejects a bad source naming it", () => {
    expect(() => new StaplingServer().withStapleSource("unverified" as never)).toThrow(InvalidStapleSourceError);
    expect(() => new StaplingServer().withStapleSource({ kind: "bytes" } as never)).toThrow(/bytes source needs der/);
    expect(() => new StaplingServer().withStapleSource({ kind: "file", path: "" })).toThrow(/file source needs path/);
  });
});

/** Injected io for staplerMain: captured output, a stop signal we fire ourselves. */
function cliIo(): { io: StaplerCliIo; out: () => string; err: () => string; stop: () => void } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  let stop: (s: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  return {
    io: {
      stdout,
      stderr,
      env: { ...process.env, OCSP_LAB_HOME: join(dir, "home") },
      stopSignal: () => stopped,
      onReloadSignal: () => () => {},
    },
    out: () => out,
    err: () => err,
    stop: () => stop("SIGTERM"),
  };
}

describe("staple_source in the configuration file", () => {
  const certLine = (extra = ""): string =>
    `certificates:\n  - { cert: ${leaf.certFile}, key: ${leaf.keyFile}, chain: ${leaf.chainFile}${extra} }\n`;

  it("--check names the source of each certificate and warns when it is not verified", async () => {
    await fs.writeFile(join(dir, "flawed.der"), Buffer.from(unsuccessfulResponse("tryLater")));
    const perCert = join(dir, "file.yaml");
    await fs.writeFile(perCert, certLine(", staple_source: { kind: file, path: flawed.der }"));
    const c = cliIo();
    expect(await staplerMain(["--config", perCert, "--check"], c.io), c.err()).toBe(0);
    expect(c.out()).toContain(`${leaf.serial} for localhost staple source file ${join(dir, "flawed.der")};`);
    expect(c.out()).toContain(WARNING);

    const global = join(dir, "received.yaml");
    await fs.writeFile(global, `${certLine()}staple_source: as-received\n`);
    const g = cliIo();
    expect(await staplerMain(["--config", global, "--check"], g.io), g.err()).toBe(0);
    expect(g.out()).toContain(`via ${responder.url}, staple source as-received (unverified)`);

    const verified = join(dir, "verified.yaml");
    await fs.writeFile(verified, certLine());
    const v = cliIo();
    expect(await staplerMain(["--config", verified, "--check"], v.io)).toBe(0);
    expect(v.out()).not.toContain(WARNING);
  });

  it.each([
    ["", "staple_source: verifed\n", /: staple_source: give verified, as-received, none/],
    ["", "staple_source: { kind: bytes, base64: '%%%' }\n", /: staple_source\.base64: give the DER staple in base64/],
    ["", "staple_source: { kind: file }\n", /: staple_source\.path: give the DER staple file/],
    [", staple_source: unverified", "", /: certificates\.0\.staple_source: give verified, as-received, none/],
  ])("a bad staple_source (%j %j) is named on one line", async (inCert, yaml, message) => {
    const bad = join(dir, "bad.yaml");
    await fs.writeFile(bad, `${certLine(inCert)}${yaml}`);
    const b = cliIo();
    expect(await staplerMain(["--config", bad, "--check"], b.io)).toBe(1);
    expect(b.err()).toMatch(message);
    expect(b.err().trim().split("\n")).toHaveLength(1);
  });

  it("serves { kind: bytes, base64 } from the config: the client receives those bytes", async () => {
    const der = Buffer.from(unsuccessfulResponse("unauthorized"));
    const config = join(dir, "bytes.yaml");
    await fs.writeFile(
      config,
      `${certLine()}staple_source: { kind: bytes, base64: ${der.toString("base64")} }\nwatch_interval: 0\nlog_level: silent\npersist: false\nadmin: false\n`,
    );
    const c = cliIo();
    const exited = staplerMain(["--config", config], c.io);
    cleanups.push(async () => {
      c.stop();
      await exited;
    });
    const line = await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        if (c.out().includes("listening on")) resolve(c.out());
        else if (c.err()) reject(new Error(c.err()));
      };
      (c.io.stdout as PassThrough).on("data", check);
      (c.io.stderr as PassThrough).on("data", check);
      check();
    });
    const port = Number(/127\.0\.0\.1:(\d+) \(/.exec(line)![1]);
    expect((await stapleSeen(port))!.equals(der)).toBe(true);
    expect(line).toContain(`${leaf.serial} unauthorized`);
  });
});
