import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { LabEndpoints } from "@ocsp-lab/harness";
import { OCSP_LAB_BIN, curlCertStatus, eventually, run, sClient, startUp, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let child: ChildProcess | undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGKILL");
    await once(child, "exit");
  }
  child = undefined;
  await cleanup();
});

const ocspLab = (args: string[]) =>
  run(process.execPath, [OCSP_LAB_BIN, ...args], { env: { ...process.env, OCSP_LAB_HOME: dir }, cwd: dir });

/** Start `ocsp-lab up --json` with a policy that drops the staple at the first failed query. */
async function up(): Promise<LabEndpoints> {
  const started = await startUp(dir, ["--recovery-max-tries", "1", "--response-timeout", "0.5", "--query-frequency", "600"]);
  child = started.child;
  return started.endpoints;
}

describe("ocsp-lab set", () => {
  it("drives a running up through good → unknown → hang → clear, seen by openssl s_client and curl", async () => {
    const e = await up();
    const status = (r: { stdout: string }) => /Cert Status: (\w+)/.exec(r.stdout)?.[1];
    const handshake = () => sClient({ port: e.staplerPort, caFile: e.caFile });
    const curl = () => curlCertStatus({ port: e.staplerPort, caFile: e.caFile });
    const staple = async () =>
      ((await (await fetch(`${e.staplerAdminUrl}/admin/ocsp`)).json()) as { certificates: { staple: string }[] }).certificates[0]!
        .staple;

    expect(status(await handshake())).toBe("good");
    expect((await curl()).code).toBe(0);

    const unknown = await ocspLab(["set", e.serial, "unknown"]);
    expect(unknown.code, unknown.stderr).toBe(0);
    expect(unknown.stdout.trim()).toBe(
      `ocsp-lab: serial ${e.serial} now answers unknown (kept across restarts of up); the stapler re-queried: staple unknown. Undo with: ocsp-lab set ${e.serial} clear`,
    );
    await eventually(handshake, (r) => status(r) === "unknown", 10_000, "s_client to see Cert Status: unknown");
    const refused = await eventually(curl, (r) => r.code !== 0, 10_000, "curl --cert-status to refuse");
    expect(refused.code).not.toBe(0);

    // The certificate file names the serial as well as its hex does.
    const hang = await ocspLab(["set", e.certFile, "hang"]);
    expect(hang.code, hang.stderr).toBe(0);
    expect(hang.stdout).toContain(`serial ${e.serial} now answers nothing (the responder hangs)`);
    // recovery_max_tries 1, on_failure invalidate: the first timed-out query drops the staple.
    await eventually(staple, (s) => s === "none", 10_000, "the stapler to drop the staple");
    const ocspStatus = (await (await fetch(`${e.staplerAdminUrl}/admin/ocsp`)).json()) as {
      certificates: { consecutiveFailures: number; onFailure: string }[];
    };
    expect(ocspStatus.certificates[0]!.onFailure).toBe("invalidate");
    expect(ocspStatus.certificates[0]!.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect((await handshake()).stdout).toContain("OCSP response: no response sent");

    const clear = await ocspLab(["set", e.serial, "clear"]);
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.stdout).toContain(`serial ${e.serial} is back to what the CA says; the stapler re-queried: staple good.`);
    await eventually(handshake, (r) => status(r) === "good", 10_000, "s_client to see Cert Status: good");
    const ok = await eventually(curl, (r) => r.code === 0, 10_000, "curl --cert-status to accept");
    expect(ok.stderr).toBe("");

    // up records itself in lab.json while it runs, and removes the record when it stops.
    const running = JSON.parse(await fs.readFile(join(dir, "lab.json"), "utf8")) as { running?: { adminUrl: string } };
    expect(running.running?.adminUrl).toBe(e.adminUrl);
    child!.kill("SIGTERM");
    expect(((await once(child!, "exit")) as [number | null])[0]).toBe(0);
    const stopped = JSON.parse(await fs.readFile(join(dir, "lab.json"), "utf8")) as { running?: unknown };
    expect(stopped.running).toBeUndefined();
    const none = await ocspLab(["set", e.serial, "unknown"]);
    expect(none.code).toBe(1);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
    expect(none.stderr).toContain("no running ocsp-lab up for state folder");
  });

  it("says in one line that no up is running, exit 1", async () => {
    const r = await ocspLab(["set", "01", "unknown"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^ocsp-lab: no running ocsp-lab up for state folder /);
  });

  it("rejects a bad state with a usage error listing the states, exit 2", async () => {
    const r = await ocspLab(["set", "01", "sideways"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'ocsp-lab: unknown state "sideways": use one of good, revoked [--reason R], unknown, hang, down, slow <seconds>, http <status>, trylater, flaw <name>, clear',
    );
    for (const bad of [["slow"], ["http", "200"], ["flaw", "nope"], ["good", "extra"]]) {
      const b = await ocspLab(["set", "01", ...bad]);
      expect(b.code, bad.join(" ")).toBe(2);
    }
  });
});
