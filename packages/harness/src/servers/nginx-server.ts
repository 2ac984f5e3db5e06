import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { ServerAvailability, ServerDriver, ServerSetup, StartedServerUnderTest } from "./server.js";
import { ServerProcess, findExecutable, freeLocalPort, readTail } from "./process.js";
import { waitServing } from "./reload-wait.js";

/**
 * nginx (Debian package `nginx`) with `ssl_stapling on; ssl_stapling_verify on;`, run from a
 * config of its own in the server's folder (`daemon off`, every path in that folder), as the
 * README's nginx recipe does. Reload is SIGHUP to the master (what `nginx -s reload` sends).
 */
export class NginxServer implements ServerDriver {
  readonly name = "nginx";
  readonly documented =
    "fetches lazily: the first handshake after a start or reload triggers the query and gets no staple; keeps a good response until it expires, refreshing at most every 5 min; never staples a response that is not good (nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_stapling, ngx_event_openssl_stapling.c)";

  async available(): Promise<ServerAvailability> {
    return (await findExecutable("nginx", ["/usr/sbin/nginx"]))
      ? { ok: true }
      : { ok: false, reason: "nginx is not installed: apt-get install -y nginx" };
  }

  async start(setup: ServerSetup): Promise<StartedServerUnderTest> {
    const bin = (await findExecutable("nginx", ["/usr/sbin/nginx"]))!;
    const port = await freeLocalPort();
    const { dir, files } = setup;
    const conf = join(dir, "nginx.conf");
    const errorLog = join(dir, "error.log");
    await fs.writeFile(conf, nginxConfig(dir, port, setup));
    const proc = new ServerProcess(bin, ["-p", dir, "-e", errorLog, "-c", conf]);
    await proc.waitListening(this.name, port, errorLog);
    const target = { host: "127.0.0.1", port, servername: setup.servername, caFile: files.caFile };
    const log = async () => `${proc.printed}${await readTail(errorLog)}`;
    return {
      target,
      log,
      async reload() {
        proc.signal("SIGHUP");
        await waitServing("nginx", target, files.certFile, log);
      },
      stop: () => proc.stop(),
    };
  }
}

/** The config: one TLS server on 127.0.0.1:port stapling from the certificate's AIA responder. */
export function nginxConfig(dir: string, port: number, setup: ServerSetup): string {
  return `daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events {}
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${setup.servername};
    ssl_certificate         ${setup.files.fullchainFile};
    ssl_certificate_key     ${setup.files.keyFile};
    ssl_stapling            on;
    ssl_stapling_verify     on;
    ssl_trusted_certificate ${setup.files.caFile};
    location / { return 200 "ok\\n"; }
  }
}
`;
}
