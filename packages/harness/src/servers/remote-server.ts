import { promises as fs } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { normalizeSerial } from "@ocsp-lab/ocsp";
import { ServerUnderTestError } from "../errors.js";
import { accepts } from "./process.js";
import type { ServerAvailability, ServerDriver, StartedServerUnderTest } from "./server.js";

/** How a server given as `--server host:port` is reached and what it serves. */
export interface RemoteServerOptions {
  host: string;
  port: number;
  /** PEM file of the certificate it serves, issued by the running `ocsp-lab up`'s CA (`ocsp-ca issue --ocsp-url`). */
  certFile: string;
  /** State folder of that `ocsp-lab up` (its responder is the certificate's AIA responder). */
  stateDir: string;
}

/**
 * A server the harness does not start (`--server host:port`), stapling for a certificate of the
 * running `ocsp-lab up` in `stateDir`: the scenarios drive that up's responder through its admin
 * API (as `ocsp-lab set` does) and watch the server with handshakes. Checks that start or reload
 * the server (CHECKS_THAT_START) are skipped for it.
 */
export class RemoteServer implements ServerDriver {
  readonly name: string;
  readonly documented = "a server the lab did not start: its behaviour is what the scenario files say of it by this name";
  readonly attached = true;
  readonly options: RemoteServerOptions;

  constructor(options: RemoteServerOptions) {
    this.options = options;
    this.name = `${options.host}:${options.port}`;
  }

  /** The serial of the certificate it serves (from certFile). @throws Error when the file is not a PEM certificate. */
  async serial(): Promise<string> {
    return normalizeSerial(new x509.X509Certificate(await fs.readFile(this.options.certFile, "utf8")).serialNumber);
  }

  async available(): Promise<ServerAvailability> {
    try {
      await this.serial();
    } catch (err) {
      return { ok: false, reason: `${this.options.certFile} is not a readable PEM certificate: ${(err as Error).message}` };
    }
    // accepts() dials 127.0.0.1; a remote host is dialled by the first handshake.
    if (this.options.host === "127.0.0.1" && !(await accepts(this.options.port)))
      return { ok: false, reason: `nothing listens on ${this.name}: start the server first` };
    return { ok: true };
  }

  async start(): Promise<StartedServerUnderTest> {
    const cert = new x509.X509Certificate(await fs.readFile(this.options.certFile, "utf8"));
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const dns = san?.names.items.find((n) => n.type === "dns")?.value;
    const name = this.name;
    return {
      target: {
        host: this.options.host,
        port: this.options.port,
        servername: dns ?? "localhost",
        caFile: join(this.options.stateDir, "ca.pem"),
      },
      async reload() {
        throw new ServerUnderTestError(name, "cannot be reloaded by the harness: it did not start it");
      },
      async stop() {},
      async log() {
        return "";
      },
    };
  }
}

/**
 * Parse a `--server` word as `host:port` (IPv4, a name, or `[v6]:port`), or undefined when it
 * is not one (a server name such as `nginx`).
 */
export function parseHostPort(word: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-f:]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(word);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}
