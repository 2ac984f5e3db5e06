import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { ServerAvailability, ServerDriver, ServerSetup, StartedServerUnderTest } from "./server.js";
import { ServerProcess, findExecutable, freeLocalPort, readTail } from "./process.js";
import { waitServing } from "./reload-wait.js";

const APACHE_PATHS = ["/usr/sbin/apache2", "/usr/sbin/httpd"];
/** Debian's module folder (`apxs -q LIBEXECDIR` elsewhere). */
const MODULES = "/usr/lib/apache2/modules";

/**
 * Seconds Apache waits for the responder inside a handshake (`SSLStaplingResponderTimeout`;
 * default 10). 2, so a hung responder shows as a delay without making a scenario 10 s longer.
 */
export const APACHE_RESPONDER_TIMEOUT_S = 2;
/**
 * Seconds a good (or revoked) response stays in Apache's stapling cache
 * (`SSLStaplingStandardCacheTimeout`; default 3600). 5, as the README's recipe, so a revocation
 * shows within a scenario.
 */
export const APACHE_CACHE_TIMEOUT_S = 5;

/**
 * Apache httpd with mod_ssl (Debian package `apache2`), `SSLUseStapling on` with an shmcb
 * stapling cache, run from a config of its own in the server's folder (`-DFOREGROUND`). The
 * error handling is Apache's default, said explicitly: `SSLStaplingReturnResponderErrors on`
 * and `SSLStaplingFakeTryLater on` (a responder that cannot be reached makes Apache staple a
 * tryLater response of its own), `SSLStaplingErrorCacheTimeout 600` (observed: the faked
 * tryLater is kept for the standard cache timeout, not this one). Reload is a graceful
 * restart (SIGUSR1 to the parent).
 */
export class ApacheServer implements ServerDriver {
  readonly name = "apache";
  readonly documented =
    `fetches inside the handshake that finds no cached response, which waits up to SSLStaplingResponderTimeout (${APACHE_RESPONDER_TIMEOUT_S} s here); caches a response for SSLStaplingStandardCacheTimeout (${APACHE_CACHE_TIMEOUT_S} s here) and staples revoked ones; when the responder cannot be reached it staples a tryLater it makes itself (SSLStaplingFakeTryLater, default on; observed kept for the standard cache timeout) (httpd.apache.org/docs/2.4/mod/mod_ssl.html#sslusestapling)`;

  async available(): Promise<ServerAvailability> {
    if (!(await findExecutable("apache2", APACHE_PATHS)))
      return { ok: false, reason: "Apache httpd is not installed: apt-get install -y apache2" };
    try {
      await fs.access(join(MODULES, "mod_ssl.so"));
      return { ok: true };
    } catch {
      return { ok: false, reason: `mod_ssl is not in ${MODULES}: apt-get install -y apache2` };
    }
  }

  async start(setup: ServerSetup): Promise<StartedServerUnderTest> {
    const bin = (await findExecutable("apache2", APACHE_PATHS))!;
    const port = await freeLocalPort();
    const conf = join(setup.dir, "httpd.conf");
    const errorLog = join(setup.dir, "error.log");
    await fs.writeFile(conf, apacheConfig(setup.dir, port, setup));
    const proc = new ServerProcess(bin, ["-f", conf, "-DFOREGROUND"]);
    await proc.waitListening(this.name, port, errorLog);
    const target = { host: "127.0.0.1", port, servername: setup.servername, caFile: setup.files.caFile };
    const log = async () => `${proc.printed}${await readTail(errorLog)}`;
    return {
      target,
      log,
      async reload() {
        proc.signal("SIGUSR1");
        await waitServing("apache", target, setup.files.certFile, log);
      },
      stop: () => proc.stop(),
    };
  }
}

/** The config: one TLS virtual host on 127.0.0.1:port, stapling from the certificate's AIA responder. */
export function apacheConfig(dir: string, port: number, setup: ServerSetup): string {
  return `ServerName ${setup.servername}
Listen 127.0.0.1:${port}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel warn ssl:info
DefaultRuntimeDir ${dir}
LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule socache_shmcb_module ${MODULES}/mod_socache_shmcb.so
LoadModule ssl_module ${MODULES}/mod_ssl.so
SSLStaplingCache shmcb:${dir}/stapling(128000)
<VirtualHost 127.0.0.1:${port}>
  SSLEngine on
  SSLCertificateFile ${setup.files.fullchainFile}
  SSLCertificateKeyFile ${setup.files.keyFile}
  SSLUseStapling on
  SSLStaplingResponderTimeout ${APACHE_RESPONDER_TIMEOUT_S}
  SSLStaplingStandardCacheTimeout ${APACHE_CACHE_TIMEOUT_S}
  SSLStaplingErrorCacheTimeout 600
  SSLStaplingReturnResponderErrors on
  SSLStaplingFakeTryLater on
</VirtualHost>
`;
}
