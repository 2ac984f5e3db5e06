/**
 * Servers under test: nginx, Apache httpd and HAProxy (Debian packages, real processes from the
 * harness's templates on 127.0.0.1 free ports) and the lab's stapler, driven through the server
 * scenarios by runServerScenarios and `ocsp-lab run --server`. The whole catalogue runs in CI as
 * the README's block; here: the file format's errors, the names, two scenarios against all four
 * servers with their observed words, and a wrong expectation that must make the run fail.
 */
import { describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import {
  ScenarioFileError,
  UsageError,
  knownServers,
  loadServerScenarioFile,
  runServerScenarios,
  selectServerScenarios,
  selectServers,
} from "@ocsp-lab/harness";
import { NginxServer } from "@ocsp-lab/harness";
import { OCSP_LAB_BIN, describeWithPeer, run, startUp, tempDir } from "../../../test-support/index.js";

const OCSP_CA_BIN = new URL("../../ca/bin/ocsp-ca.js", import.meta.url).pathname;

describe("server scenario files and names", () => {
  it("names the file and field of a bad server scenario", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const bad = join(dir, "bad.yaml");
      await fs.writeFile(bad, "name: x\ndescription: y\ncheck: nope\nexpect: {}\n");
      await expect(loadServerScenarioFile(bad)).rejects.toThrow(ScenarioFileError);
      await expect(loadServerScenarioFile(bad)).rejects.toThrow(/bad\.yaml: check: .*first-handshake/);
      await fs.writeFile(bad, "name: x\ndescription: y\ncheck: revocation\nwithin: soon\nexpect: {}\n");
      await expect(loadServerScenarioFile(bad)).rejects.toThrow(/within/);
    } finally {
      await cleanup();
    }
  });

  it("refuses an unknown server or server scenario, naming the known ones", async () => {
    expect(() => selectServers(["iis"])).toThrow(UsageError);
    expect(() => selectServers(["iis"])).toThrow(/unknown server "iis": use one of nginx, apache, haproxy, stapler/);
    await expect(selectServerScenarios(["server-nope"])).rejects.toThrow(/unknown server scenario "server-nope"/);
  });

  it("has an expectation and a citation for every built-in server in every built-in scenario", async () => {
    const names = knownServers().map((s) => s.name);
    for (const s of await selectServerScenarios()) {
      expect(Object.keys(s.expect).sort(), s.name).toEqual([...names].sort());
      expect(Object.keys(s.documented ?? {}).sort(), s.name).toEqual([...names].sort());
    }
  });
});

describeWithPeer("nginx")("servers under test (nginx, Apache, HAProxy, stapler)", () => {
  it("first handshake and renewal: each server as its documentation says", { timeout: 120_000 }, async () => {
    const report = await runServerScenarios({ scenarios: ["server-first-handshake", "server-renewal"] });
    const observed = Object.fromEntries(report.rows.map((r) => [`${r.scenario} ${r.client}`, r.observed]));
    expect(observed).toEqual({
      "server-first-handshake nginx": "first handshake: none, then good",
      "server-first-handshake apache": "good at the first handshake",
      "server-first-handshake haproxy": "good at the first handshake",
      "server-first-handshake stapler": "good at the first handshake",
      "server-renewal nginx": "staple follows the new certificate within 8 s",
      "server-renewal apache": "staple follows the new certificate within 8 s",
      "server-renewal haproxy": "staple follows the new certificate within 8 s",
      "server-renewal stapler": "staple follows the new certificate within 8 s",
    });
    expect(report.ok).toBe(true);
    // The detail carries the evidence: timings of the handshakes, the new serial.
    expect(report.rows.find((r) => r.scenario === "server-renewal" && r.client === "nginx")!.detail).toMatch(
      /^renewed to serial [0-9a-f]+, reloaded: (none at 0\.0 s, )?good at \d+\.\d s/,
    );
  });

  it("ocsp-lab run --server: a wrong expectation is a MISMATCH and exit 1, whatever the reporter", {
    timeout: 120_000,
  }, async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = join(dir, "mine.yaml");
      await fs.writeFile(
        file,
        [
          "name: my-hang",
          "description: the responder hangs; I wrongly expect Apache not to wait",
          "check: responder-hang",
          "expect:",
          '  apache: "first handshake not delayed, staple none"',
          '  nginx: "first handshake not delayed, staple none"',
          "",
        ].join("\n"),
      );
      const r = await run("node", [OCSP_LAB_BIN, "run", file, "--server", "nginx,apache", "--reporter", "json"]);
      expect(r.code, r.stderr).toBe(1);
      const report = JSON.parse(r.stdout) as { rows: Array<{ client: string; observed: string; verdict: string }> };
      expect(report.rows.map((row) => [row.client, row.observed, row.verdict])).toEqual([
        ["nginx", "first handshake not delayed, staple none", "ok"],
        ["apache", "first handshake delayed, staple tryLater", "MISMATCH"],
      ]);
      expect(r.stderr).toMatch(/1 server scenario × 2 servers/);
    } finally {
      await cleanup();
    }
  });
});

