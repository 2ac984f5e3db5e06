/**
 * A responder started from its config whose CA store is corrupted while it runs: it logs the
 * failed reload (error, with the file and the reason) and keeps answering from the last good
 * state, checked with `openssl ocsp`; a repaired store is followed again.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { Writable } from "node:stream";
import { join } from "node:path";
import { CertificateAuthority } from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import { responderConfigSchema, startFromConfig, type StartedOcspResponder } from "@ocsp-lab/responder";
import { eventually, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
let responder: StartedOcspResponder | undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await responder?.stop();
  responder = undefined;
  await cleanup();
});

function lineSink(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  let partial = "";
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      const parts = (partial + String(chunk)).split("\n");
      partial = parts.pop()!;
      for (const l of parts) if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
      callback();
    },
  });
  return { stream, lines };
}

async function replaceFile(file: string, text: string): Promise<void> {
  await fs.writeFile(`${file}.edit`, text);
  await fs.rename(`${file}.edit`, file);
}

describe("a responder whose ca.json is corrupted while it runs", () => {
  it("logs the failed reload with the file and the reason, and keeps serving the last good state", async () => {
    const stateDir = join(dir, "ca");
    const ca = await CertificateAuthority.init(stateDir);
    const leaf = await ca.issueServer();
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    const { stream, lines } = lineSink();
    responder = await startFromConfig(
      { ...responderConfigSchema.parse({ cas: [stateDir] }), file: "inline" },
      { destination: stream, env: {} },
    );
    const ask = async (): Promise<string> =>
      (
        await run("openssl", [
          "ocsp",
          "-issuer",
          ca.rootFile,
          "-cert",
          leaf.certFile,
          "-url",
          responder!.url,
          "-CAfile",
          ca.rootFile,
        ])
      ).stdout;
    expect(await ask()).toContain(": revoked");

    const file = join(stateDir, "ca.json");
    const good = await fs.readFile(file, "utf8");
    await replaceFile(file, '{"version":1,"generation":99,"root":"ab","ocspSigner":"ab","certificates":{}}');
    const logged = await eventually(
      () => lines.find((l) => l.msg === "cannot reload the CA store; serving its last good state"),
      (l) => l !== undefined,
      10_000,
      "the reload error in the log",
    );
    expect(logged).toMatchObject({
      level: 50,
      file,
      code: "OCSP_LAB_CA_STATE_CORRUPT",
      reason: `CA database ${file} is unusable: "root" names serial ab, which has no record in "certificates"`,
    });
    expect(await ask()).toContain(": revoked");

    // Repaired, then changed by another process: followed again.
    await replaceFile(file, good);
    const other = await (await CertificateAuthority.open(stateDir)).issueServer();
    await (await CertificateAuthority.open(stateDir)).revoke(other.serial, { reason: CRLReason.superseded });
    await eventually(
      async () =>
        (
          await run("openssl", [
            "ocsp",
            "-issuer",
            ca.rootFile,
            "-cert",
            other.certFile,
            "-url",
            responder!.url,
            "-CAfile",
            ca.rootFile,
          ])
        ).stdout,
      (out) => out.includes(": revoked"),
      10_000,
      "the responder to follow the repaired store",
    );
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
  });
});
