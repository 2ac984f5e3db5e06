import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { CertificateAuthority, InvalidArgumentError } from "@ocsp-lab/ca";
import { caMain } from "@ocsp-lab/ca/cli";
import { CRLReason, InvalidSerialError } from "@ocsp-lab/ocsp";
import { inProcess, run, tempDir } from "../../../test-support/index.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => cleanup());

/** A 16-byte serial whose first byte is below 0x10, so its hex begins with a 0 digit. */
const SERIAL = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/** The same serial as people type it. */
const FORMS: Array<[string, string]> = [
  ["canonical", SERIAL],
  ["without the leading 0 (odd number of digits)", SERIAL.slice(1)],
  ["with 0x", `0x${SERIAL}`],
  ["uppercase with colons", SERIAL.toUpperCase().match(/../g)!.join(":")],
  ["with a leading 00 byte, as DER carries a serial ≥ 0x80", `00${SERIAL}`],
];

/** Run `ocsp-ca` in-process with captured output. */
async function ocspCa(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return inProcess(caMain, argv, { env: { OCSP_LAB_HOME: dir } });
}

/** Run openssl and fail with its stderr when it exits non-zero. */
async function openssl(args: string[]): Promise<string> {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe("a serial whose hex begins with 0", () => {
  it("is issued as given, stored canonical, and found by every spelling of it", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer({ dnsNames: ["localhost"], serial: SERIAL.toUpperCase() });
    expect(leaf.serial).toBe(SERIAL);
    expect(leaf.certificate.serialNumber).toBe(SERIAL);
    expect(leaf.certFile).toBe(join(dir, "certs", SERIAL, "cert.pem"));
    expect(await openssl(["x509", "-in", leaf.certFile, "-noout", "-serial"])).toBe(`serial=${SERIAL.toUpperCase()}\n`);
    for (const [, form] of FORMS) {
      expect(ca.get(form)?.serial).toBe(SERIAL);
      expect(ca.status(form)).toEqual({ status: "good" });
    }
    // The index of the store and every path use the canonical form only.
    const db = JSON.parse(await fs.readFile(join(dir, "ca.json"), "utf8")) as { certificates: Record<string, unknown> };
    expect(Object.keys(db.certificates)).toContain(SERIAL);
    expect(Object.keys(db.certificates)).not.toContain(SERIAL.slice(1));
  });

  it.each(FORMS)("ocsp-ca show, hold, release and revoke take it %s", async (_label, form) => {
    expect((await ocspCa("init")).code).toBe(0);
    const issued = await ocspCa("issue", "--dns", "localhost", "--serial", SERIAL, "--json");
    expect(issued.code, issued.err).toBe(0);
    expect(JSON.parse(issued.out)).toMatchObject({ serial: SERIAL });

    const shown = await ocspCa("show", form, "--json");
    expect(shown.code, shown.err).toBe(0);
    expect(JSON.parse(shown.out)).toMatchObject({ serial: SERIAL, status: "good" });
    const held = await ocspCa("hold", form);
    expect(held.code, held.err).toBe(0);
    expect(held.out).toContain(`serial ${SERIAL} is on hold`);
    const released = await ocspCa("release", form);
    expect(released.code, released.err).toBe(0);
    expect(released.out).toContain(`serial ${SERIAL} released from hold`);
    const revoked = await ocspCa("revoke", form, "--reason", "keyCompromise");
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).toContain(`revoked serial ${SERIAL} `);
    const ca = await CertificateAuthority.open(dir);
    expect(ca.status(SERIAL)).toMatchObject({ status: "revoked", revocationReason: CRLReason.keyCompromise });
    expect(
      ca
        .list()
        .filter((r) => r.kind === "server")
        .map((r) => r.serial),
    ).toEqual([SERIAL]);
  });

  it("is written to index.txt as 0A1B…, and `openssl ocsp -index` answers for it", async () => {
    expect((await ocspCa("init")).code).toBe(0);
    const ca = await CertificateAuthority.open(dir);
    const revoked = await ca.issueServer({ dnsNames: ["localhost"], serial: SERIAL });
    // One byte, below 0x10: the shortest serial with a leading 0 digit.
    const good = await ca.issueServer({ dnsNames: ["localhost"], serial: "5" });
    expect(good.serial).toBe("05");
    await ca.revoke(SERIAL.slice(1), { reason: CRLReason.superseded });

    const index = join(dir, "index.txt");
    const r = await ocspCa("export", "--format", "index", "--out", index);
    expect(r.code, r.err).toBe(0);
    const lines = (await fs.readFile(index, "utf8")).split("\n");
    expect(lines.filter((l) => l.split("\t")[3] === SERIAL.toUpperCase())).toHaveLength(1);
    expect(lines.find((l) => l.split("\t")[3] === SERIAL.toUpperCase())).toMatch(/^R\t\d{12}Z\t\d{12}Z,superseded\t/);
    expect(lines.filter((l) => l.split("\t")[3] === "05")).toHaveLength(1);

    expect(await askOpenssl(ca, index, revoked.certFile, "revoked")).toContain(`${revoked.certFile}: revoked`);
    expect(await askOpenssl(ca, index, good.certFile, "good")).toContain(`${good.certFile}: good`);
  });
});

