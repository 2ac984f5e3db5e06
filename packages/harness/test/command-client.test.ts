import { promises as fs } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CommandClientError,
  OcspLab,
  commandArgv,
  loadClientFile,
  main,
  parseClientCmd,
  runScenarios,
  splitWords,
  type StartedOcspLab,
} from "@ocsp-lab/harness";
import { describeWithPeer, inProcess, tempDir } from "../../../test-support/index.js";

const JAVA_CLIENT_FILE = new URL("../../../examples/clients/java/java.client.yaml", import.meta.url).pathname;
const JAVA_NO_STAPLE = new URL("../../../examples/clients/java/no-staple.yaml", import.meta.url).pathname;

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir("ocsp-lab-command-client-")));
afterAll(async () => cleanup?.());

async function mainCaptured(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(main, argv, { env: { OCSP_LAB_HOME: dir }, stopSignal: () => new Promise<string>(() => undefined) });
}

describe("a command template", () => {
  it("is split into words as a shell would, without expanding anything", () => {
    expect(splitWords(`my-client --ca '{cafile}' "a \\"b\\" $HOME" c\\ d {host}:{port}`)).toEqual([
      "my-client",
      "--ca",
      "{cafile}",
      'a "b" $HOME',
      "c d",
      "{host}:{port}",
    ]);
    expect(() => splitWords("x 'open")).toThrow(CommandClientError);
  });

  it("gets each value inside its own word; a shell script after -c gets them single-quoted", () => {
    const values = { host: "127.0.0.1", port: "4433", servername: "local host", cafile: "/tmp/it's/ca.pem", dir: "/d" };
    expect(commandArgv(["c", "{host}:{port}", "--sni={servername}", "{{x}}", "{cafile}"], values)).toEqual([
      "c",
      "127.0.0.1:4433",
      "--sni=local host",
      "{x}",
      "/tmp/it's/ca.pem",
    ]);
    expect(commandArgv(["sh", "-c", "client {servername} {cafile}"], values)).toEqual([
      "sh",
      "-c",
      `client 'local host' '/tmp/it'\\''s/ca.pem'`,
    ]);
  });

  it("refuses an unknown placeholder, a template that never says {port}, a taken name, a value without =", () => {
    expect(() => parseClientCmd("x=client {hots} {port}")).toThrow(
      '--client-cmd: unknown placeholder {hots} in "{hots}": use {host}, {port}, {servername}, {cafile}, {dir}',
    );
    expect(() => parseClientCmd("x=client {host}")).toThrow(/never says \{port\}/);
    expect(() => parseClientCmd("curl=curl {port}")).toThrow(/client name "curl" is taken/);
    expect(() => parseClientCmd("client {port}")).toThrow(/give NAME=TEMPLATE/);
  });

  it("of a client that is not installed is a skipped row with the reason; the CLI prints one line for a bad template", async () => {
    const missing = parseClientCmd("ghost=ocsp-lab-no-such-client {host} {port}");
    expect(await missing.available()).toEqual({ ok: false, reason: "ocsp-lab-no-such-client is not installed (not on PATH)" });
    const report = await runScenarios({ scenarios: ["good"], clients: ["node"], commandClients: [missing], jobs: 1 });
    expect(report.rows.find((r) => r.client === "ghost")).toMatchObject({
      verdict: "skipped",
      observed: "-",
      detail: "ocsp-lab-no-such-client is not installed (not on PATH)",
    });
    expect(report.ok).toBe(true);

    const r = await mainCaptured(["run", "--scenario", "good", "--client-cmd", "x=client {nope} {port}"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      'ocsp-lab: --client-cmd: unknown placeholder {nope} in "{nope}": use {host}, {port}, {servername}, {cafile}, {dir} ({{ and }} for literal braces)\n',
    );
  });

  it("in a client file that is wrong gets one line naming the file and the field", async () => {
    const file = join(dir, "bad.client.yaml");
    await fs.writeFile(file, 'name: mine\ncommand: "my-client {port}"\nrefused: [{ output: "(", reason: x }]\n');
    const r = await mainCaptured(["run", "--scenario", "good", "--client-file", file]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `ocsp-lab: ${file}: refused.0.output: not a regular expression: Invalid regular expression: /(/im: Unterminated group\n`,
    );
    await fs.writeFile(file, 'name: mine\ncommand: "my-client {prot}"\n');
    expect((await mainCaptured(["run", "--client-file", file])).err).toMatch(
      new RegExp(`^ocsp-lab: ${file}: command: unknown placeholder \\{prot\\}`),
    );
  });
});

describeWithPeer("curl")("a --client-cmd client against a lab", () => {
  let lab: StartedOcspLab;
  beforeAll(async () => {
    lab = await new OcspLab().withPolicy({ query_frequency: 60 }).start();
  });
  afterAll(async () => lab?.stop());

  it("is connected on exit 0 and refused with the first default reason its output matches", async () => {
    const curl = parseClientCmd(
      "curlcmd=curl -sS -o /dev/null --cert-status --cacert {cafile} --resolve {servername}:{port}:{host} https://{servername}:{port}/",
    );
    expect(await curl.available()).toEqual({ ok: true });
    expect(await curl.probe(lab)).toMatchObject({ client: "curlcmd", outcome: "connected" });
    const leaf = await lab.issue();
    await using server = await lab.serve(leaf);
    await lab.revoke(leaf, "keyCompromise");
    await lab.staple(server).becomes("revoked");
    const revoked = await curl.probe(server);
    expect(revoked.outcome).toBe("refused: revoked");
    expect(revoked.detail).toMatch(/^curl: \(91\) SSL certificate revocation reason/);
  });
});

describeWithPeer("java", "openjdk-17-jdk-headless")("the README's Java client (examples/clients/java) against a lab", () => {
  let lab: StartedOcspLab;
  beforeAll(async () => {
    lab = await new OcspLab().withPolicy({ query_frequency: 60 }).start();
  });
  afterAll(async () => lab?.stop());

  it("connects on a good staple and refuses a revoked or unknown one", async () => {
    const java = await loadClientFile(JAVA_CLIENT_FILE);
    expect(java).toMatchObject({ name: "java", clientClass: "strict" });
    expect(await java.available()).toEqual({ ok: true });
    const good = await java.probe(lab);
    expect(good).toMatchObject({ client: "java", outcome: "connected" });
    expect(good.detail).toMatch(/^connected \(TLSv1\.3, staple: 1 response\(s\)\)$/);

    const revokedLeaf = await lab.issue();
    await using revoked = await lab.serve(revokedLeaf);
    await lab.revoke(revokedLeaf, "keyCompromise");
    await lab.staple(revoked).becomes("revoked");
    const r = await java.probe(revoked);
    expect(r.outcome).toBe("refused: revoked");
    expect(r.detail).toMatch(/Certificate has been revoked, reason: KEY_COMPROMISE/);

    const unknownLeaf = await lab.issue();
    lab.responder.set(unknownLeaf, "unknown");
    await using unknown = await lab.serve(unknownLeaf);
    await lab.staple(unknown).becomes("unknown");
    expect(await java.probe(unknown)).toMatchObject({ outcome: "refused: unknown" });
  });

  it("without a staple asks the responder itself: connected while it answers, refused when it is down", async () => {
    const java = await loadClientFile(JAVA_CLIENT_FILE);
    const leaf = await lab.issue();
    await using bare = await lab.serve(leaf, { stapleSource: "none" });
    const asked = await java.probe(bare);
    expect(asked).toMatchObject({ outcome: "connected", detail: "connected (TLSv1.3, staple: 0 response(s))" });
    expect(lab.requests(leaf).length).toBeGreaterThan(0);
    lab.responder.set(leaf, "down");
    const down = await java.probe(bare);
    expect(down.outcome).toBe("refused: no staple, own OCSP query failed");
    expect(down.detail).toMatch(/Unable to determine revocation status due to network error/);
  });

  it("is judged by its class (node's expectations) and by its name in a scenario file, as the README runs it", async () => {
    const r = await mainCaptured([
      "run",
      JAVA_NO_STAPLE,
      "--scenario",
      "good",
      "revoked",
      "unknown",
      "--client",
      "node",
      "--client-file",
      JAVA_CLIENT_FILE,
      "--reporter",
      "json",
    ]);
    expect(r.code, r.out).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ scenario: string; client: string; expected: string; verdict: string }> })
      .rows;
    expect(rows.filter((x) => x.client.startsWith("java")).map((x) => [x.scenario, x.client, x.expected, x.verdict])).toEqual([
      ["good", "java", "connected", "ok"],
      ["revoked", "java", "refused: revoked", "ok"],
      ["unknown", "java", "refused: unknown", "ok"],
      ["java-no-staple", "java @0s", "connected", "ok"],
      ["java-no-staple", "java", "refused: no staple, own OCSP query failed", "ok"],
    ]);
  });
});
