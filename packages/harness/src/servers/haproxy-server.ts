import { promises as fs } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { toPemBundle } from "@ocsp-lab/ca";
import { ServerUnderTestError } from "../errors.js";
import type { ServerAvailability, ServerDriver, ServerSetup, StartedServerUnderTest } from "./server.js";
import { ServerProcess, findExecutable, freeLocalPort } from "./process.js";
import { fetchForOperator } from "./operator-fetch.js";
import { waitServing } from "./reload-wait.js";

/**
 * Seconds between two runs of the operator's job that feeds HAProxy (query the responder, hand
 * the response to HAProxy). Operators run it from cron every few minutes or hours; 2, so a
 * scenario of a few seconds sees it run.
 */
export const HAPROXY_FEED_EVERY_S = 2;
/** How long one feed query may take, in milliseconds, as `curl --max-time 2` in a cron job. */
const FEED_TIMEOUT_MS = 2000;

/**
 * HAProxy (Debian package `haproxy`, 2.6: no `ocsp-update`) serving `crt site.pem` with the
 * response in `site.pem.ocsp` next to it, which HAProxy reads at start and reload and never
 * fetches itself. The harness plays the operator's cron job: before the start and every
 * HAPROXY_FEED_EVERY_S seconds it queries the responder for the certificate (an RFC 5019 POST,
 * SHA-1 CertID), and when the answer is a successful OCSPResponse writes it to `site.pem.ocsp`
 * and hands it to the running HAProxy with the runtime API's `set ssl ocsp-response` (an admin
 * `stats socket`); a failed query leaves what HAProxy has. Reload (a renewed certificate) is the
 * deploy hook: write the new `site.pem`, fetch its response into `site.pem.ocsp`, then SIGUSR2
 * to the master (`-W`).
 */
export class HaproxyServer implements ServerDriver {
  readonly name = "haproxy";
  readonly documented =
    `serves the response it is given (the .ocsp file next to the certificate, or the runtime API's set ssl ocsp-response) and never queries a responder itself before 2.8's ocsp-update; here a cron-like job feeds it every ${HAPROXY_FEED_EVERY_S} s (docs.haproxy.org/2.6/configuration.html#5.1-crt, management.html#9.3-set%20ssl%20ocsp-response)`;

  async available(): Promise<ServerAvailability> {
    return (await findExecutable("haproxy", ["/usr/sbin/haproxy"]))
      ? { ok: true }
      : { ok: false, reason: "HAProxy is not installed: apt-get install -y haproxy" };
  }

  async start(setup: ServerSetup): Promise<StartedServerUnderTest> {
    const bin = (await findExecutable("haproxy", ["/usr/sbin/haproxy"]))!;
    const port = await freeLocalPort();
    const { dir, files } = setup;
    const site = join(dir, "site.pem");
    const sock = join(dir, "admin.sock");
    const conf = join(dir, "haproxy.cfg");
    const feedLog: string[] = [];
    const note = (line: string): void => {
      feedLog.push(`${new Date().toISOString()} feed: ${line}`);
      if (feedLog.length > 200) feedLog.shift();
    };
    await writeBundle(files, site);
    // The first feed, before the start: HAProxy loads site.pem.ocsp with site.pem. An empty
    // file when the query failed: HAProxy then staples nothing until the runtime API sets one.
    const first = await fetchResponse(files, setup.responderUrl, note);
    await fs.writeFile(`${site}.ocsp`, first ?? new Uint8Array());
    await fs.writeFile(conf, haproxyConfig(dir, port, site, sock));
    const proc = new ServerProcess(bin, ["-W", "-db", "-f", conf]);
    await proc.waitListening(this.name, port);
    let stopped = false;
    let feeding: Promise<void> = Promise.resolve();
    const feed = async (): Promise<void> => {
      const der = await fetchResponse(files, setup.responderUrl, note);
      if (!der || stopped) return;
      await fs.writeFile(`${site}.ocsp`, der);
      note(await runtimeApi(sock, `set ssl ocsp-response ${Buffer.from(der).toString("base64")}`));
    };
    const timer = setInterval(() => {
      feeding = feeding.then(feed).catch((err: unknown) => note(`failed: ${String(err)}`));
    }, HAPROXY_FEED_EVERY_S * 1000);
    const target = { host: "127.0.0.1", port, servername: setup.servername, caFile: files.caFile };
    const log = async () => `${proc.printed}${feedLog.join("\n")}\n`;
    return {
      target,
      log,
      async reload() {
        await feeding;
        await writeBundle(files, site);
        const der = await fetchResponse(files, setup.responderUrl, note);
        await fs.writeFile(`${site}.ocsp`, der ?? new Uint8Array());
        proc.signal("SIGUSR2");
        await waitServing("haproxy", target, files.certFile, log);
      },
      async stop() {
        stopped = true;
        clearInterval(timer);
        await feeding;
        await proc.stop();
      },
    };
  }
}

/** The config: master-worker in the foreground, one TLS frontend, an admin runtime API socket. */
export function haproxyConfig(dir: string, port: number, site: string, sock: string): string {
  return `global
  pidfile ${dir}/haproxy.pid
  stats socket ${sock} level admin
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend https
  bind 127.0.0.1:${port} ssl crt ${site}
  http-request return status 200 content-type text/plain string "ok"
`;
}

/** Write the certificate, its chain and key as one PEM (HAProxy's `crt`). */
async function writeBundle(files: ServerSetup["files"], site: string): Promise<void> {
  const [certPem, keyPem, chainPem] = await Promise.all([
    fs.readFile(files.certFile, "utf8"),
    fs.readFile(files.keyFile, "utf8"),
    fs.readFile(files.chainFile, "utf8"),
  ]);
  await fs.writeFile(site, toPemBundle({ certPem, keyPem, chainPem }), { mode: 0o600 });
}

/**
 * One query of the operator's job (fetchForOperator): the DER of a successful OCSPResponse for
 * the certificate in `files.certFile` (its issuer first in `files.chainFile`) from
 * `responderUrl`, or undefined (what went wrong goes to `note`). Never throws.
 */
async function fetchResponse(
  files: ServerSetup["files"],
  responderUrl: string,
  note: (line: string) => void,
): Promise<Uint8Array | undefined> {
  try {
    const [certPem, chainPem] = await Promise.all([fs.readFile(files.certFile, "utf8"), fs.readFile(files.chainFile, "utf8")]);
    return await fetchForOperator(certPem, chainPem, responderUrl, FEED_TIMEOUT_MS);
  } catch (err) {
    note(`query failed: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/**
 * One command on HAProxy's runtime API (a unix `stats socket`), returning its answer.
 * @throws ServerUnderTestError when the socket cannot be reached.
 */
export function runtimeApi(sock: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(sock);
    let out = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => (out += d));
    s.once("connect", () => s.end(`${command}\n`));
    s.once("end", () => resolve(out.trim()));
    s.once("error", (err) => reject(new ServerUnderTestError("haproxy", `runtime API ${sock}: ${err.message}`)));
  });
}
