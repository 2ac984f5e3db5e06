import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { promises as fs } from "node:fs";
import { createServer, connect } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OCSPResponseStatus, OcspResponse, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import {
  AdminExposedError,
  MAX_CERT_IDS_PER_REQUEST,
  MAX_REQUEST_BYTES,
  OcspResponder,
  type StartedOcspResponder,
} from "@ocsp-lab/responder";
import { freePort, run, tempDir } from "../../../test-support/index.js";
import { headOnlyRequest, nonLoopbackAddress, portIsFree, rawRequest } from "../../../test-support/safety.js";

const RESPONDER_BIN = new URL("../bin/ocsp-responder.js", import.meta.url).pathname;
const TOKEN = "admin-token-0123";

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let leaf: IssuedCertificate;
/** No token: the admin API on the OCSP port, guarded by Host and Origin. */
let open: StartedOcspResponder;
/** A token: the admin API and /metrics need it. */
let guarded: StartedOcspResponder;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  ca = await CertificateAuthority.init(join(dir, "ca"));
  open = await (await OcspResponder.forCa(ca)).start();
  guarded = await (await OcspResponder.forCa(ca)).withAdmin({ token: TOKEN }).start();
  leaf = await ca.issueServer({ ocspUrl: open.url });
});
afterAll(async () => {
  await open?.stop();
  await guarded?.stop();
  ca.close();
  await cleanup();
});