describeWithPeer("nginx")("a server the lab did not start: --server host:port --server-cert", () => {
  it("drives the running up's responder, judges the server by its address, and leaves the up as it was", {
    timeout: 120_000,
  }, async () => {
    const { dir, cleanup } = await tempDir();
    const state = join(dir, "lab");
    const up = await startUp(dir, ["--state-dir", state]);
    // The user's own server: nginx with a certificate of the up's CA (started here with the
    // harness's nginx template only to have one; the run below knows nothing of it).
    let server: Awaited<ReturnType<NginxServer["start"]>> | undefined;
    try {
      const issued = await run(
        process.execPath,
        [OCSP_CA_BIN, "issue", "--dns", "localhost", "--ip", "127.0.0.1", "--ocsp-url", up.endpoints.responderUrl, "--json"],
        { env: { ...process.env, OCSP_LAB_HOME: state } },
      );
      expect(issued.code, issued.stderr).toBe(0);
      const leaf = JSON.parse(issued.stdout) as {
        serial: string;
        certFile: string;
        keyFile: string;
        chainFile: string;
        fullchainFile: string;
      };
      const nginxDir = join(dir, "nginx");
      await fs.mkdir(nginxDir);
      server = await new NginxServer().start({
        dir: nginxDir,
        files: { ...leaf, caFile: join(state, "ca.pem") },
        responderUrl: up.endpoints.responderUrl,
        servername: "localhost",
      });
      const at = `127.0.0.1:${server.target.port}`;
      const file = join(dir, "mine.yaml");
      await fs.writeFile(
        file,
        [
          "name: my-revocation",
          "description: revoked while stapled",
          "check: revocation",
          "within: 3s",
          "expect:",
          `  "${at}": "still good after 3 s"`,
          "",
        ].join("\n"),
      );
      const r = await run("node", [
        OCSP_LAB_BIN,
        "run",
        file,
        "--server",
        at,
        "--server-cert",
        leaf.certFile,
        "--state-dir",
        state,
        "--reporter",
        "json",
      ]);
      expect(r.code, r.stderr).toBe(0);
      const rows = (JSON.parse(r.stdout) as { rows: Array<{ client: string; observed: string; verdict: string }> }).rows;
      expect(rows).toMatchObject([{ client: at, observed: "still good after 3 s", verdict: "ok" }]);
      // The override was cleared: the up's responder answers good again, nothing is saved for the serial.
      const status = await run("openssl", [
        "ocsp",
        "-issuer",
        join(state, "ca.pem"),
        "-cert",
        leaf.certFile,
        "-url",
        up.endpoints.responderUrl,
        "-CAfile",
        join(state, "ca.pem"),
        "-no_nonce",
      ]);
      expect(status.stdout).toMatch(/: good/);
      await expect(fs.readdir(join(state, "behaviours")).catch(() => [])).resolves.toEqual([]);
      // A check that starts the server is skipped for it, with the reason.
      const skipped = await run("node", [
        OCSP_LAB_BIN,
        "run",
        "--server",
        at,
        "--server-cert",
        leaf.certFile,
        "--state-dir",
        state,
        "--scenario",
        "server-renewal",
        "--reporter",
        "json",
      ]);
      expect(skipped.code, skipped.stderr).toBe(0);
      expect(JSON.parse(skipped.stdout).rows[0]).toMatchObject({
        verdict: "skipped",
        detail: expect.stringMatching(/did not start/),
      });
      // Without --server-cert: one line, exit 2.
      const bare = await run("node", [OCSP_LAB_BIN, "run", "--server", at]);
      expect(bare.code).toBe(2);
      expect(bare.stderr).toMatch(/^ocsp-lab: server 127\.0\.0\.1:\d+ is not one the harness starts: give --server-cert/);
    } finally {
      await server?.stop();
      up.child.kill("SIGTERM");
      await new Promise((resolve) => up.child.once("exit", resolve));
      await cleanup();
    }
  });
});
