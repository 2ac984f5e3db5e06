import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import type { IssuedCertificate } from "@ocsp-lab/ca";
import { AdminExposedError, StaplingServer, type StartedStaplingServer } from "@ocsp-lab/stapler";
import { POLICIES, freePort, run, startTestLab, type TestLab } from "../../../test-support/index.js";
import { deny, headOnlyRequest, nonLoopbackAddress, portIsFree, rawRequest, runDenied } from "../../../test-support/safety.js";

const STAPLER_BIN = new URL("../bin/ocsp-stapler.js", import.meta.url).pathname;
const TOKEN = "stapler-token-0123";

let lab: TestLab;
let leaf: IssuedCertificate;
/** No token: Host and Origin checked. */
let open: StartedStaplingServer;
/** A token: every admin request and /metrics need it. */
let guarded: StartedStaplingServer;

beforeAll(async () => {
  lab = await startTestLab();
  leaf = lab.leaf;
  open = await (await StaplingServer.fromFiles(leaf)).withPolicy(POLICIES.STEADY).start();
  guarded = await (await StaplingServer.fromFiles(leaf)).withPolicy(POLICIES.STEADY).withAdmin({ token: TOKEN }).start();
});
afterAll(async () => {
  await open?.stop();
  await guarded?.stop();
  await lab?.stop();
});

const portOf = (s: StartedStaplingServer): number => Number(new URL(s.adminUrl!).port);
const json = (body: string): { error: string; field?: string } => JSON.parse(body) as { error: string; field?: string };

/** Run ocsp-stapler with a config file written from `yaml`; resolves with what it printed. */
async function stapler(name: string, yaml: string, args: string[] = []) {
  const file = join(lab.dir, `${name}.yaml`);
  await fs.writeFile(file, yaml);
  return run(process.execPath, [STAPLER_BIN, "--config", file, ...args], { env: { ...process.env, OCSP_LAB_HOME: lab.dir } });
}

const certLine = (c: { cert: string; key: string; chain?: string }) =>
  `certificates:\n  - { cert: ${c.cert}, key: ${c.key}${c.chain ? `, chain: ${c.chain}` : ""} }\n`;