/** Whether something accepts TCP connections on host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const json = (body: string): { error: string; field?: string } => JSON.parse(body) as { error: string; field?: string };

describe("where the admin API listens", () => {
  it("binds its own port on 127.0.0.1 whatever listen.host is", async () => {
    const address = nonLoopbackAddress();
    // Without a non-loopback address to show it on, 0.0.0.0, stopped at once.
    const r = await (await OcspResponder.forCa(ca))
      .withHost(address ?? "0.0.0.0")
      .withAdmin({ port: 0 })
      .start();
    try {
      const admin = new URL(r.adminUrl);
      expect(admin.hostname).toBe("127.0.0.1");
      expect((await fetch(`${r.adminUrl}/issuers`)).status).toBe(200);
      if (address) {
        expect(r.url).toBe(`http://${address}:${r.port}`);
        expect(await accepts(address, Number(admin.port))).toBe(false);
      }
    } finally {
      await r.stop();
    }
  });

  it("refuses to start on a non-loopback address with the admin API on the OCSP port and no token: nothing binds", async () => {
    const port = await freePort();
    const builder = (await OcspResponder.forCa(ca)).withHost("0.0.0.0").withPort(port);
    const err = await builder.start().then(
      (r) => r.stop().then(() => undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AdminExposedError);
    expect((err as AdminExposedError).code).toBe("OCSP_LAB_RESPONDER_ADMIN_EXPOSED");
    expect((err as Error).message).toMatch(/admin\.token.*admin\.port.*admin\.allow_unauthenticated: true/);
    expect(await portIsFree(port)).toBe(true);
  });

  it("starts there with a token, or with allowUnauthenticated", async () => {
    const host = nonLoopbackAddress() ?? "0.0.0.0";
    for (const admin of [{ token: TOKEN }, { allowUnauthenticated: true }]) {
      const r = await (await OcspResponder.forCa(ca)).withHost(host).withAdmin(admin).start();
      try {
        const target = host === "0.0.0.0" ? "127.0.0.1" : host;
        const res = await fetch(`http://${target}:${r.port}/admin/issuers`, {
          headers: "token" in admin ? { authorization: `Bearer ${TOKEN}` } : {},
        });
        expect(res.status).toBe(200);
      } finally {
        await r.stop();
      }
    }
  });

  it("ocsp-responder refuses such a config in one line, exit 1; admin.allow_unauthenticated: true starts", async () => {
    const refused = join(dir, "exposed.yaml");
    await fs.writeFile(refused, `cas: [ca]\nlisten: { host: 0.0.0.0, port: 0 }\n`);
    const r = await run(process.execPath, [RESPONDER_BIN, "--config", refused]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^ocsp-responder: refusing to serve the admin API without a token on 0\.0\.0\.0, .*allow_unauthenticated: true/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    // --check says so too, and so does --host on a config that was fine.
    expect((await run(process.execPath, [RESPONDER_BIN, "--config", refused, "--check"])).stderr).toBe(r.stderr);
    const plain = join(dir, "plain.yaml");
    await fs.writeFile(plain, "cas: [ca]\n");
    const overridden = await run(process.execPath, [RESPONDER_BIN, "--config", plain, "--host", "0.0.0.0", "--check"]);
    expect(overridden.code).toBe(1);
    expect(overridden.stderr).toMatch(/refusing to serve the admin API without a token on 0\.0\.0\.0/);

    const allowed = join(dir, "allowed.yaml");
    await fs.writeFile(
      allowed,
      `cas: [ca]\nlisten: { host: ${nonLoopbackAddress() ?? "127.0.0.1"}, port: 0 }\nadmin: { allow_unauthenticated: true }\n`,
    );
    const checked = await run(process.execPath, [RESPONDER_BIN, "--config", allowed, "--check"]);
    expect(checked.code, checked.stderr).toBe(0);
    const misspelt = join(dir, "misspelt.yaml");
    await fs.writeFile(misspelt, `cas: [ca]\nadmin: { allow_unauthenticate: true }\n`);
    const m = await run(process.execPath, [RESPONDER_BIN, "--config", misspelt, "--check"]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/misspelt\.yaml: admin\.allow_unauthenticate: unknown key "allow_unauthenticate"/);
  });
});

describe("browsers cannot drive the admin API", () => {
  const body = JSON.stringify({ actions: [{ kind: "responseStatus", responseStatus: "tryLater" }] });
  const put = (headers: Record<string, string>, target = open) =>
    rawRequest({
      port: target.port,
      method: "PUT",
      path: "/admin/behaviours/global",
      headers: { "content-type": "application/json", ...headers },
      body,
    });

  it("refuses a state-changing request from another Origin with 403 JSON, and takes its own origin", async () => {
    const evil = await put({ origin: "https://evil.example" });
    expect(evil.status).toBe(403);
    expect(evil.headers["content-type"]).toMatch(/^application\/json/);
    expect(json(evil.body).error).toMatch(/cross-origin PUT refused: Origin "https:\/\/evil\.example"/);
    expect((await put({ origin: "null" })).status).toBe(403);
    // Same host, another port: another origin.
    expect((await put({ origin: `http://127.0.0.1:${open.port + 1}` })).status).toBe(403);
    const del = await rawRequest({
      port: open.port,
      method: "DELETE",
      path: "/admin/behaviours",
      headers: { origin: "http://x.test" },
    });
    expect(del.status).toBe(403);
    expect(open.behaviour.list()).toEqual([]);

    expect((await put({ origin: `http://127.0.0.1:${open.port}` })).status).toBe(200);
    expect((await put({ origin: `http://localhost:${open.port}` })).status).toBe(200);
    // No Origin (curl, the harness): fine.
    expect((await put({})).status).toBe(200);
    // A GET changes nothing: another Origin may ask (it cannot read the answer without CORS).
    expect(
      (
        await rawRequest({
          port: open.port,
          method: "GET",
          path: "/admin/behaviours",
          headers: { origin: "https://evil.example" },
        })
      ).status,
    ).toBe(200);
    open.behaviour.reset();
  });

  it("refuses a Host that is not the listener's (DNS rebinding) with 421 JSON; with a token the token decides", async () => {
    const rebound = await put({ host: `evil.example:${open.port}` });
    expect(rebound.status).toBe(421);
    expect(json(rebound.body).error).toMatch(/Host "evil\.example:\d+" is not this admin endpoint/);
    expect((await put({ host: "127.0.0.1" })).status).toBe(421); // port 80 implied
    const read = await rawRequest({
      port: open.port,
      method: "GET",
      path: "/admin/requests",
      headers: { host: `evil.example:${open.port}` },
    });
    expect(read.status).toBe(421);
    expect(open.behaviour.list()).toEqual([]);
    expect((await put({ host: `localhost:${open.port}` })).status).toBe(200);
    open.behaviour.reset();

    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await put({ host: `evil.example:${guarded.port}` }, guarded)).status).toBe(401);
    expect((await put({ host: `responder.lab:${guarded.port}`, ...auth }, guarded)).status).toBe(200);
    expect((await put({ origin: "https://evil.example", ...auth }, guarded)).status).toBe(403);
    guarded.behaviour.reset();
    // The OCSP path itself is not Host-checked: clients use the AIA URL's name.
    const der = (
      await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const ocsp = await fetch(open.url, { method: "POST", body: Buffer.from(der), headers: { host: "ocsp.example.test" } });
    expect(ocsp.status).toBe(200);
  });

  it("/metrics needs the admin token when there is one", async () => {
    expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
    const refused = await fetch(`${guarded.url}/metrics`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe("Bearer");
    const ok = await fetch(`${guarded.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("ocsp_requests_total");
  });
});

describe("unknown keys in admin bodies", () => {
  const admin = (method: string, path: string, body: unknown) =>
    fetch(`${open.adminUrl}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it.each([
    ["/behaviours/global", { actions: [{ kind: "responseStatus", responseStatus: "tryLater" }], cuont: 3 }, "cuont"],
    ["/behaviours/global", { steps: [{ actions: [{ kind: "normal" }] }], reapet: true }, "reapet"],
    ["/behaviours/global", { actions: [{ kind: "delay", ms: 5, colour: "red" }] }, "steps.0.actions.0.colour"],
    ["/behaviours/global", { steps: [{ actions: [{ kind: "normal" }], cont: 2 }] }, "steps.0.cont"],
    ["/delay", { ms: 5, unit: "s" }, "unit"],
  ])("PUT %s %j is 400 naming %s, and changes nothing", async (path, body, field) => {
    const res = await admin("PUT", path, body);
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { error: string; field?: string };
    expect(answer.field).toBe(field);
    expect(answer.error).toContain(`unknown`);
    expect(answer.error).toContain(JSON.stringify(field.split(".").at(-1)));
    expect(open.behaviour.list()).toEqual([]);
    expect(open.behaviour.delayMs).toBe(0);
  });

  it("refuses an unknown query parameter of GET /admin/requests", async () => {
    const res = await fetch(`${open.adminUrl}/requests?seriall=01`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { field?: string }).field).toBe("seriall");
  });
});

describe("request size limits", () => {
  it("answers an OCSP POST whose Content-Length is over the limit with 413 at once, without its body", async () => {
    const answer = await headOnlyRequest({
      port: open.port,
      method: "POST",
      path: "/",
      contentLength: 50 * 1024 * 1024,
      headers: { "Content-Type": "application/ocsp-request" },
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);
    expect(answer).toContain(`over ${MAX_REQUEST_BYTES} bytes`);
    expect(open.requests().at(-1)).toMatchObject({ method: "POST", outcome: "http-413", httpStatus: 413 });
  });

  it("answers an admin request whose Content-Length is over the limit with 413 JSON at once", async () => {
    const answer = await headOnlyRequest({
      port: open.port,
      method: "PUT",
      path: "/admin/behaviours/global",
      contentLength: 50 * 1024 * 1024,
      headers: { "Content-Type": "application/json" },
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);
    expect(json(answer.slice(answer.indexOf("\r\n\r\n") + 4)).error).toMatch(/over the admin API's limit of 65536 bytes/);
  });

  /** A request for `leaf` asking about it `n` times (n CertIDs). */
  async function requestWith(n: number): Promise<Uint8Array> {
    const one = (
      await buildOcspRequest({ certificate: toPkiCertificate(leaf.certificate), issuer: toPkiCertificate(ca.root.certificate) })
    ).der;
    const request = new pkijs.OCSPRequest({ schema: asn1js.fromBER(one).result });
    const first = request.tbsRequest.requestList[0]!;
    request.tbsRequest.requestList = Array.from({ length: n }, () => new pkijs.Request({ reqCert: first.reqCert }));
    return new Uint8Array(request.toSchema(true).toBER(false));
  }

  it(`answers up to ${MAX_CERT_IDS_PER_REQUEST} CertIDs in one request, and more with malformedRequest`, async () => {
    expect(MAX_CERT_IDS_PER_REQUEST).toBe(16);
    const ask = async (n: number) => {
      const res = await fetch(open.url, {
        method: "POST",
        body: Buffer.from(await requestWith(n)),
        headers: { "content-type": "application/ocsp-request" },
      });
      expect(res.status).toBe(200);
      return OcspResponse.fromDer(new Uint8Array(await res.arrayBuffer()));
    };
    const atCap = await ask(MAX_CERT_IDS_PER_REQUEST);
    expect(atCap.responseStatus).toBe(OCSPResponseStatus.successful);
    expect(atCap.responses).toHaveLength(MAX_CERT_IDS_PER_REQUEST);
    expect((await ask(MAX_CERT_IDS_PER_REQUEST + 1)).responseStatus).toBe(OCSPResponseStatus.malformedRequest);
  });
});

