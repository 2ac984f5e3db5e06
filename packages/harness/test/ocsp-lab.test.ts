/**
 * The lab as a library: OcspLab → StartedOcspLab, driven by real TLS handshakes of the strict
 * Node client against the lab's stapling servers. Waits are on the stapler's events
 * (staple().becomes) or the responder's request log; behaviour over time on a ManualClock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { once } from "node:events";
import { connect } from "node:net";
import { join } from "node:path";
import { CRLReason, ManualClock, systemClock } from "@ocsp-lab/ocsp";
import { aiaOcspUrl } from "@ocsp-lab/stapler";
import { LabServer, NodeStrictClient, OcspLab, type StartedOcspLab, type TlsTarget } from "@ocsp-lab/harness";
import { tempDir } from "../../../test-support/index.js";

const node = new NodeStrictClient();
const outcome = async (target: TlsTarget): Promise<string> => (await node.probe(target)).outcome;

/** A lab that fails fast: one failed query drops the staple, a hung query times out after 1 s of the lab's clock. */
const FAST_FAILURE = { recovery_max_tries: 1, response_timeout: 1, query_frequency: 3600 };

describe("OcspLab, one lab shared by the cases", () => {
  let lab: StartedOcspLab;
  beforeAll(async () => {
    lab = await new OcspLab().withKeyType("ecdsa-p256").withPolicy({ query_frequency: 2 }).start();
  });
  afterAll(async () => lab.stop());

  it("starts with a default localhost server the strict client connects to (the lab is a TlsTarget)", async () => {
    expect(lab.host).toBe("127.0.0.1");
    expect(lab.servername).toBe("localhost");
    expect(lab.url).toBe(`https://127.0.0.1:${lab.port}`);
    expect(await fs.readFile(lab.caFile, "utf8")).toBe(lab.caPem);
    expect(aiaOcspUrl(lab.leaf.certificate)).toBe(lab.responderUrl);
    expect(lab.staple(lab.leaf).state).toBe("good");
    expect(await outcome(lab)).toBe("connected");
    expect(lab.requests(lab.leaf).map((r) => r.outcome)).toContain("good");
  });

  it("issue → serve → good, then revoke(keyCompromise) → revoked, seen in a handshake and in the request log", async () => {
    const leaf = await lab.issue({ dnsNames: ["localhost"] });
    expect(aiaOcspUrl(leaf.certificate)).toBe(lab.responderUrl);
    const server = await lab.serve(leaf);
    expect(server.port).not.toBe(lab.port);
    expect(server.servername).toBe("localhost");
    expect((await lab.staple(leaf).becomes("good")).staple).toBe("good");
    expect(await outcome(server)).toBe("connected");

    const record = await lab.revoke(leaf, "keyCompromise");
    expect(record.revocation?.reason).toBe(CRLReason.keyCompromise);
    const snap = await lab.staple(leaf).becomes("revoked");
    expect(snap.staple).toBe("revoked");
    expect(await outcome(server)).toBe("refused: revoked");
    expect(lab.requests(leaf).at(-1)?.outcome).toBe("revoked");
    // The default server is a different certificate: untouched.
    expect(await outcome(lab)).toBe("connected");
  });

  it("a pending becomes() queries again when the lab revokes meanwhile (no query_frequency wait)", async () => {
    const leaf = await lab.issue();
    const server = await lab.serve(leaf, { policy: { query_frequency: 3600 } });
    const revoked = lab.staple(server).becomes("revoked");
    await lab.revoke(leaf, 4); // superseded, by code
    expect((await revoked).staple).toBe("revoked");
    expect(await outcome(server)).toBe("refused: revoked");
  });

  it("responder.set: unknown, revoked, clear and a raw action, each seen at once (no query_frequency wait)", async () => {
    const leaf = await lab.issue();
    // An hour between regular queries: each state must come from becomes()' own queries.
    const server = await lab.serve(leaf, { policy: { query_frequency: 3600 } });
    lab.responder.set(leaf, "unknown");
    await lab.staple(leaf).becomes("unknown");
    expect(await outcome(server)).toBe("refused: unknown");

    lab.responder.set(leaf, "revoked", { reason: "cessationOfOperation" });
    await lab.staple(leaf).becomes("revoked");
    expect(lab.ca.status(leaf.serial).status).toBe("good"); // an override, not the CA's record

    lab.responder.clear(leaf);
    await lab.staple(leaf).becomes("good");
    expect(await outcome(server)).toBe("connected");

    lab.responder.set(leaf, { kind: "responseStatus", responseStatus: "internalError" });
    await expect(lab.staple(leaf).becomes("revoked", { timeoutMs: 500 })).rejects.toMatchObject({
      code: "OCSP_LAB_STAPLE_TIMEOUT",
    });
    // Waiting for revoked made one query: the verified stapler keeps its good staple through one failure (recovery_max_tries 5).
    expect(await outcome(server)).toBe("connected");
    lab.responder.set(leaf, "clear");
  });

  it("a staple with a bad signature, stapled as received, is refused by the strict client", async () => {
    const leaf = await lab.issue();
    lab.responder.set(leaf, "flaw bad-signature");
    await using server = await lab.serve(leaf, { stapleSource: "as-received" });
    expect(server).toBeInstanceOf(LabServer);
    expect(lab.staple(leaf).snapshot().verifyError).toBeDefined();
    expect(await outcome(server)).toBe("refused: bad signature");
  });

  it("a stapler told to staple nothing: becomes('none'), refused for no staple", async () => {
    await using server = await lab.serve(await lab.issue(), { stapleSource: "none" });
    await lab.staple(server).becomes("none");
    expect(await outcome(server)).toBe("refused: no staple");
  });

  it("rejects with a clear error naming what the stapler served when the staple never comes", async () => {
    const leaf = await lab.issue();
    await using _server = await lab.serve(leaf);
    lab.responder.set(leaf, "revoked");
    const err = await lab
      .staple(leaf)
      .becomes("good", { timeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "StapleTimeoutError", code: "OCSP_LAB_STAPLE_TIMEOUT" });
    expect(String((err as Error).message)).toMatch(
      new RegExp(`serial ${leaf.serial} at 127\\.0\\.0\\.1:\\d+: no "good" staple within 500 ms; the stapler served revoked`),
    );
  });

  it("errors carry stable codes and the offending value", async () => {
    const stranger = await lab.issue();
    expect(() => lab.staple(stranger)).toThrow(expect.objectContaining({ code: "OCSP_LAB_STATE" }));
    expect(() => lab.staple(stranger)).toThrow(stranger.serial);
    expect(() => lab.responder.set(stranger, "sideways")).toThrow(
      expect.objectContaining({ code: "OCSP_LAB_USAGE", message: expect.stringContaining('"sideways"') }),
    );
    expect(() => lab.responder.set(stranger, "good", { reason: 1 })).toThrow(expect.objectContaining({ code: "OCSP_LAB_USAGE" }));
    await expect(lab.revoke(stranger, "bogus")).rejects.toThrow(/bogus/);
    await expect(lab.staple(lab.leaf).becomes("great" as "good")).rejects.toMatchObject({ code: "OCSP_LAB_USAGE" });
    expect(() => new OcspLab().withResponseValidity(-1)).toThrow(
      expect.objectContaining({ code: "OCSP_LAB_OPTION", message: expect.stringContaining("-1") }),
    );
    expect(() => new OcspLab().withKeyType("dsa-1024")).toThrow(/dsa-1024/);
    expect(() => new OcspLab().withPolicy({ query_frequency: -2 })).toThrow(/query_frequency/);
  });
});

