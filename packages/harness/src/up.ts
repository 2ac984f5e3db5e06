import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { PollingPolicyInput } from "@ocsp-lab/stapler";
import { LAB_FILE, startLab, type Lab } from "./lab.js";

/**
 * Polling policy of a persistent lab, in seconds: fast enough that a revocation shows in the
 * staple within ten seconds while someone is watching, without hammering the responder.
 */
export const UP_POLICY = {
  query_frequency: 10,
  response_timeout: 1,
  recovery_frequency: 2,
  recovery_max_tries: 3,
} as const satisfies PollingPolicyInput;

/** Options of startPersistentLab. */
export interface UpOptions {
  stateDir: string;
  policy?: PollingPolicyInput;
  responderPort?: number;
  staplerPort?: number;
  logger?: Logger;
}

/** What `ocsp-lab up --json` prints once ready: everything a script needs to drive the lab. */
export interface LabEndpoints {
  stateDir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  chainFile: string;
  fullchainFile: string;
  serial: string;
  responderUrl: string;
  /** The responder's admin API (behaviours, request log) and Prometheus metrics. */
  adminUrl: string;
  metricsUrl: string;
  staplerHost: string;
  staplerPort: number;
  staplerUrl: string;
  /** The stapler's admin endpoint: `GET /admin/ocsp` (staple status), `POST /admin/ocsp/query`, `GET /metrics`. */
  staplerAdminUrl: string;
  serverName: string;
  /** Policy in force, in seconds. */
  policy: PollingPolicyInput;
}

/**
 * Start a persistent lab in `stateDir` (the CA is created on first use and kept). The responder
 * tries the port it had last time so the server certificate's AIA URL stays valid; when that
 * port is taken, a new certificate is issued for the new URL.
 */
export async function startPersistentLab(options: UpOptions): Promise<{ lab: Lab; endpoints: LabEndpoints }> {
  let preferred: number | undefined;
  try {
    preferred = (JSON.parse(await fs.readFile(join(options.stateDir, LAB_FILE), "utf8")) as { responderPort?: number })
      .responderPort;
  } catch {
    preferred = undefined;
  }
  const policy = { ...UP_POLICY, ...options.policy };
  const lab = await startLab({
    stateDir: options.stateDir,
    policy,
    ...(options.responderPort !== undefined ? { responderPort: options.responderPort } : {}),
    ...(preferred ? { preferredResponderPort: preferred } : {}),
    ...(options.staplerPort !== undefined ? { staplerPort: options.staplerPort } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    reuseCertificate: true,
  });
  const endpoints: LabEndpoints = {
    stateDir: lab.ca.stateDir,
    caFile: lab.ca.rootFile,
    certFile: lab.leaf.certFile,
    keyFile: lab.leaf.keyFile,
    chainFile: lab.leaf.chainFile,
    fullchainFile: lab.leaf.fullchainFile,
    serial: lab.leaf.serial,
    responderUrl: lab.responder.url,
    adminUrl: lab.responder.adminUrl,
    metricsUrl: `${lab.responder.url}/metrics`,
    staplerHost: lab.target.host,
    staplerPort: lab.target.port,
    staplerUrl: `https://${lab.target.servername}:${lab.target.port}/`,
    staplerAdminUrl: lab.stapler.adminUrl ?? "",
    serverName: lab.target.servername,
    policy,
  };
  return { lab, endpoints };
}

/** The human text `ocsp-lab up` prints: endpoints, then the exact commands to try. */
export function describeEndpoints(e: LabEndpoints): string {
  const p = e.policy;
  return [
    `ocsp-lab is up (state folder ${e.stateDir})`,
    `  CA certificate   ${e.caFile}`,
    `  server cert      ${e.certFile}  (serial ${e.serial}, ${e.serverName})`,
    `  responder        ${e.responderUrl}  (admin ${e.adminUrl}, metrics ${e.metricsUrl})`,
    `  stapler          ${e.staplerUrl}  (listening on ${e.staplerHost}:${e.staplerPort}; status ${e.staplerAdminUrl}/admin/ocsp, metrics ${e.staplerAdminUrl}/metrics)`,
    `  policy           query_frequency ${p.query_frequency} s, response_timeout ${p.response_timeout} s, recovery_frequency ${p.recovery_frequency} s, recovery_max_tries ${p.recovery_max_tries}`,
    "",
    "Try:",
    `  openssl s_client -connect ${e.staplerHost}:${e.staplerPort} -servername ${e.serverName} -status -CAfile ${e.caFile} </dev/null`,
    `  curl --cert-status --cacert ${e.caFile} --resolve ${e.serverName}:${e.staplerPort}:${e.staplerHost} ${e.staplerUrl}`,
    `  openssl ocsp -issuer ${e.caFile} -cert ${e.certFile} -url ${e.responderUrl} -CAfile ${e.caFile}`,
    `  ocsp-lab revoke ${e.serial} --reason keyCompromise --state-dir ${e.stateDir}`,
    `  ocsp-lab set ${e.serial} unknown --state-dir ${e.stateDir}      (also good, revoked, hang, down, slow <s>, http <status>, trylater, flaw <name>; clear undoes)`,
    `  curl -X PUT ${e.adminUrl}/behaviours/global -H 'content-type: application/json' -d '{"actions":[{"kind":"responseStatus","responseStatus":"tryLater"}],"count":3}'`,
    `      (the responder answers revoked within 1 s; the stapler staples it within query_frequency, ${p.query_frequency} s)`,
    `  curl -X POST ${e.staplerAdminUrl}/admin/ocsp/query      (the stapler queries now instead)`,
    "",
    "Ctrl-C stops the lab; the CA stays in the state folder for next time.",
  ].join("\n");
}