describe("ocsp-responder start-up errors", () => {
  it("a port in use is one line saying which setting to change, exit 1", async () => {
    const holder = createServer();
    holder.listen(0, "127.0.0.1");
    await once(holder, "listening");
    const port = (holder.address() as { port: number }).port;
    try {
      const file = join(dir, "taken.yaml");
      await fs.writeFile(file, `cas: [ca]\nlisten: { port: ${port} }\n`);
      const r = await run(process.execPath, [RESPONDER_BIN, "--config", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `ocsp-responder: port ${port} on 127.0.0.1 is in use by another process (EADDRINUSE): stop that process (ss -ltnp shows it) or choose another port with listen.port (--port), 0 for any free one\n`,
      );
      const admin = join(dir, "taken-admin.yaml");
      await fs.writeFile(admin, `cas: [ca]\nadmin: { port: ${port} }\n`);
      const a = await run(process.execPath, [RESPONDER_BIN, "--config", admin]);
      expect(a.code).toBe(1);
      expect(a.stderr).toMatch(/^ocsp-responder: port \d+ on 127\.0\.0\.1 is in use .*with admin\.port, 0 for any free one\n$/);
    } finally {
      holder.close();
    }
  });

  it("a key file given as the config is not printed", async () => {
    const r = await run(process.execPath, [RESPONDER_BIN, "--config", join(dir, "ca", "ca.key"), "--check"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ocsp-responder: config .*ca\.key: /);
    expect(r.stderr).not.toContain("PRIVATE");
    const key = await fs.readFile(join(dir, "ca", "ca.key"), "utf8");
    expect(r.stderr).not.toContain(key.split("\n")[1]!.slice(0, 12));
  });

  it("a CA folder that is a file is named in one line, exit 1", async () => {
    const file = join(dir, "not-a-folder");
    await fs.writeFile(file, "");
    const config = join(dir, "file-ca.yaml");
    await fs.writeFile(config, `cas: [not-a-folder]\n`);
    const r = await run(process.execPath, [RESPONDER_BIN, "--config", config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `ocsp-responder: cas.0: ${file} is a file, not a CA state folder: give the folder that holds ca.json\n`,
    );
  });
});
