import { promises as fs, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CertificateAuthority } from "@ocsp-lab/ca";
import { LabNotRunningError } from "./errors.js";
import { LAB_FILE } from "./lab.js";

/**
 * The environment variable holding the admin token: `ocsp-lab up` takes it when `--admin-token`
 * is not given, `ocsp-lab set` sends it instead of the one recorded in lab.json.
 */
export const ADMIN_TOKEN_ENV = "OCSP_LAB_ADMIN_TOKEN";

/**
 * What a running `ocsp-lab up` records under `running` in the state folder's lab.json, so that
 * `ocsp-lab set` can find it; removed when `up` stops.
 */
export interface RunningLab {
  /** Process id of the `up` process. */
  pid: number;
  /** The responder's admin API base (`…/admin`): behaviours, request log. */
  adminUrl: string;
  /** Bearer token of the responder's admin API; absent when it has none (lab.json is 0600 while it holds one). */
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

/**
 * Merge `running` into lab.json of the CA's state folder (atomic write). With a token in it the
 * file is written mode 0600, like the CA's keys beside it: whoever can read it can read those
 * too (and revoke with them), so the token is not exposed further; otherwise 0644.
 */
export async function recordRunningLab(ca: CertificateAuthority, running: RunningLab): Promise<void> {
  const current = (await readLabFile(ca.stateDir)) ?? {};
  const secret = running.adminToken !== undefined || running.staplerAdminToken !== undefined;
  await ca.store.writeAtomic(LAB_FILE, `${JSON.stringify({ ...current, running }, null, 2)}\n`, secret ? 0o600 : 0o644);
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

/**
 * The process ids above this one, parent first, up to (not including) pid 1 / pid 0. On Linux
 * read from /proc/<pid>/stat (its 4th field, after the parenthesised command name); elsewhere
 * only the direct parent (`process.ppid`, a live getter) is known.
 */
export function ancestry(): number[] {
  const chain: number[] = [];
  let pid = process.ppid;
  while (pid > 1 && chain.length < 64) {
    chain.push(pid);
    if (process.platform !== "linux") break;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      break;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isInteger(ppid)) break;
    pid = ppid;
  }
  return chain;
}

/**
 * Call `onGone` once when a process this one was started under goes away: the ancestry
 * (parent, grandparent... see ancestry) is read at the call and every `intervalMs` (default
 * 1000 ms, on an unref'd timer that never keeps the process alive); any change (a parent that
 * exited leaves its children to pid 1 or a subreaper) counts. The whole chain, not the parent
 * alone, because wrappers such as `npx pnpm exec` sit in between and a killed `npx` leaves its
 * `pnpm` child running. `onGone` gets the pid that went away. Returns a function that stops watching.
 */
export function watchParent(onGone: (pid: number) => void, intervalMs = 1000): () => void {
  const start = ancestry();
  const timer = setInterval(() => {
    const now = ancestry();
    if (now.length === start.length && now.every((pid, i) => pid === start[i])) return;
    clearInterval(timer);
    // The nearest ancestor no longer in the chain is the one that went away.
    onGone(start.find((pid) => !now.includes(pid)) ?? start[0] ?? process.ppid);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
