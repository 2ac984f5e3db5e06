import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { promises as fs, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { LabEndpoints, LabEvent } from "@ocsp-lab/harness";
import {
  OCSP_LAB_BIN,
  curlCertStatus,
  eventually,
  freePort,
  run,
  sClient,
  startUp,
  tempDir,
} from "../../../test-support/index.js";

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
  await cleanup();
});

const ocspLab = (args: string[]) =>
  run(process.execPath, [OCSP_LAB_BIN, ...args], { env: { ...process.env, OCSP_LAB_HOME: dir }, cwd: dir });
const certStatus = (r: { stdout: string }) => /Cert Status: (\w+)/.exec(r.stdout)?.[1];

/** `ocsp-lab up --json` (test-support startUp) plus its stderr, collected from the start. */
async function upJson(args: string[]): Promise<{ e: LabEndpoints; child: ChildProcess; stderr: () => string }> {
  const { endpoints, child } = await startUp(dir, args);
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  return { e: endpoints, child, stderr: () => err };
}

/** SIGTERM the child and expect a clean exit. */
async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  expect(((await exited) as [number | null])[0]).toBe(0);
}

/** `ocsp-lab up` (text mode, plus `args`) with every stdout line collected as it comes. */
function upText(args: string[]): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, [OCSP_LAB_BIN, "up", ...args], {
    env: { ...process.env, OCSP_LAB_HOME: dir },
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => lines.push(l));
  return { child, lines };
}

const labFile = async (): Promise<{ serial: string; running?: { pid: number } }> =>
  JSON.parse(await fs.readFile(join(dir, "lab.json"), "utf8")) as { serial: string; running?: { pid: number } };

describe("ocsp-lab set keeps its states across restarts of up", () => {
  it("set unknown, restart up: the first staple is unknown; set clear: good, and the next up is good", async () => {
    const responderPort = await freePort();
    const args = ["--responder-port", String(responderPort), "--query-frequency", "600"];
    const first = await upJson(args);
    const e = first.e;
    expect(e.behaviours).toEqual([]);
    const handshake = () => sClient({ port: e.staplerPort, caFile: e.caFile });
    expect(certStatus(await handshake())).toBe("good");

    const set = await ocspLab(["set", e.serial, "unknown"]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(`serial ${e.serial} now answers unknown (kept across restarts of up)`);
    const saved = JSON.parse(await fs.readFile(join(dir, "behaviours", `${e.serial}.json`), "utf8")) as unknown;
    expect(saved).toEqual({
      serial: e.serial,
      state: "unknown",
      words: "unknown",
      action: { kind: "status", status: "unknown" },
    });
    await stop(first.child);

    // The same serial (same responder port, so the certificate is reused) starts out unknown.
    const second = await upJson(args);
    expect(second.e.serial).toBe(e.serial);
    expect(second.e.behaviours).toEqual([{ serial: e.serial, state: "unknown", words: "unknown" }]);
    const again = () => sClient({ port: second.e.staplerPort, caFile: e.caFile });
    expect(certStatus(await again())).toBe("unknown");
    expect((await curlCertStatus({ port: second.e.staplerPort, caFile: e.caFile })).code).not.toBe(0);

    const clear = await ocspLab(["set", e.serial, "clear"]);
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.stdout).toContain("the stapler re-queried: staple good");
    await expect(fs.access(join(dir, "behaviours", `${e.serial}.json`))).rejects.toThrow();
    await eventually(again, (r) => certStatus(r) === "good", 10_000, "s_client to see Cert Status: good");
    await stop(second.child);

    const third = await upJson(args);
    expect(third.e.behaviours).toEqual([]);
    expect(certStatus(await sClient({ port: third.e.staplerPort, caFile: e.caFile }))).toBe("good");
    const ok = await curlCertStatus({ port: third.e.staplerPort, caFile: e.caFile });
    expect(ok.code, ok.stderr).toBe(0);
    await stop(third.child);
  });

  it("set clear with no up running removes the saved state; without one it says no up runs", async () => {
    const responderPort = await freePort();
    const args = ["--responder-port", String(responderPort), "--query-frequency", "600"];
    const first = await upJson(args);
    const e = first.e;
    expect((await ocspLab(["set", e.serial, "revoked", "--reason", "superseded"])).code).toBe(0);
    await stop(first.child);

    const clear = await ocspLab(["set", e.serial, "clear"]);
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.stdout.trim()).toBe(
      `ocsp-lab: no ocsp-lab up is running; removed the state saved for serial ${e.serial}, so the next up answers what the CA says`,
    );
    const twice = await ocspLab(["set", e.serial, "clear"]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("no running ocsp-lab up for state folder");

    const second = await upJson(args);
    expect(second.e.behaviours).toEqual([]);
    expect(certStatus(await sClient({ port: second.e.staplerPort, caFile: e.caFile }))).toBe("good");
    await stop(second.child);
  });

  it("skips a saved state it cannot use, in one line naming the file", async () => {
    await fs.mkdir(join(dir, "behaviours"));
    await fs.writeFile(
      join(dir, "behaviours", "0a0b.json"),
      '{"serial":"0a0b","state":"x","words":"x","action":{"kind":"nope"}}',
    );
    const { e, child, stderr } = await upJson(["--query-frequency", "600"]);
    expect(e.behaviours).toEqual([]);
    await eventually(stderr, (s) => s.includes("skipped a saved state"), 10_000, "the skipped-state line");
    expect(stderr()).toMatch(/^ocsp-lab: skipped a saved state: .*behaviours\/0a0b\.json: action\.kind: /);
    await stop(child);
  });
});

