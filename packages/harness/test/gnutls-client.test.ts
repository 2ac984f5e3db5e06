import { afterAll, beforeAll, expect, it } from "vitest";
import { GnutlsClient, OcspLab, type StartedOcspLab } from "@ocsp-lab/harness";
import { describeWithPeer } from "../../../test-support/index.js";

let lab: StartedOcspLab;
const gnutls = new GnutlsClient();

describeWithPeer("gnutls-cli", "gnutls-bin")("GnutlsClient (gnutls-cli --ocsp) against a lab", () => {
  beforeAll(async () => {
    lab = await new OcspLab().withPolicy({ query_frequency: 60 }).start();
  });
  afterAll(async () => lab?.stop());

  it("connects on a good staple and refuses a revoked one", async () => {
    expect(await gnutls.available()).toEqual({ ok: true });
    const good = await gnutls.probe(lab);
    expect(good).toMatchObject({ client: "gnutls", outcome: "connected", detail: "staple good" });
    const leaf = await lab.issue();
    await using server = await lab.serve(leaf);
    await lab.revoke(leaf, "keyCompromise");
    await lab.staple(server).becomes("revoked");
    const revoked = await gnutls.probe(server);
    expect(revoked.outcome).toBe("refused: revoked");
    expect(revoked.detail).toMatch(/^- Status: The certificate is NOT trusted\. The certificate chain is revoked\./);
  });

  it("accepts an unknown staple; without a staple asks the responder itself, and refuses when it cannot", async () => {
    const leaf = await lab.issue();
    lab.responder.set(leaf, "unknown");
    await using stapled = await lab.serve(leaf);
    await lab.staple(stapled).becomes("unknown");
    expect(await gnutls.probe(stapled)).toMatchObject({ outcome: "connected", detail: "staple unknown" });

    await using bare = await lab.serve(leaf, { stapleSource: "none" });
    const asked = await gnutls.probe(bare);
    expect(asked.outcome).toBe("connected");
    expect(asked.detail).toMatch(/^no staple; its own query: OCSP server flags certificate not revoked/);
    expect(lab.requests(leaf).length).toBeGreaterThan(0);

    lab.responder.set(leaf, "down");
    const down = await gnutls.probe(bare);
    expect(down.outcome).toBe("refused: no staple, own OCSP query failed");
    expect(down.detail).toContain("Cannot contact OCSP server");
  });
});
