import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { CertificateAuthority } from "@ocsp-lab/ca";
import { LabNotRunningError } from "./errors.js";
import { LAB_FILE } from "./lab.js";

/**
 * What a running `ocsp-lab up` records under `running` in the state folder's lab.json, so that
 * `ocsp-lab set` can find it; removed when `up` stops.
 */
export interface RunningLab {
  /** Process id of the `up` process. */
  pid: number;
  /** The responder's admin API base (`…/admin`): behaviours, request log. */
  adminUrl: string;
  /** Bearer token of the responder's admin API; absent when it has none. */
  adminToken?: string;
  /** The stapler's admin endpoint base (`GET /admin/ocsp`, `POST /admin/ocsp/query`). */
  staplerAdminUrl: string;
  /** Bearer token of the stapler's admin endpoint; absent when it has none. */
  staplerAdminToken?: string;
  /** Serial of the server certificate the stapler serves (lower-case hex). */
  serial: string;
}

async function readLabFile(stateDir: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await fs.readFile(join(stateDir, LAB_FILE), "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Merge `running` into lab.json of the CA's state folder (atomic write). */
export async function recordRunningLab(ca: CertificateAuthority, running: RunningLab): Promise<void> {
  const current = (await readLabFile(ca.stateDir)) ?? {};
  await ca.store.writeAtomic(LAB_FILE, `${JSON.stringify({ ...current, running }, null, 2)}\n`, 0o644);
}

/** Remove `running` from lab.json when it still names process `pid` (another `up` may have taken over). */
export async function clearRunningLab(ca: CertificateAuthority, pid: number): Promise<void> {
  const current = await readLabFile(ca.stateDir);
  if (!current || (current.running as RunningLab | undefined)?.pid !== pid) return;
  const { running: _gone, ...rest } = current;
  await ca.store.writeAtomic(LAB_FILE, `${JSON.stringify(rest, null, 2)}\n`, 0o644);
}

/**
 * The running lab recorded in `stateDir`, when its process is still alive.
 * @throws LabNotRunningError when lab.json is missing, records no running lab, or its process is gone.
 */
export async function findRunningLab(stateDir: string): Promise<RunningLab> {
  const current = await readLabFile(stateDir);
  if (!current) throw new LabNotRunningError(stateDir, `no ${LAB_FILE}`);
  const running = current.running as RunningLab | undefined;
  if (!running || typeof running.adminUrl !== "string" || typeof running.pid !== "number")
    throw new LabNotRunningError(stateDir, `${LAB_FILE} records no running lab`);
  try {
    process.kill(running.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH")
      throw new LabNotRunningError(stateDir, `process ${running.pid} recorded in ${LAB_FILE} is gone`);
  }
  return running;
}