describe("ocsp-lab up with a revoked server certificate", () => {
  it("says so in one line at start, and --new-cert issues a fresh one", async () => {
    const responderPort = await freePort();
    const args = ["--responder-port", String(responderPort), "--query-frequency", "600"];
    const first = await upJson(args);
    expect(first.stderr()).toBe("");
    expect((await ocspLab(["revoke", first.e.serial, "--reason", "keyCompromise"])).code).toBe(0);
    await stop(first.child);

    const second = await upJson(args);
    expect(second.e.serial).toBe(first.e.serial);
    await eventually(second.stderr, (s) => s.includes("is revoked"), 10_000, "the revoked-certificate line");
    expect(second.stderr().trim().split("\n")).toHaveLength(1);
    expect(second.stderr()).toMatch(
      new RegExp(
        `^ocsp-lab: the server certificate reused from the last start \\(serial ${second.e.serial}\\) is revoked \\(keyCompromise, .*\\): clients refuse it; run ocsp-lab up --new-cert for a fresh one\n$`,
      ),
    );
    expect(certStatus(await sClient({ port: second.e.staplerPort, caFile: second.e.caFile }))).toBe("revoked");
    await stop(second.child);

    const fresh = await upJson([...args, "--new-cert"]);
    expect(fresh.e.serial).not.toBe(first.e.serial);
    expect((await labFile()).serial).toBe(fresh.e.serial);
    const ok = await curlCertStatus({ port: fresh.e.staplerPort, caFile: fresh.e.caFile });
    expect(ok.code, ok.stderr).toBe(0);
    await stop(fresh.child);
    expect(fresh.stderr()).toBe("");
  });
});

