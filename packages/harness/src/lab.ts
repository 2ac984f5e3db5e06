import { promises as fs } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { CertificateAuthority, type IssuedCertificate, type KeyType } from "@ocsp-lab/ca";
import { systemClock, type Clock } from "@ocsp-lab/ocsp";
import { OcspResponder, type StartedOcspResponder } from "@ocsp-lab/responder";
import {
  StaplingServer,
  aiaOcspUrl,
  type PollingPolicyInput,
  type StapleSourceInput,
  type StartedStaplingServer,
} from "@ocsp-lab/stapler";
import * as x509 from "@peculiar/x509";
import type { TlsTarget } from "./clients/client.js";
import { PortInUseError } from "./errors.js";

/** Options of startLab. */
export interface LabOptions {
  /** State folder of the CA (created when empty). */
  stateDir: string;
  /** Stapler polling policy, in seconds. */
  policy?: PollingPolicyInput;
  /** Interface both servers bind; default 127.0.0.1. */
  host?: string;
  /** Responder port; default 0 (ephemeral). */
  responderPort?: number;
  /**
   * Try this responder port first and fall back to an ephemeral one when it is taken (used by
   * `up` to keep the AIA URL of an existing certificate valid across restarts).
   */
  preferredResponderPort?: number;
  /** Stapler port; default 0 (ephemeral). */
  staplerPort?: number;
  /**
   * Bearer token of the responder's admin API (and its /metrics) and of the stapler's admin
   * endpoint; default none (both bind loopback only: `host` must then be a loopback address,
   * or the responder refuses to start).
   */
  adminToken?: string;
  /** Responder's nextUpdate − thisUpdate, in seconds; default 3600. */
  responseValiditySeconds?: number;
  /**
   * The server certificate to issue: key type (default the CA's), RFC 7633 must-staple, and
   * whether an intermediate CA (created under the root) issues it instead of the root.
   */
  leaf?: { keyType?: string | undefined; mustStaple?: boolean | undefined; issuer?: "root" | "intermediate" | undefined };
  /**
   * What the stapler staples (the stapler's staple sources): `verified` (default), or, for
   * testing clients, `as-received`, `none`, `{ kind: "bytes", der }`, `{ kind: "file", path }`.
   */
  stapleSource?: StapleSourceInput;
  /** Reuse the server certificate recorded in lab.json when its OCSP URL still matches. */
  reuseCertificate?: boolean;
  /**
   * Called once the CA, the responder and the server certificate are ready and before the
   * stapler starts (so before its first OCSP query): to put the responder or the CA in the
   * state the stapler must find at start-up. A rejection stops the lab and is rethrown.
   */
  beforeStapler?: (lab: LabParts) => Promise<void>;
  clock?: Clock;
  logger?: Logger;
}

/** A running lab: CA, responder, stapler, and the certificate the stapler serves. */
export interface Lab {
  ca: CertificateAuthority;
  responder: StartedOcspResponder;
  stapler: StartedStaplingServer;
  /** The server certificate (and its files) the stapler serves. */
  leaf: Pick<IssuedCertificate, "serial" | "certificate" | "certFile" | "keyFile" | "chainFile" | "fullchainFile">;
  /** Where clients connect. */
  target: TlsTarget;
  /** The time source every part of the lab uses. */
  clock: Clock;
  /** Stop stapler, responder and the CA watcher. Idempotent. */
  stop(): Promise<void>;
}

/** The parts of a lab that exist before its stapler starts (see LabOptions.beforeStapler). */
export type LabParts = Pick<Lab, "ca" | "responder" | "leaf" | "clock">;

/** Name the lab's server certificate is issued for (SAN DNS:localhost, IP:127.0.0.1). */
export const LAB_SERVER_NAME = "localhost";
/** What a lab records in the state folder for the next start: server certificate serial and responder port. */
export const LAB_FILE = "lab.json";

/**
 * Start a lab in `stateDir`: open (or create) the CA with store watching, start the responder,
 * issue (or reuse) a server certificate whose AIA points at it, call `beforeStapler`, and start
 * the stapler, which has run its first OCSP query when this resolves.
 * @throws PortInUseError for a taken port given explicitly; whatever `beforeStapler` throws.
 */