describe("where the stapler's admin endpoint listens", () => {
  it("refuses a non-loopback admin.host without a token before reading or binding anything", async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const asked = lab.responder.requests().length;
    const err = await (await StaplingServer.fromFiles(leaf))
      .withPort(port)
      .withAdmin({ host: "0.0.0.0", port: adminPort })
      .start()
      .then(
        (s) => s.stop().then(() => undefined),
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(AdminExposedError);
    expect((err as AdminExposedError).code).toBe("OCSP_LAB_STAPLER_ADMIN_EXPOSED");
    expect(await portIsFree(port)).toBe(true);
    expect(await portIsFree(adminPort)).toBe(true);
    // No fetch happened either: the responder saw no request from it.
    expect(lab.responder.requests().length).toBe(asked);
  });

  it("starts there with a token, or with allowUnauthenticated", async () => {
    const host = nonLoopbackAddress() ?? "0.0.0.0";
    for (const admin of [
      { host, token: TOKEN },
      { host, allowUnauthenticated: true },
    ]) {
      const s = await (await StaplingServer.fromFiles(leaf)).withPolicy(POLICIES.STEADY).withAdmin(admin).start();
      try {
        const target = host === "0.0.0.0" ? "127.0.0.1" : host;
        const res = await fetch(`http://${target}:${portOf(s)}/admin/ocsp`, {
          headers: "token" in admin ? { authorization: `Bearer ${TOKEN}` } : {},
        });
        expect(res.status).toBe(200);
      } finally {
        await s.stop();
      }
    }
  });

  it("ocsp-stapler refuses such a config in one line, exit 1", async () => {
    const r = await stapler(
      "exposed",
      `${certLine({ cert: leaf.certFile, key: leaf.keyFile, chain: leaf.chainFile })}admin: { host: 0.0.0.0 }\npersist: false\n`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ocsp-stapler: refusing to serve the admin endpoint without a token on 0\.0\.0\.0, .*admin\.allow_unauthenticated: true/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const checked = await stapler(
      "exposed",
      `${certLine({ cert: leaf.certFile, key: leaf.keyFile, chain: leaf.chainFile })}admin: { host: 0.0.0.0 }\npersist: false\n`,
      ["--check"],
    );
    expect(checked.stderr).toBe(r.stderr);
  });
});

describe("browsers cannot drive the stapler's admin endpoint", () => {
  const post = (s: StartedStaplingServer, path: string, headers: Record<string, string>) =>
    rawRequest({ port: portOf(s), method: "POST", path, headers });

  it("refuses a POST from another Origin with 403 JSON, and a foreign Host with 421", async () => {
    for (const path of ["/admin/ocsp/query", "/admin/reload"]) {
      const evil = await post(open, path, { origin: "https://evil.example" });
      expect(evil.status).toBe(403);
      expect(json(evil.body).error).toMatch(/cross-origin POST refused/);
      const rebound = await post(open, path, { host: `evil.example:${portOf(open)}` });
      expect(rebound.status).toBe(421);
      expect(json(rebound.body).error).toMatch(/DNS rebinding/);
    }
    expect((await post(open, "/admin/ocsp/query", { origin: `http://127.0.0.1:${portOf(open)}` })).status).toBe(200);
    expect((await post(open, "/admin/ocsp/query", {})).status).toBe(200);
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await post(guarded, "/admin/ocsp/query", { host: `stapler.lab:${portOf(guarded)}`, ...auth })).status).toBe(200);
    expect((await post(guarded, "/admin/ocsp/query", { origin: "https://evil.example", ...auth })).status).toBe(403);
  });

  it("/metrics needs the token when there is one, and answers scrapers under any name", async () => {
    expect(
      (await rawRequest({ port: portOf(open), method: "GET", path: "/metrics", headers: { host: "scraped.lab" } })).status,
    ).toBe(200);
    expect((await fetch(`${guarded.adminUrl}/metrics`)).status).toBe(401);
    const ok = await fetch(`${guarded.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("ocsp_staple_state");
  });

  it("refuses an unknown query parameter or a body with 400 naming it", async () => {
    const misspelt = await fetch(`${open.adminUrl}/admin/ocsp/query?seriall=${leaf.serial}`, { method: "POST" });
    expect(misspelt.status).toBe(400);
    expect(await misspelt.json()).toMatchObject({ field: "seriall" });
    const body = await fetch(`${open.adminUrl}/admin/ocsp/query`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ serial: leaf.serial }),
    });
    expect(body.status).toBe(400);
    expect(((await body.json()) as { error: string }).error).toMatch(/unknown key "serial" in the body.*\?serial=/);
    const answer = await headOnlyRequest({
      port: portOf(open),
      method: "POST",
      path: "/admin/reload",
      contentLength: 50 * 1024 * 1024,
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);
  });
});

describe("ocsp-stapler start-up errors, one line each, exit 1", () => {
  it("names a key given as the certificate without printing it", async () => {
    const r = await stapler("swapped", `${certLine({ cert: leaf.keyFile, key: leaf.keyFile })}persist: false\n`, ["--check"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `ocsp-stapler: no PEM certificate in ${JSON.stringify(leaf.keyFile)}: it holds a private key, not a certificate: are cert and key swapped?\n`,
    );
    const key = await fs.readFile(leaf.keyFile, "utf8");
    const body = key.split("\n")[1]!;
    expect(r.stderr).not.toContain(body.slice(0, 12));
    expect(r.stderr).not.toContain("BEGIN");
    const certAsKey = await stapler(
      "cert-as-key",
      `${certLine({ cert: leaf.fullchainFile, key: leaf.certFile })}persist: false\n`,
      ["--check"],
    );
    expect(certAsKey.stderr).toBe(
      `ocsp-stapler: no PEM private key in ${JSON.stringify(leaf.certFile)}: it holds a certificate, not a private key: are cert and key swapped?\n`,
    );
  });

  it("an unreadable key file", async () => {
    const file = join(lab.dir, "unreadable.yaml");
    await fs.writeFile(file, `${certLine({ cert: leaf.fullchainFile, key: leaf.keyFile })}persist: false\n`);
    await deny(leaf.keyFile, 0o000, [lab.dir]);
    try {
      const r = await runDenied(process.execPath, [STAPLER_BIN, "--config", file, "--check"], { cwd: dirname(STAPLER_BIN) });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `ocsp-stapler: cannot read key file ${JSON.stringify(leaf.keyFile)}: permission denied (EACCES): make it readable by the user the stapler runs as (ls -l shows its owner and mode)\n`,
      );
    } finally {
      await fs.chmod(leaf.keyFile, 0o600);
    }
  });

  it("a state_dir that is a file, and one that is read-only", async () => {
    const asFile = join(lab.dir, "state-file");
    await fs.writeFile(asFile, "");
    const r = await stapler(
      "state-file",
      `${certLine({ cert: leaf.fullchainFile, key: leaf.keyFile })}state_dir: ${asFile}\nadmin: false\n`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `ocsp-stapler: state folder ${asFile}: cannot create the folder ${asFile}/staples: part of that path is a file, not a folder (ENOTDIR): give a folder; or give another state_dir, or persist: false\n`,
    );

    const readOnly = join(lab.dir, "read-only");
    await fs.mkdir(readOnly);
    const file = join(lab.dir, "read-only.yaml");
    await fs.writeFile(file, `${certLine({ cert: leaf.certFile, key: leaf.certFile })}state_dir: ${readOnly}\nadmin: false\n`);
    await deny(readOnly, 0o555, [lab.dir]);
    const ro = await runDenied(process.execPath, [STAPLER_BIN, "--config", file], { cwd: dirname(STAPLER_BIN) });
    expect(ro.code).toBe(1);
    expect(ro.stderr).toMatch(
      new RegExp(
        `^ocsp-stapler: state folder ${readOnly}: permission denied: cannot create the folder ${readOnly}/staples \\(EACCES\\): ls -ld ${readOnly} shows its owner and mode; .*or give another state_dir, or persist: false\\n$`,
      ),
    );
  });

  it("a port in use", async () => {
    const holder = createServer();
    holder.listen(0, "127.0.0.1");
    await once(holder, "listening");
    const port = (holder.address() as { port: number }).port;
    try {
      const r = await stapler(
        "taken",
        `${certLine({ cert: leaf.fullchainFile, key: leaf.keyFile })}listen: { port: ${port} }\npersist: false\nlog_level: silent\n`,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `ocsp-stapler: port ${port} on 127.0.0.1 is in use by another process (EADDRINUSE): stop that process (ss -ltnp shows it) or choose another port with listen.port (--port), 0 for any free one\n`,
      );
    } finally {
      holder.close();
    }
  });

  it("an unknown config key, named with the file", async () => {
    const r = await stapler("misspelt", `${certLine({ cert: leaf.certFile, key: leaf.keyFile })}admin: { tokn: abcdefgh123 }\n`, [
      "--check",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ocsp-stapler: config .*misspelt\.yaml: admin\.tokn: unknown key "tokn": misspelt, or not a key here\n$/,
    );
  });
});
