/**
 * Debian's nginx as a real stapling client of the responder: nginx is started by the test with
 * `ssl_stapling on; ssl_stapling_verify on;` and a certificate whose AIA points at the responder,
 * fetches the OCSP response from it and staples it (seen with `openssl s_client -status`), and the
 * responder's request log shows nginx's request. beforeAll starts nginx and makes the handshake
 * that sets nginx fetching (nginx staples lazily), so each test stands on its own.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import { once } from "node:events";
import { createConnection } from "node:net";
import { join } from "node:path";
import { CertificateAuthority, type IssuedCertificate } from "@ocsp-lab/ca";
import { OcspResponder, type RequestLogEntry, type StartedOcspResponder } from "@ocsp-lab/responder";
import { describeWithPeer, eventually, freePort, sClient, tempDir, type Ran } from "../../../test-support/index.js";

/** Debian installs the binary in /usr/sbin, which is not on every user's PATH. */
const nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p)) ?? whichSync("nginx");

function whichSync(name: string): string | undefined {
  for (const d of (process.env.PATH ?? "").split(":")) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** Whether 127.0.0.1:port accepts a TCP connection now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

let dir: string;
let cleanup: () => Promise<void>;
let ca: CertificateAuthority;
let responder: StartedOcspResponder;
let leaf: IssuedCertificate;
let port: number;
let child: ChildProcess | undefined;
let childExit: Promise<unknown> | undefined;
let nginxOutput = "";

async function errorLog(): Promise<string> {
  return fs.readFile(join(dir, "error.log"), "utf8").catch(() => "");
}

/** One handshake with nginx (`openssl s_client -status`, the chain verified against the root). */
function handshake(): Promise<Ran> {
  return sClient({ port, caFile: ca.rootFile, extra: ["-verify_return_error"], timeoutMs: 10_000 });
}

/** The first handshake (it sets nginx fetching) and the request nginx then sent the responder. */
let first: Ran;
let nginxRequest: RequestLogEntry;

describeWithPeer(nginx ?? "nginx")("nginx (Debian package) stapling from the responder", () => {
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("ocsp-lab-nginx-"));
    ca = await CertificateAuthority.init(join(dir, "ca"));
    responder = await (await OcspResponder.forCa(ca)).start();
    leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: responder.url });
    port = await freePort();

    // Everything under the temp folder so nginx runs as root without touching /var or /etc.
    // No `resolver`: the AIA URL is http://127.0.0.1:PORT, which nginx resolves at config time.
    const t = (name: string) => join(dir, name);
    const conf = `
daemon off;
master_process off;
pid ${t("nginx.pid")};
error_log ${t("error.log")} info;
events {}
http {
  access_log ${t("access.log")};
  client_body_temp_path ${t("client_body")};
  proxy_temp_path ${t("proxy")};
  fastcgi_temp_path ${t("fastcgi")};
  uwsgi_temp_path ${t("uwsgi")};
  scgi_temp_path ${t("scgi")};
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${leaf.fullchainFile};
    ssl_certificate_key ${leaf.keyFile};
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate ${ca.rootFile};
    location / { return 200 "ok\\n"; }
  }
}
`;
    await fs.writeFile(t("nginx.conf"), conf);
    // -e: the error log used before the config is read (default /var/log/nginx/error.log); nginx >= 1.19.5.
    child = spawn(nginx!, ["-p", dir, "-e", t("error.log"), "-c", t("nginx.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (nginxOutput += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (nginxOutput += d));
    let exited = false;
    childExit = once(child, "exit").then(() => (exited = true));
    await eventually(
      async () => (exited ? "exited" : (await accepts(port)) ? "up" : "down"),
      (s) => s !== "down",
      10_000,
      `nginx to accept connections on 127.0.0.1:${port}`,
    ).then(async (s) => {
      if (s === "exited") throw new Error(`nginx exited at start: ${nginxOutput}\n${await errorLog()}`);
    });

    // nginx staples lazily: the first handshake starts the fetch and goes out without a staple.
    first = await handshake();
    const seen = await responder.waitForRequests({ serial: leaf.serial, count: 1 }, 15_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\nnginx error log:\n${await errorLog()}`);
    });
    nginxRequest = seen[0]!;
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGQUIT"); // graceful shutdown
      await childExit;
    }
    await responder?.stop();
    await cleanup?.();
  });

  it("fetches the OCSP response from the responder on the first handshake and staples it on later ones", async () => {
    expect(first.stdout, first.stderr).toContain("Verify return code: 0 (ok)");
    expect(["GET", "POST"]).toContain(nginxRequest.method);
    expect(nginxRequest.outcome).toBe("good");
    expect(nginxRequest.httpStatus).toBe(200);
    expect(nginxRequest.serials).toEqual([leaf.serial]);

    const stapled = await eventually(
      handshake,
      (r) => r.stdout.includes("OCSP Response Status: successful"),
      10_000,
      "nginx to staple the OCSP response",
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\nnginx error log:\n${await errorLog()}`);
    });
    expect(stapled.stdout).toContain("OCSP Response Status: successful");
    expect(stapled.stdout).toContain("Cert Status: good");
    expect(stapled.stdout).toContain("Verify return code: 0 (ok)");
    // ssl_stapling_verify on: nginx checked the response against ssl_trusted_certificate before stapling.
    expect(await errorLog()).not.toMatch(/OCSP_basic_verify\(\) failed|OCSP response not successful/);
  });

  it("asks with SHA-1 CertIDs, by GET (what nginx sends)", () => {
    expect(nginxRequest.hashes).toEqual(["SHA-1"]);
    expect(nginxRequest.method).toBe("GET");
    expect(nginxRequest.nonceLength).toBe(0);
  });
});