describe("OcspLab on a ManualClock", () => {
  const clock = new ManualClock(Math.floor(systemClock.now().getTime() / 1000) * 1000);
  let lab: StartedOcspLab;
  beforeAll(async () => {
    lab = await new OcspLab().withClock(clock).withPolicy(FAST_FAILURE).withDefaultLeaf(false).start();
  });
  afterAll(async () => lab.stop());

  it("has no default server when told so", () => {
    expect(() => lab.port).toThrow(expect.objectContaining({ code: "OCSP_LAB_STATE" }));
  });

  it("a hanging responder: the query times out on the lab's clock, the staple is dropped", async () => {
    const leaf = await lab.issue();
    const server = await lab.serve(leaf);
    lab.responder.set(leaf, { kind: "hang" });
    const before = lab.requests(leaf).length;
    const none = lab.staple(leaf).becomes("none");
    await lab.responder.waitForRequests(leaf, { count: before + 1 });
    expect(lab.staple(leaf).state).toBe("good"); // still: response_timeout has not passed on the lab's clock
    await clock.advance(1000);
    const snap = await none;
    expect(snap.lastFetch?.error).toMatch(/no answer from .* within 1000 ms/);
    expect(lab.requests(leaf).at(-1)?.outcome).toBe("fault:hang");
    expect(await new NodeStrictClient({ clock }).probe(server)).toMatchObject({ outcome: "refused: no staple" });
  });

  it("query: false waits for the stapler's own schedule (query_frequency on the lab's clock)", async () => {
    const leaf = await lab.issue();
    await lab.serve(leaf, { policy: { ...FAST_FAILURE, query_frequency: 60 } });
    await lab.ca.revoke(leaf.serial); // behind the lab's back: no wake-up
    const revoked = lab.staple(leaf).becomes("revoked", { query: false });
    const before = lab.requests(leaf).length;
    await clock.advance(59_000);
    expect(lab.requests(leaf).length).toBe(before);
    await clock.advance(1000);
    expect((await revoked).staple).toBe("revoked");
  });

  it("the down state (connection reset) drops the staple after recovery_max_tries", async () => {
    const leaf = await lab.issue();
    const server = await lab.serve(leaf, { policy: { ...FAST_FAILURE, recovery_max_tries: 3 } });
    lab.responder.set(leaf, "down");
    const before = lab.requests(leaf).length;
    const snap = await lab.staple(leaf).becomes("none");
    // Three queries back to back, not three recovery_frequency (60 s) apart: the clock did not move.
    expect(snap.consecutiveFailures).toBe(3);
    expect(
      lab
        .requests(leaf)
        .slice(before)
        .map((r) => r.outcome),
    ).toEqual(["fault:reset", "fault:reset", "fault:reset"]);
    expect(await new NodeStrictClient({ clock }).probe(server)).toMatchObject({ outcome: "refused: no staple" });
  });
});

