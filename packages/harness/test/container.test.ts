/**
 * The container code (issue 12): the lab's image through OcspLabContainer, and the nginx
 * container server target, where a container engine is reachable; the engine check itself
 * and "no testcontainers on import" everywhere.
 *
 * OCSP_LAB_REQUIRE_PEERS=1 (set by .ci/run) makes every other missing peer fail its test
 * (test-support's describeWithPeer). The container tests are the documented exception: no CI
 * machine of this project has a container engine (there is no Docker or Podman daemon, and
 * none can be installed and started there), so under OCSP_LAB_REQUIRE_PEERS=1 they skip too,
 * with the reason in their names and on stderr. Where an engine exists they run (README,
 * "Containers").
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTAINER_SERVERS, containerEngineAvailability, startLab } from "@ocsp-lab/harness";
import { OCSP_LAB_BIN, eventually, run, sClient, tempDir } from "../../../test-support/index.js";

const REPO_ROOT = new URL("../../../", import.meta.url).pathname;
const engine = await containerEngineAvailability();
const skipped = engine.ok ? "" : ` (skipped: ${engine.reason})`;
if (!engine.ok)
  console.warn(
    `container tests skipped: ${engine.reason}${process.env.OCSP_LAB_REQUIRE_PEERS === "1" ? " (OCSP_LAB_REQUIRE_PEERS=1 does not apply to them: no CI machine of this project has a container engine)" : ""}`,
  );

describe.skipIf(!engine.ok)(`OcspLabContainer${skipped}`, () => {
  let image: string;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ocsp-lab-container-"));
    image = process.env.OCSP_LAB_IMAGE ?? "";
    if (!image) {
      // Build the image from this checkout (minutes the first time; OCSP_LAB_IMAGE skips it).
      const { GenericContainer } = await import("testcontainers");
      await GenericContainer.fromDockerfile(REPO_ROOT).build("ocsp-lab:test", { deleteOnExit: false });
      image = "ocsp-lab:test";
    }
  }, 900_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("starts, fills its getters from the JSON line, and answers a real openssl ocsp query", async () => {
    const { OcspLabContainer } = await import("@ocsp-lab/harness/container");
    await using lab = await new OcspLabContainer(image).withAdminToken("container-test-token").start();
    const e = lab.endpoints();
    expect(e.adminTokenRequired).toBe(true);
    expect(e.responderUrl).toBe("http://127.0.0.1:8080");
    expect(e.staplerPort).toBe(8443);
    expect(lab.serial()).toBe(e.serial);
    expect(lab.serverName()).toBe("localhost");
    expect(lab.adminToken()).toBe("container-test-token");
    expect(lab.responderUrl()).toMatch(/^http:\/\/.+:\d+$/);
    expect(lab.staplerPort()).toBeGreaterThan(0);

    const caFile = await lab.copyCaTo(join(dir, "ca.pem"));
    const certFile = join(dir, "cert.pem");
    await writeFile(certFile, await lab.certificatePem());
    const ocsp = await run("openssl", [
      "ocsp",
      "-issuer",
      caFile,
      "-cert",
      certFile,
      "-url",
      lab.responderUrl(),
      "-CAfile",
      caFile,
    ]);
    expect(ocsp.stderr + ocsp.stdout).toContain("Response verify OK");
    expect(ocsp.stdout).toContain(`${certFile}: good`);

    const handshake = await sClient({ host: lab.staplerHost(), port: lab.staplerPort(), caFile });
    expect(handshake.stdout).toContain("Cert Status: good");

    const admin = await fetch(`${lab.adminUrl()}/behaviours`, { headers: { authorization: `Bearer ${lab.adminToken()}` } });
    expect(admin.status).toBe(200);
    expect((await fetch(`${lab.adminUrl()}/behaviours`)).status).toBe(401);
  }, 180_000);
});

describe.skipIf(!engine.ok)(`container server target nginx (${CONTAINER_SERVERS.nginx.image})${skipped}`, () => {
  it("staples the lab responder's answer (ssl_stapling on, ssl_stapling_verify on)", async () => {
    const { dir, cleanup } = await tempDir();
    const lab = await startLab({ stateDir: join(dir, "lab") });
    try {
      const { TestContainers } = await import("testcontainers");
      const { startContainerServer } = await import("@ocsp-lab/harness/container");
      // The container reaches the responder on this machine through testcontainers' port forwarder.
      await TestContainers.exposeHostPorts(lab.responder.port);
      await using server = await startContainerServer("nginx", {
        certFile: lab.leaf.certFile,
        keyFile: lab.leaf.keyFile,
        chainFile: lab.leaf.chainFile,
        caFile: lab.ca.rootFile,
        responderUrl: `http://host.testcontainers.internal:${lab.responder.port}`,
      });
      // nginx queries the responder at its first handshake and staples from a later one.
      const out = await eventually(
        () => sClient({ host: server.host, port: server.port, caFile: lab.ca.rootFile }),
        (r) => r.stdout.includes("Cert Status: good"),
        30_000,
        "a good staple from nginx",
      );
      expect(out.stdout).toContain("OCSP Response Status: successful");
    } finally {
      await lab.stop();
      await cleanup();
    }
  }, 180_000);
});

describe("containerEngineAvailability", () => {
  it("answers ok: false with the reason, fast, when DOCKER_HOST is a TCP port nobody listens on", async () => {
    const probe = createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const { port } = probe.address() as { port: number };
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const { dir, cleanup } = await tempDir();
    try {
      const started = performance.now();
      const got = await containerEngineAvailability({ env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` }, home: dir, sockets: [] });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(got).toEqual({
        ok: false,
        reason: expect.stringContaining(`DOCKER_HOST=tcp://127.0.0.1:${port}: nothing listens there (ECONNREFUSED)`),
      });
    } finally {
      await cleanup();
    }
  });

  it("answers ok: false when DOCKER_HOST is a unix socket whose server is gone", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const socket = join(dir, "docker.sock");
      const server = createServer().listen(socket);
      await once(server, "listening");
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const started = performance.now();
      const got = await containerEngineAvailability({ env: { DOCKER_HOST: `unix://${socket}` }, home: dir, sockets: [] });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(got.ok).toBe(false);
      // Node removes the socket file on close; either way the reason names the endpoint and what is wrong.
      expect(got.ok === false && got.reason).toMatch(
        new RegExp(`DOCKER_HOST=unix://${socket}: (socket ${socket} does not exist|nothing listens there)`),
      );
    } finally {
      await cleanup();
    }
  });

  it("answers 200 from a Docker-like /_ping as ok, and says what a non-Docker server is", async () => {
    const { createServer: createHttpServer } = await import("node:http");
    const http = createHttpServer((req, res) => res.writeHead(req.url === "/_ping" ? 200 : 404).end("OK"));
    http.listen(0, "127.0.0.1");
    await once(http, "listening");
    const { port } = http.address() as { port: number };
    const { dir, cleanup } = await tempDir();
    try {
      const env = { DOCKER_HOST: `tcp://127.0.0.1:${port}` };
      expect(await containerEngineAvailability({ env, home: dir, sockets: [] })).toEqual({
        ok: true,
        endpoint: `tcp://127.0.0.1:${port}`,
      });
      await writeFile(join(dir, ".testcontainers.properties"), `tc.host=tcp://127.0.0.1:${port}/nope\n`);
      http.removeAllListeners("request");
      http.on("request", (_req, res) => res.writeHead(404).end());
      const got = await containerEngineAvailability({ env: {}, home: dir, sockets: [] });
      expect(got.ok === false && got.reason).toContain("tc.host in ~/.testcontainers.properties: answered HTTP 404");
    } finally {
      http.close();
      await cleanup();
    }
  });

  it("with nothing configured and no socket, says so and what to install", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const socket = join(dir, "docker.sock");
      expect(await containerEngineAvailability({ env: {}, home: dir, sockets: [socket] })).toEqual({
        ok: false,
        reason: expect.stringMatching(
          new RegExp(
            `^no container engine: ${socket} does not exist and DOCKER_HOST is not set; install Docker or Podman to run container targets`,
          ),
        ),
      });
    } finally {
      await cleanup();
    }
  });
});

describe("loading without testcontainers", () => {
  // A resolve hook that fails any import of testcontainers: importing the package and running
  // the CLI must not need it (it is loaded only by @ocsp-lab/harness/container and startContainerServer).
  const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === "testcontainers" || specifier.startsWith("testcontainers/")) throw new Error("testcontainers was imported");
  return next(specifier, context);
}`;
  let dir: string;
  let register: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ocsp-lab-no-tc-"));
    await writeFile(join(dir, "hooks.mjs"), hooks);
    register = join(dir, "register.mjs");
    await writeFile(
      register,
      `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`,
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const node = (args: string[]): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", pathToFileURL(register).href, ...args], {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d));
      child.stderr.on("data", (d: Buffer) => (out += d));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, out }));
    });

  it("the hook does catch an import of testcontainers", async () => {
    const r = await node(["--input-type=module", "-e", 'await import("@ocsp-lab/harness/container")']);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("testcontainers was imported");
  });

  it("importing @ocsp-lab/harness and running ocsp-lab --help load no testcontainers", async () => {
    const imported = await node([
      "--input-type=module",
      "-e",
      'const h = await import("@ocsp-lab/harness"); console.log(typeof h.containerEngineAvailability, h.CONTAINER_SERVER_NAMES.join(","))',
    ]);
    expect(imported).toEqual({ code: 0, out: "function nginx,httpd,haproxy\n" });
    const cli = await node([OCSP_LAB_BIN, "--help"]);
    expect(cli.code).toBe(0);
    expect(cli.out).toContain("Usage: ocsp-lab");
  });
});