export async function startLab(options: LabOptions): Promise<Lab> {
  const clock = options.clock ?? systemClock;
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? pino({ level: "silent" });
  const ca = await CertificateAuthority.openOrInit(options.stateDir, { watch: true, clock });
  let responder: StartedOcspResponder | undefined;
  try {
    const builder = (await OcspResponder.forCa(ca))
      .withHost(host)
      .withClock(clock)
      .withLogger(logger)
      .withValidity(options.responseValiditySeconds ?? 3600)
      .withAdmin(options.adminToken !== undefined ? { token: options.adminToken } : {});
    if (options.responderPort !== undefined) {
      responder = await builder
        .withPort(options.responderPort)
        .start()
        .catch((err: unknown) => rethrowPortInUse(err, "responder", options.responderPort!, "--responder-port"));
    } else if (options.preferredResponderPort) {
      responder = await builder
        .withPort(options.preferredResponderPort)
        .start()
        .catch(() => builder.withPort(0).start());
    } else {
      responder = await builder.withPort(0).start();
    }

    // AIA: the responder's OCSP URL, and its copy of the issuer's certificate (caIssuers), so
    // a client that fetches a missing issuer from AIA finds it without another web server.
    const served = responder;
    const issueLeaf = async () => {
      const issuer =
        options.leaf?.issuer === "intermediate"
          ? (await ca.createIntermediate({ ocspUrl: served.url, caIssuersUrl: served.caIssuersUrl(ca.rootSerial) })).serial
          : ca.rootSerial;
      return ca.issueServer({
        dnsNames: [LAB_SERVER_NAME],
        ipAddresses: ["127.0.0.1"],
        ocspUrl: served.url,
        caIssuersUrl: served.caIssuersUrl(issuer),
        ...(options.leaf?.keyType !== undefined ? { keyType: options.leaf.keyType as KeyType } : {}),
        ...(options.leaf?.mustStaple !== undefined ? { mustStaple: options.leaf.mustStaple } : {}),
        ...(issuer !== ca.rootSerial ? { issuer } : {}),
      });
    };
    const leaf = (options.reuseCertificate && (await reusableLeaf(ca, responder.url, clock))) || (await issueLeaf());
    await ca.store.writeAtomic(
      LAB_FILE,
      `${JSON.stringify({ serial: leaf.serial, responderPort: responder.port }, null, 2)}\n`,
      0o644,
    );

    await options.beforeStapler?.({ ca, responder, leaf, clock });

    const stapler = await (
      await StaplingServer.fromFiles({ certFile: leaf.certFile, keyFile: leaf.keyFile, chainFile: leaf.chainFile })
    )
      .withHost(host)
      .withPort(options.staplerPort ?? 0)
      .withPolicy(options.policy ?? {})
      .withStapleSource(options.stapleSource ?? "verified")
      .withAdmin(options.adminToken !== undefined ? { token: options.adminToken } : {})
      .withClock(clock)
      .withLogger(logger)
      .start()
      .catch((err: unknown) => rethrowPortInUse(err, "stapler", options.staplerPort ?? 0, "--port"));
    const started = responder;
    // Keep the CA's CRLs fresh while the lab runs (republished at half their validity).
    const stopCrls = ca.scheduleCrlRefresh((err) => logger.warn({ err }, "CRL refresh failed"));
    let stopped = false;
    return {
      ca,
      responder: started,
      stapler,
      leaf,
      target: { host, port: stapler.port, servername: LAB_SERVER_NAME, caFile: ca.rootFile },
      clock,
      async stop() {
        if (stopped) return;
        stopped = true;
        stopCrls();
        await stapler.stop();
        await started.stop();
        ca.close();
      },
    };
  } catch (err) {
    await responder?.stop();
    ca.close();
    throw err;
  }
}

/**
 * Turn a port in use (EADDRINUSE, raw or as the cause of the responder's or stapler's listen
 * error) into a PortInUseError that says which flag to change; rethrow anything else.
 */
function rethrowPortInUse(err: unknown, what: string, port: number, flag: string): never {
  const codes = [(err as NodeJS.ErrnoException).code, (err as { cause?: NodeJS.ErrnoException }).cause?.code];
  if (codes.includes("EADDRINUSE")) throw new PortInUseError(what, port, flag, { cause: err });
  throw err;
}

/**
 * The server certificate recorded in lab.json, when it is still in the CA, unexpired and its
 * OCSP URL is `url` (revoked or not: a revocation is state the user made on purpose).
 */
async function reusableLeaf(ca: CertificateAuthority, url: string, clock: Clock): Promise<Lab["leaf"] | undefined> {
  let saved: { serial?: string };
  try {
    saved = JSON.parse(await fs.readFile(join(ca.stateDir, LAB_FILE), "utf8")) as { serial?: string };
  } catch {
    return undefined;
  }
  const rec = saved.serial ? ca.get(saved.serial) : undefined;
  if (rec?.kind !== "server" || !rec.keyFile || !rec.chainFile || !rec.fullchainFile) return undefined;
  const certFile = ca.store.path(rec.certFile);
  const certificate = new x509.X509Certificate(await fs.readFile(certFile, "utf8"));
  if (aiaOcspUrl(certificate) !== url || certificate.notAfter.getTime() < clock.now().getTime()) return undefined;
  return {
    serial: rec.serial,
    certificate,
    certFile,
    keyFile: ca.store.path(rec.keyFile),
    chainFile: ca.store.path(rec.chainFile),
    fullchainFile: ca.store.path(rec.fullchainFile),
  };
}
