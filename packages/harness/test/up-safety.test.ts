import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { CertificateAuthority } from "@ocsp-lab/ca";
import { OCSP_LAB_BIN, run, startUp, tempDir } from "../../../test-support/index.js";
import { deny, runDenied } from "../../../test-support/safety.js";

const TOKEN = "up-admin-token-0123";

let dir: string;
let cleanup: () => Promise<void>;
const children: ChildProcess[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
      await once(c, "exit");
    }
  }
  await fs.chmod(dir, 0o700).catch(() => undefined);
  await cleanup();
});

const ocspLab = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [OCSP_LAB_BIN, ...args], { env: { ...process.env, OCSP_LAB_HOME: dir, ...env }, cwd: dir });

async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  expect(((await exited) as [number | null])[0]).toBe(0);
}

const modeOf = async (file: string): Promise<number> => (await fs.stat(file)).mode & 0o777;

describe("ocsp-lab up --admin-token", () => {
  it("protects both admin APIs and the metrics; set finds the token in lab.json (0600); a wrong one is one line", async () => {
    const { endpoints: e, child } = await startUp(dir, ["--admin-token", TOKEN, "--query-frequency", "600"]);
    children.push(child);
    expect(e.adminTokenRequired).toBe(true);
    expect(JSON.stringify(e)).not.toContain(TOKEN);
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const url of [
      `${e.adminUrl}/behaviours`,
      e.metricsUrl,
      `${e.staplerAdminUrl}/admin/ocsp`,
      `${e.staplerAdminUrl}/metrics`,
    ]) {
      expect((await fetch(url)).status, url).toBe(401);
      expect((await fetch(url, { headers: auth })).status, url).toBe(200);
    }
    const lab = join(dir, "lab.json");
    expect(await modeOf(lab)).toBe(0o600);
    expect(JSON.parse(await fs.readFile(lab, "utf8"))).toMatchObject({
      running: { adminToken: TOKEN, staplerAdminToken: TOKEN },
    });

    const set = await ocspLab(["set", e.serial, "unknown"]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("the stapler re-queried: staple unknown");

    const wrong = await ocspLab(["set", e.serial, "good"], { OCSP_LAB_ADMIN_TOKEN: "not-the-token" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /^ocsp-lab: PUT http:\/\/127\.0\.0\.1:\d+\/admin\/behaviours\/serials\/[0-9a-f]+: HTTP 401: the admin token sent is not the running up's: give the one its --admin-token was given, with --admin-token or OCSP_LAB_ADMIN_TOKEN\n$/,
    );
    const given = await ocspLab(["set", e.serial, "clear", "--admin-token", TOKEN]);
    expect(given.code, given.stderr).toBe(0);

    await stop(child);
    const after = JSON.parse(await fs.readFile(lab, "utf8")) as Record<string, unknown>;
    expect(after).not.toHaveProperty("running");
    expect(await modeOf(lab)).toBe(0o644);
  });

  it("without a token lab.json stays 0644; a short token is a usage error", async () => {
    const { endpoints: e, child } = await startUp(dir, ["--query-frequency", "600"]);
    children.push(child);
    expect(e.adminTokenRequired).toBe(false);
    expect(await modeOf(join(dir, "lab.json"))).toBe(0o644);
    await stop(child);
    const short = await ocspLab(["up", "--admin-token", "short"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/--admin-token must be 8 characters or more/);
  });
});

describe("ocsp-lab up start-up errors: what is wrong and the fix, one line, exit 1", () => {
  const oneLine = (r: { code: number | null; stdout: string; stderr: string }) => {
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toContain("unexpected error");
    return r.stderr;
  };

  it("a state folder that is a file", async () => {
    const file = join(dir, "state");
    await fs.writeFile(file, "");
    expect(oneLine(await ocspLab(["up", "--state-dir", file]))).toBe(
      `ocsp-lab: state folder ${file} is a file, not a folder: move the file away, or give another with --state-dir (or OCSP_LAB_HOME)\n`,
    );
    expect(oneLine(await ocspLab(["up", "--state-dir", join(file, "sub")]))).toMatch(
      /^ocsp-lab: cannot look at state folder .*\/state\/sub: part of that path is a file, not a folder \(ENOTDIR\)/,
    );
  });

  it("a read-only state folder", async () => {
    const state = join(dir, "read-only");
    await fs.mkdir(state);
    await deny(state, 0o555, [dir]);
    const r = await runDenied(process.execPath, [OCSP_LAB_BIN, "up", "--state-dir", state], { cwd: dirname(OCSP_LAB_BIN) });
    expect(oneLine(r)).toBe(
      `ocsp-lab: state folder ${state} is not writable by this user (EACCES; ls -ld ${state} shows its owner and mode: a folder made by another user, or with sudo, needs chown): make it writable, or give another with --state-dir (or OCSP_LAB_HOME)\n`,
    );
  });

  it("an unreadable key file in the state folder", async () => {
    const state = join(dir, "keys");
    const ca = await CertificateAuthority.init(state);
    ca.close();
    // The folder is writable by the child; the CA's keys are not readable (mode 0000, no capabilities).
    await deny(state, 0o777, [dir]);
    for (const key of ["ca.key", "ocsp-signer.key"]) await deny(join(state, key), 0o000);
    const r = await runDenied(process.execPath, [OCSP_LAB_BIN, "up", "--state-dir", state], { cwd: dirname(OCSP_LAB_BIN) });
    expect(oneLine(r)).toMatch(
      new RegExp(
        `^ocsp-lab: state folder ${state}: permission denied: cannot open ${state}/(ca|ocsp-signer)\\.key \\(EACCES\\): ls -ld .* shows its owner and mode; make it this user's \\(made with sudo\\? chown it\\); or give another with --state-dir \\(or OCSP_LAB_HOME\\)\\n$`,
      ),
    );
  });

  it("a port in use", async () => {
    const holder = createServer();
    holder.listen(0, "127.0.0.1");
    await once(holder, "listening");
    const port = (holder.address() as { port: number }).port;
    try {
      expect(oneLine(await ocspLab(["up", "--responder-port", String(port)]))).toBe(
        `ocsp-lab: responder port ${port} is in use: choose another with --responder-port, or leave it out for a free one\n`,
      );
      expect(oneLine(await ocspLab(["up", "--port", String(port)]))).toBe(
        `ocsp-lab: stapler port ${port} is in use: choose another with --port, or leave it out for a free one\n`,
      );
    } finally {
      holder.close();
    }
  });
});