describe("ocsp-lab up event lines", () => {
  it("prints a staple line after the banner, then a revocation line and a revoked staple line", async () => {
    const { child, lines } = upText(["--query-frequency", "0.3"]);
    await eventually(
      () => lines,
      (l) => l.some((x) => / staple good for serial /.test(x)),
      30_000,
      "a staple good line",
    );
    const banner = lines.findIndex((l) => l.startsWith("Events (--quiet turns them off):"));
    const firstStaple = lines.findIndex((l) => / staple good for serial /.test(l));
    expect(banner).toBeGreaterThan(0);
    expect(firstStaple).toBe(banner + 1);
    const { serial } = await labFile();
    expect(lines[firstStaple]).toMatch(
      new RegExp(`^\\d\\d:\\d\\d:\\d\\dZ staple good for serial ${serial} \\(thisUpdate \\S+, nextUpdate \\S+\\)$`),
    );

    expect((await ocspLab(["revoke", serial, "--reason", "keyCompromise"])).code).toBe(0);
    const revokedAt = (l: string[]) => l.findIndex((x) => x.includes(`revocation seen: serial ${serial}`));
    await eventually(
      () => lines,
      (l) => revokedAt(l) >= 0 && l.slice(revokedAt(l)).some((x) => x.includes(`staple revoked for serial ${serial}`)),
      10_000,
      "a revocation line, then a staple revoked line",
    );
    expect(lines[revokedAt(lines)]).toMatch(/\(CN=localhost\) revoked, reason keyCompromise at /);
    await stop(child);
    expect(lines.at(-1)).toMatch(/^ocsp-lab: SIGTERM received, lab stopped;/);
  });

  it("--json prints events as JSON lines after the endpoints: staples, failed fetches, a dropped staple", async () => {
    const child = spawn(
      process.execPath,
      [OCSP_LAB_BIN, "up", "--json", "--query-frequency", "600", "--recovery-max-tries", "1", "--response-timeout", "0.5"],
      { env: { ...process.env, OCSP_LAB_HOME: dir }, cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on("line", (l) => lines.push(l));
    await eventually(
      () => lines,
      (l) => l.length >= 2,
      30_000,
      "the endpoints line and a first event",
    );
    const e = JSON.parse(lines[0]!) as LabEndpoints;
    const events = () => lines.slice(1).map((l) => JSON.parse(l) as LabEvent);
    expect(events()[0]).toMatchObject({ event: "staple", serial: e.serial, staple: "good" });

    expect((await ocspLab(["set", e.serial, "hang"])).code).toBe(0);
    await eventually(events, (ev) => ev.some((x) => x.event === "staple-dropped"), 10_000, "a staple-dropped event");
    expect(events().find((x) => x.event === "fetch-failed")).toMatchObject({ serial: e.serial, kind: "timeout", failures: 1 });
    expect(events().find((x) => x.event === "staple-dropped")).toMatchObject({ serial: e.serial, failures: 1 });
    expect((await ocspLab(["set", e.serial, "clear"])).code).toBe(0);
    await stop(child);
  });

  it("--quiet prints the banner and the stop line only", async () => {
    const { child, lines } = upText(["--quiet", "--query-frequency", "0.3"]);
    await eventually(
      () => lines,
      (l) => l.some((x) => x.startsWith("Ctrl-C stops the lab")),
      30_000,
      "the banner",
    );
    const { serial } = await labFile();
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(lines.join("\n"))?.[1]);
    expect((await ocspLab(["revoke", serial])).code).toBe(0);
    await eventually(
      () => curlCertStatus({ port, caFile: join(dir, "ca.pem") }),
      (r) => r.stderr.includes("revocation reason"),
      10_000,
      "curl to see the revoked staple",
    );
    await stop(child);
    expect(lines).not.toContain("Events (--quiet turns them off):");
    const banner = lines.findIndex((l) => l.startsWith("Ctrl-C stops the lab"));
    expect(lines.slice(banner + 1)).toEqual([expect.stringMatching(/^ocsp-lab: SIGTERM received, lab stopped;/)]);
  });
});

/** Whether `pid` runs (a zombie left to a pid 1 that does not reap counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}

describe("ocsp-lab up without the process that started it", () => {
  it("stops, and clears its running entry, when the wrapper that started it is killed", async () => {
    // A wrapper like `npx pnpm exec ocsp-lab up &` in a shell: a shell that starts up in the background and waits.
    const wrapper = spawn("sh", ["-c", '"$0" "$1" up --json --query-frequency 600 & wait', process.execPath, OCSP_LAB_BIN], {
      env: { ...process.env, OCSP_LAB_HOME: dir },
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(wrapper);
    const lines: string[] = [];
    createInterface({ input: wrapper.stdout! }).on("line", (l) => lines.push(l));
    await eventually(
      () => lines,
      (l) => l.length >= 1,
      30_000,
      "the endpoints line",
    );
    const { running } = await labFile();
    expect(running?.pid).toBeGreaterThan(0);
    const pid = running!.pid;
    expect(alive(pid)).toBe(true);

    wrapper.kill("SIGKILL");
    await once(wrapper, "exit");
    await eventually(
      () => alive(pid),
      (a) => !a,
      10_000,
      `up (pid ${pid}) to exit after its wrapper was killed`,
    );
    expect((await labFile()).running).toBeUndefined();
    const set = await ocspLab(["set", (await labFile()).serial, "unknown"]);
    expect(set.code).toBe(1);
    expect(set.stderr).toContain("no running ocsp-lab up");
  });
});
