/**
 * An example a user copies into their own project: a private CA, an OCSP responder that
 * misbehaves on demand and a stapling server, all on 127.0.0.1 ephemeral ports in a temp folder,
 * driving the client in ./client.ts through good, revoked, unknown, no staple and a flawed
 * staple. Waits are on the stapler's events, never on sleeps.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import { OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import { StaplingServer, type StapleSourceInput, type StartedStaplingServer } from "@ocsp-lab/stapler";
import { strictConnect } from "./client.js";

let dir: string;
let ca: CertificateAuthority;
let caPem: string;
let responder: StartedOcspResponder;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ocsp-lab-example-"));
  ca = await CertificateAuthority.init(dir);
  caPem = await readFile(ca.rootFile, "utf8");
  responder = await (await OcspResponder.forCa(ca)).start();
});
afterAll(async () => {
  await responder.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh certificate for localhost whose OCSP URL is the lab responder. */
function issue(): Promise<IssuedCertificate> {
  return ca.issueServer({ dnsNames: ["localhost"], ocspUrl: responder.url });
}

/** A stapling server for `leaf`; `start()` resolves once its first staple is in (or it is told not to fetch). */
async function serve(leaf: IssuedCertificate, source: StapleSourceInput = "verified"): Promise<StartedStaplingServer> {
  return (await StaplingServer.fromFiles(leaf)).withAdmin(false).withStapleSource(source).start();
}

const client = (s: StartedStaplingServer) => strictConnect({ host: "127.0.0.1", port: s.port, servername: "localhost", caPem });

describe("my strict client", () => {
  it("connects when the staple says good", async () => {
    await using server = await serve(await issue());
    expect(await client(server)).toEqual({ connected: true });
  });

  it("refuses once the certificate is revoked and the server staples it", async () => {
    const leaf = await issue();
    await using server = await serve(leaf);
    const revoked = once(server, "staple:updated");
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    void server.queryNow(); // as a cron job or the next query_frequency would
    await revoked;
    expect(await client(server)).toEqual({ connected: false, reason: "revoked" });
  });

  it("refuses an unknown certificate", async () => {
    const leaf = await issue();
    responder.setStatus(leaf.serial, { status: "unknown" });
    await using server = await serve(leaf);
    expect(await client(server)).toEqual({ connected: false, reason: "unknown" });
  });

  it("refuses a handshake without a staple", async () => {
    await using server = await serve(await issue(), "none");
    expect(await client(server)).toEqual({ connected: false, reason: "no staple" });
  });

  it("refuses a staple with a bad signature (the server staples what the responder sent)", async () => {
    const leaf = await issue();
    responder.setBehaviour(
      { kind: "serial", serial: leaf.serial },
      { steps: [{ actions: [{ kind: "content", flaw: "bad-signature" }] }] },
    );
    await using server = await serve(leaf, "as-received");
    expect(await client(server)).toEqual({ connected: false, reason: "bad signature" });
  });
});
