import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { BUILT_IN_SCENARIO_DIR, builtInScenarios, loadScenarioFile, main, parseDuration, startLab } from "@ocsp-lab/harness";
import { inProcess, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

async function mainCaptured(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(main, argv, { env: { OCSP_LAB_HOME: dir }, stopSignal: () => new Promise<string>(() => undefined) });
}

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

describe("parseDuration", () => {
  it("reads ms, s, m and h into whole milliseconds", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("0s")).toBe(0);
    expect(parseDuration("2s")).toBe(2000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("0.1h")).toBe(360_000);
  });

  it("refuses other units, missing units, signs, spaces and fractions of a millisecond", () => {
    for (const bad of ["3 sec", "3sec", "2", "2d", "-1s", "s", "", "1.5ms", "1e3ms", "2 s"])
      expect(parseDuration(bad), bad).toBeUndefined();
    for (const bad of [2, null, undefined, {}]) expect(parseDuration(bad)).toBeUndefined();
  });
});

describe("built-in scenario files", () => {
  it("load in file-name order with the names, expectations and stapler texts of the report", async () => {
    const files = (await fs.readdir(BUILT_IN_SCENARIO_DIR)).sort();
    const scenarios = await builtInScenarios();
    expect(scenarios.map((s) => s.file)).toEqual(files.map((f) => join(BUILT_IN_SCENARIO_DIR, f)));
    // The catalogue opens with the eight scenarios of the README's table, in this order.
    expect(scenarios.slice(0, 8).map((s) => s.name)).toEqual([
      "good",
      "revoked",
      "unknown",
      "responder-down",
      "recovers-within-max-tries",
      "slow-responder",
      "nginx-lazy",
      "apache-fake-trylater",
    ]);
    expect(scenarios.slice(0, 8).map((s) => s.staplerExpected)).toEqual([
      "staple good",
      "staple revoked",
      "staple unknown",
      "invalidated after 3 failed queries, retried every 0.2 s",
      "2 failed queries, staple kept, restored",
      "invalidated after 3 timeouts, retried every 0.2 s",
      "no staple at start, first handshake refused: no staple, then staple good",
      "staple tryLater (made-up)",
    ]);
    for (const s of scenarios) {
      expect(s.description.length, s.name).toBeGreaterThan(20);
      // Every scenario says what node, curl and openssl see; gnutls only where it does not connect.
      expect(
        Object.keys(s.expect)
          .filter((k) => k !== "gnutls")
          .sort(),
        s.name,
      ).toEqual(["curl", "node", "openssl"]);
    }
    expect(scenarios.find((s) => s.name === "unknown")!.expect.gnutls).toBeUndefined();
    expect(scenarios.find((s) => s.name === "revoked")!.expect).toEqual({
      node: "refused: revoked",
      curl: "refused: revoked",
      openssl: "staple: revoked",
      gnutls: "refused: revoked",
    });
    expect(scenarios.find((s) => s.name === "nginx-lazy")!.policy).toMatchObject({ mode: "lazy", query_frequency: 1 });
  });
});

describe("ocsp-lab run --list", () => {
  it("lists every built-in scenario with its description, in order", async () => {
    const r = await mainCaptured(["run", "--list"]);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual((await builtInScenarios()).map((s) => s.name));
    expect(lines[1]).toMatch(/^revoked +the certificate is revoked \(keyCompromise\) in the CA; /);
  });
});