describe("IssueOptions.serial", () => {
  it("refuses zero, more than 20 octets, non-hex and a serial already used, leaving the store as it was", async () => {
    const ca = await CertificateAuthority.init(dir);
    const first = await ca.issueServer({ serial: SERIAL });
    const before = await fs.readFile(join(dir, "ca.json"), "utf8");
    const certBefore = await fs.readFile(first.certFile, "utf8");

    await expect(ca.issueServer({ serial: "00" })).rejects.toThrow(/positive integer/);
    await expect(ca.issueServer({ serial: "0x0" })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(ca.issueServer({ serial: "7f".repeat(21) })).rejects.toThrow(/21 octets/);
    // 20 bytes, but the first is ≥ 0x80: DER needs a 00 in front, 21 octets.
    await expect(ca.issueServer({ serial: "80".repeat(20) })).rejects.toThrow(/21 octets/);
    await expect(ca.issueServer({ serial: "xyz" })).rejects.toBeInstanceOf(InvalidSerialError);
    await expect(ca.issueServer({ serial: SERIAL.slice(1) })).rejects.toThrow(new RegExp(`${SERIAL}.*already in this CA`));
    await expect(ca.createIntermediate({ serial: `0x${SERIAL}` })).rejects.toThrow(/already in this CA/);
    expect(await fs.readFile(join(dir, "ca.json"), "utf8")).toBe(before);
    expect(await fs.readFile(first.certFile, "utf8")).toBe(certBefore);

    // Two handles on one store (as two processes): the second learns of the serial only under the lock.
    const other = await CertificateAuthority.open(dir);
    const taken = "0b".repeat(16);
    await ca.issueServer({ serial: taken });
    const takenCert = await fs.readFile(join(dir, "certs", taken, "cert.pem"), "utf8");
    await expect(other.issueServer({ serial: taken })).rejects.toThrow(/already in this CA/);
    expect(await fs.readFile(join(dir, "certs", taken, "cert.pem"), "utf8")).toBe(takenCert);
    expect(await openssl(["verify", "-CAfile", ca.rootFile, join(dir, "certs", taken, "cert.pem")])).toContain(": OK");

    // The largest: 20 octets with a first byte below 0x80.
    const max = await ca.issueServer({ serial: `7f${"ff".repeat(19)}` });
    expect(await openssl(["x509", "-in", max.certFile, "-noout", "-serial"])).toBe(`serial=7F${"FF".repeat(19)}\n`);
  });
});

/** Build a request for `certFile`, answer it with `openssl ocsp -index`, verify and print the status. */
async function askOpenssl(ca: CertificateAuthority, index: string, certFile: string, tag: string): Promise<string> {
  const req = join(dir, `${tag}.req.der`);
  const resp = join(dir, `${tag}.resp.der`);
  await openssl(["ocsp", "-issuer", ca.rootFile, "-cert", certFile, "-reqout", req, "-no_nonce"]);
  await openssl([
    "ocsp",
    "-index",
    index,
    "-CA",
    ca.rootFile,
    "-rsigner",
    ca.ocspSignerFile,
    "-rkey",
    join(ca.stateDir, "ocsp-signer.key"),
    "-reqin",
    req,
    "-respout",
    resp,
  ]);
  const r = await run("openssl", ["ocsp", "-respin", resp, "-issuer", ca.rootFile, "-cert", certFile, "-CAfile", ca.rootFile]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain("Response verify OK");
  return r.stdout;
}
