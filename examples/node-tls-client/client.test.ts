/**
 * An example a user copies into their own project: one OcspLab (a private CA, an OCSP
 * responder that misbehaves on demand and stapling TLS servers, all on 127.0.0.1 ephemeral
 * ports in a temp folder, no YAML) driving the client in ./client.ts through good, revoked,
 * unknown, no staple, a responder that is down and a flawed staple. Waits are on the
 * stapler's events (`lab.staple(leaf).becomes(...)`), never on sleeps.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OcspLab, type StartedOcspLab, type TlsTarget } from "@ocsp-lab/harness";
import { strictConnect } from "./client.js";

let lab: StartedOcspLab;
beforeAll(async () => {
  // start() also issues a localhost certificate and serves it at lab.host:lab.port.
  lab = await new OcspLab().start();
});
afterAll(async () => lab.stop());

/** My client against a lab server (the lab itself is the default one). */
const client = (server: TlsTarget) =>
  strictConnect({ host: server.host, port: server.port, servername: server.servername, caPem: lab.caPem });

describe("my strict client", () => {
  it("connects when the staple says good", async () => {
    expect(await client(lab)).toEqual({ connected: true });
  });

  it("refuses once the certificate is revoked and the server staples it", async () => {
    const leaf = await lab.issue({ dnsNames: ["localhost"] });
    await using server = await lab.serve(leaf);
    await lab.revoke(leaf, "keyCompromise");
    await lab.staple(leaf).becomes("revoked"); // the stapler queries now; no waiting for query_frequency
    expect(await client(server)).toEqual({ connected: false, reason: "revoked" });
  });

  it("refuses an unknown certificate", async () => {
    const leaf = await lab.issue();
    lab.responder.set(leaf, "unknown"); // the states of `ocsp-lab set`
    await using server = await lab.serve(leaf);
    expect(lab.staple(server).state).toBe("unknown");
    expect(await client(server)).toEqual({ connected: false, reason: "unknown" });
  });

  it("refuses a handshake without a staple", async () => {
    await using server = await lab.serve(await lab.issue(), { stapleSource: "none" });
    expect(await client(server)).toEqual({ connected: false, reason: "no staple" });
  });

  it("refuses once the responder is down long enough for the server to drop its staple", async () => {
    const leaf = await lab.issue();
    await using server = await lab.serve(leaf);
    expect(await client(server)).toEqual({ connected: true });
    lab.responder.set(leaf, "down"); // connections reset
    await lab.staple(leaf).becomes("none"); // recovery_max_tries failed queries, back to back
    expect(await client(server)).toEqual({ connected: false, reason: "no staple" });
  });

  it("refuses a staple with a bad signature (the server staples what the responder sent)", async () => {
    const leaf = await lab.issue();
    lab.responder.set(leaf, "flaw bad-signature");
    await using server = await lab.serve(leaf, { stapleSource: "as-received" });
    expect(await client(server)).toEqual({ connected: false, reason: "bad signature" });
  });
});