describe("a scenario file", () => {
  it("expands client classes, a client's own entry winning, and defaults the check's text from the policy", async () => {
    const file = await write(
      "classes.yaml",
      [
        "name: classes",
        "description: a class expectation for strict clients, overridden for curl",
        "policy: { recovery_max_tries: 4, recovery_frequency: 0.5 }",
        "timeline: [{ at: 0s, responder: down }]",
        "stapler_check: invalidation",
        "expect:",
        '  strict: "refused: no staple"',
        "  soft-fail: no staple",
        "  curl: connected",
        "",
      ].join("\n"),
    );
    const s = await loadScenarioFile(file);
    expect(s.expect).toEqual({ node: "refused: no staple", curl: "connected", openssl: "no staple" });
    expect(s.staplerExpected).toBe("invalidated after 4 failed queries, retried every 0.5 s");
  });

  it("gives the stapler its staple_source: verified by default, bytes from base64, a file relative to the scenario file", async () => {
    const head = "name: src\ndescription: a staple source for testing clients\nstapler_check: unverified-staple\n";
    const tail = "expect: { stapler: no staple (none) }\n";
    expect((await loadScenarioFile(await write("default.yaml", `${head}${tail}`))).stapleSource).toEqual({ kind: "verified" });
    expect((await loadScenarioFile(await write("none.yaml", `${head}staple_source: none\n${tail}`))).stapleSource).toEqual({
      kind: "none",
    });
    const bytes = await loadScenarioFile(
      await write("bytes.yaml", `${head}staple_source: { kind: bytes, base64: MAMKAQM= }\n${tail}`),
    );
    expect(bytes.stapleSource).toEqual({ kind: "bytes", der: new Uint8Array([0x30, 0x03, 0x0a, 0x01, 0x03]) });
    const file = await loadScenarioFile(
      await write("file.yaml", `${head}staple_source: { kind: file, path: staple.der }\n${tail}`),
    );
    expect(file.stapleSource).toEqual({ kind: "file", path: join(dir, "staple.der") });
  });

  it("keeps what the clients' documentation says, per client", async () => {
    const file = await write(
      "documented.yaml",
      [
        "name: documented",
        "description: an expectation backed by a manual page",
        "stapler_check: unverified-staple",
        "expect: { stapler: no staple (none), openssl: no staple }",
        'documented: { openssl: "openssl-s_client(1): -status prints the response" }',
        "",
      ].join("\n"),
    );
    expect((await loadScenarioFile(file)).documented).toEqual({ openssl: "openssl-s_client(1): -status prints the response" });
  });

  it("of the catalogue's client-validation cases cite the documentation of every client that does not refuse", async () => {
    for (const s of await builtInScenarios()) {
      if (s.stapleSource.kind === "verified") continue;
      for (const [client, outcome] of Object.entries(s.expect)) {
        if (client !== "node" && !outcome.startsWith("refused:"))
          expect(s.documented[client], `${s.name}/${client}`).toBeDefined();
      }
      // A staple the strict client accepts is a documented exception (several SingleResponses...).
      if (s.documented.node === undefined) expect(s.expect.node, s.name).toMatch(/^refused: /);
    }
  });

  it.each([
    [
      "timeline.1.at",
      'timeline: [{ at: 0s, responder: down }, { at: "3 sec", responder: normal }]',
      '"3 sec" is not a duration like 250ms, 2s or 1h',
    ],
    [
      "timeline.0",
      "timeline: [{ at: 0s, responder: down, http: 500 }]",
      "give exactly one action of responder, http, responseStatus, delay, revoke, revoke_issuer, release, status, flaw, not responder and http",
    ],
    [
      "timeline.0",
      "timeline: [{ at: 1s }]",
      "give exactly one action of responder, http, responseStatus, delay, revoke, revoke_issuer, release, status, flaw (or only an expect)",
    ],
    [
      "timeline.0.expect",
      "timeline: [{ at: 0s, before_start: true, responder: unknown, expect: { node: connected } }]",
      "a before_start step has no expect: no client can connect yet",
    ],
    [
      "timeline.0.expect.stapler",
      "timeline: [{ at: 1s, expect: { stapler: staple good } }]",
      'unknown key "stapler": misspelt, or not a key here',
    ],
    [
      "timeline.0.revoke_issuer",
      "timeline: [{ at: 0s, revoke_issuer: cACompromise }]",
      "revoke_issuer revokes the intermediate that issued the certificate: give certificate: { issuer: intermediate }",
    ],
    [
      "response_validity",
      "response_validity: 1500ms\nstapler_check: in-handshake\ntimeline: []",
      "give whole seconds, at least 1s (the responder's nextUpdate − thisUpdate)",
    ],
    ["timeline.0.at", "timeline: [{ at: 1s, before_start: true, responder: unknown }]", "a before_start step is at 0s"],
    [
      "timeline.1.before_start",
      "timeline: [{ at: 0s, responder: down }, { at: 0s, before_start: true, responder: unknown }]",
      "before_start steps come before every other step",
    ],
    [
      "expect.stapler",
      "stapler_check: staple-sequence\ntimeline: []",
      'with stapler_check staple-sequence, give the states in order, like "staple good, revoked"',
    ],
    [
      "timeline.0.revoke",
      "timeline: [{ at: 0s, revoke: sorry }]",
      'unknown CRLReason "sorry": use one of unspecified, keyCompromise',
    ],
    [
      "staple_source",
      "staple_source: sometimes\ntimeline: []",
      "give verified, as-received, none, { kind: bytes, base64: <DER in base64> } or { kind: file, path: staple.der }",
    ],
    [
      "documented.firefox",
      "stapler_check: in-handshake\ndocumented: { firefox: accepts }\ntimeline: []",
      'unknown key "firefox": misspelt, or not a key here',
    ],
    [
      "expect.stapler",
      "timeline: []",
      'with stapler_check staple-status, give "staple good", "staple revoked", "staple revoked (<reason>)" or "staple unknown"',
    ],
    [
      "timeline.0.save_session",
      "timeline: [{ at: 0s, save_session: yes, expect: { node: connected } }]\nexpect_resumed: { node: connected }",
      "Invalid input: expected true",
    ],
    [
      "timeline.0.save_session",
      "timeline: [{ at: 0s, revoke: keyCompromise, save_session: true }]\nexpect_resumed: { node: connected }",
      "a save_session step has an expect: the handshakes it judges are the ones that keep their sessions",
    ],
    [
      "expect_resumed",
      "stapler_check: in-handshake\ntimeline: [{ at: 0s, expect: { node: connected } }]\nexpect_resumed: { node: connected }",
      "give a timeline step with save_session: true: its handshakes keep the sessions the clients resume",
    ],
    [
      "timeline.0.save_session",
      "timeline: [{ at: 0s, save_session: true, expect: { node: connected } }]",
      "nothing resumes the sessions it keeps: give expect_resumed",
    ],
    [
      "timeline.1.save_session",
      "timeline:\n  - { at: 0s, save_session: true, expect: { node: connected } }\n  - { at: 1s, save_session: true, expect: { node: connected } }\nexpect_resumed: { node: connected }",
      "only one step keeps the sessions (step 0 does already)",
    ],
    [
      "expect_resumed.stapler",
      "stapler_check: in-handshake\ntimeline: [{ at: 0s, save_session: true, expect: { node: connected } }]\nexpect_resumed: { stapler: staple good }",
      'unknown key "stapler": misspelt, or not a key here',
    ],
  ])("with a bad %s gets one line naming the file and the field, exit 2", async (field, timeline, problem) => {
    const file = await write("bad.yaml", `name: bad\ndescription: a bad file\n${timeline}\nexpect: { node: connected }\n`);
    const r = await mainCaptured(["run", file, "--client", "node"]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err.split("\n")).toHaveLength(2);
    expect(r.err.startsWith(`ocsp-lab: ${file}: ${field}: ${problem}`), r.err).toBe(true);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("that is missing or not YAML is named in one line", async () => {
    const missing = join(dir, "nope.yaml");
    const r = await mainCaptured(["run", missing]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`ocsp-lab: ${missing}: cannot read it (ENOENT); check the path\n`);
    const broken = await write("broken.yaml", "name: [unclosed\n");
    const b = await mainCaptured(["run", broken]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(new RegExp(`^ocsp-lab: ${broken}: not valid YAML: .*\\n$`));
  });

  it("of the user's own runs end to end through ocsp-lab run, reported as JSON", async () => {
    const file = await write(
      "my-revoked.yaml",
      [
        "name: my-revoked",
        "description: the CA revokes the server certificate with reason superseded",
        "policy: { query_frequency: 1, response_timeout: 1, recovery_frequency: 0.2, recovery_max_tries: 3 }",
        "timeline:",
        "  - at: 0s",
        "    revoke: superseded",
        "expect:",
        "  stapler: staple revoked",
        '  strict: "refused: revoked"',
        "",
      ].join("\n"),
    );
    const r = await mainCaptured(["run", file, "--client", "node", "--json"]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as {
      ok: boolean;
      rows: Array<{ scenario: string; client: string; expected: string; observed: string; verdict: string; detail: string }>;
    };
    expect(report.ok).toBe(true);
    expect(report.rows.map((x) => [x.scenario, x.client, x.expected, x.observed, x.verdict])).toEqual([
      ["my-revoked", "stapler", "staple revoked", "staple revoked", "ok"],
      ["my-revoked", "node", "refused: revoked", "refused: revoked", "ok"],
    ]);
    expect(report.rows[1]!.detail).toMatch(/^staple revoked/);
  });
});

describe("a timeline step's expect", () => {
  it("is judged right after the step, one row per client named with the step's time, and a wrong one is a mismatch", async () => {
    const file = await write(
      "steps.yaml",
      [
        "name: steps",
        "description: two checkpoints around a revocation; the first expects the revocation too early",
        "timeline:",
        '  - { at: 0s, expect: { strict: "refused: revoked" } }',
        "  - { at: 0s, revoke: keyCompromise }",
        '  - { at: 1500ms, expect: { strict: "refused: revoked" } }',
        "expect:",
        "  stapler: staple revoked",
        '  strict: "refused: revoked"',
        "",
      ].join("\n"),
    );
    const r = await mainCaptured(["run", file, "--client", "node", "--json"]);
    expect(r.code, r.err).toBe(1);
    const report = JSON.parse(r.out) as {
      ok: boolean;
      rows: Array<{ client: string; expected: string; observed: string; verdict: string }>;
    };
    expect(report.ok).toBe(false);
    expect(report.rows.map((x) => `${x.client}/${x.expected}/${x.observed}/${x.verdict}`)).toEqual([
      "stapler/staple revoked/staple revoked/ok",
      "node @0s/refused: revoked/connected/MISMATCH",
      "node @1.5s/refused: revoked/refused: revoked/ok",
      "node/refused: revoked/refused: revoked/ok",
    ]);
  });
});

describe("a scenario's expect_resumed", () => {
  it("judges each client's resumption of the session kept at the save_session step, before its fresh handshake; a wrong one is a mismatch", async () => {
    // The naive expectation: a strict client refuses the resumed session too. It cannot: the
    // resumed handshake brings no staple (RFC 8446 §2.2), so the row says what really happened.
    const file = await write(
      "resumed.yaml",
      [
        "name: resumed",
        "description: a session kept before the revocation, resumed after it; expects the resumption refused",
        "timeline:",
        '  - { at: 0s, save_session: true, expect: { node: connected, openssl: "staple: good" } }',
        "  - { at: 0s, revoke: keyCompromise }",
        "expect:",
        "  stapler: staple revoked",
        '  node: "refused: revoked"',
        '  openssl: "staple: revoked"',
        "expect_resumed:",
        '  node: "refused: revoked"',
        '  openssl: "no staple (resumed)"',
        "",
      ].join("\n"),
    );
    const r = await mainCaptured(["run", file, "--client", "node", "openssl", "--json"]);
    expect(r.code, r.err).toBe(1);
    const report = JSON.parse(r.out) as {
      ok: boolean;
      rows: Array<{ client: string; expected: string; observed: string; verdict: string; detail: string }>;
    };
    expect(report.ok).toBe(false);
    expect(report.rows.map((x) => `${x.client}/${x.expected}/${x.observed}/${x.verdict}`)).toEqual([
      "stapler/staple revoked/staple revoked/ok",
      "node @0s/connected/connected/ok",
      "openssl @0s/staple: good/staple: good/ok",
      "node resumed/refused: revoked/connected (resumed, no staple seen)/MISMATCH",
      "node/refused: revoked/refused: revoked/ok",
      "openssl resumed/no staple (resumed)/no staple (resumed)/ok",
      "openssl/staple: revoked/staple: revoked/ok",
    ]);
    expect(report.rows[3]!.detail).toMatch(/^TLSv1\.3 session resumed: no certificate, no staple/);
  });

  it("is absent from a file without it: no resumed rows", async () => {
    const s = (await builtInScenarios()).find((x) => x.name === "revoked")!;
    expect(s.expectResumed).toBeUndefined();
    const resumed = (await builtInScenarios()).find((x) => x.name === "resumed-after-revocation")!;
    expect(resumed.expectResumed).toEqual({
      node: "connected (resumed, no staple seen)",
      curl: "refused: no staple (resumed)",
      openssl: "no staple (resumed)",
    });
  });
});

describe("a scenario's certificate", () => {
  it("key_type and must_staple shape the lab's server certificate", async () => {
    const lab = await startLab({ stateDir: join(dir, "cert"), leaf: { keyType: "rsa-2048", mustStaple: true } });
    try {
      expect(lab.leaf.certificate.publicKey.algorithm.name).toBe("RSASSA-PKCS1-v1_5");
      // RFC 7633 TLS Feature extension (id-pe-tlsfeature), status_request.
      expect(lab.leaf.certificate.getExtension("1.3.6.1.5.5.7.1.24")).not.toBeNull();
    } finally {
      await lab.stop();
    }
  });

  it("runs with a timeline of counted and later steps: unknown for one request, revoked 250 ms in", async () => {
    const file = await write(
      "later.yaml",
      [
        "name: later",
        "description: an RSA must-staple leaf answered unknown once, then revoked in the CA",
        "certificate: { key_type: rsa-2048, must_staple: true }",
        "timeline:",
        "  - { at: 0s, status: unknown, count: 1 }",
        "  - { at: 250ms, revoke: keyCompromise }",
        "expect:",
        "  stapler: staple revoked",
        '  strict: "refused: revoked"',
        "",
      ].join("\n"),
    );
    const r = await mainCaptured(["run", file, "--client", "node", "--json"]);
    expect(r.code, r.out + r.err).toBe(0);
    const report = JSON.parse(r.out) as { rows: Array<{ client: string; observed: string; verdict: string }> };
    expect(report.rows.map((x) => `${x.client}/${x.observed}/${x.verdict}`)).toEqual([
      "stapler/staple revoked/ok",
      "node/refused: revoked/ok",
    ]);
  });
});