describe("OcspLab lifecycle", () => {
  it("await using stops everything and removes the temp folder; stop() is idempotent", async () => {
    let dir: string;
    let target: TlsTarget;
    let pending: Promise<unknown>;
    {
      await using lab = await new OcspLab().withPolicy({ query_frequency: 3600 }).start();
      dir = lab.stateDir;
      target = { host: lab.host, port: lab.port, servername: lab.servername, caFile: lab.caFile };
      expect(await outcome(target)).toBe("connected");
      lab.responder.set(lab.leaf, "revoked");
      await lab.staple(lab.leaf).becomes("revoked");
      pending = lab
        .staple(lab.leaf)
        .becomes("good", { timeoutMs: 30_000 })
        .catch((e: unknown) => e);
      await lab.stop();
      await lab.stop();
      await expect(lab.issue()).rejects.toMatchObject({ code: "OCSP_LAB_STATE" });
    }
    expect(await pending).toMatchObject({ code: "OCSP_LAB_STATE", message: expect.stringContaining("stopped") });
    await expect(fs.stat(dir)).rejects.toMatchObject({ code: "ENOENT" });
    const refused = connect({ host: target.host, port: target.port });
    const [err] = (await once(refused, "error")) as [NodeJS.ErrnoException];
    expect(err.code).toBe("ECONNREFUSED");
  });

  it("withStateDir keeps the CA and reopens it in the next lab", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const stateDir = join(dir, "ca");
      let root: string;
      {
        await using lab = await new OcspLab().withStateDir(stateDir).withKeyType("rsa-2048").start();
        root = lab.caPem;
        expect(lab.leaf.certificate.publicKey.algorithm.name).toBe("RSASSA-PKCS1-v1_5");
      }
      await using again = await new OcspLab().withStateDir(stateDir).start();
      expect(again.caPem).toBe(root);
      expect(await outcome(again)).toBe("connected");
    } finally {
      await cleanup();
    }
  });
});
