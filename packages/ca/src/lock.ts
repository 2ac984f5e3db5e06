/**
 * The store's lock: `ca.json.lock`, a small JSON file created exclusively (O_EXCL) that names
 * its holder (a unique token, pid, host, since when) — and the liveness test that decides when
 * a lock may be taken over. A lock is taken over only when its holder cannot write any more:
 * a process of this machine that has exited, or (when liveness cannot be told: another host,
 * another pid namespace) a lock not refreshed for the stale time. A holder that is merely
 * stalled (SIGSTOP, Ctrl-Z, a debugger, a paused event loop) keeps its lock; waiters time out
 * with a message naming it.
 */
import { constants as fsc, promises as fs, readFileSync, readlinkSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { systemClock, type Clock } from "@ocsp-lab/ocsp";
import { LockLostError, LockTimeoutError } from "./errors.js";

/** What a lock file says about its holder. */
export interface LockOwner {
  /** Random, unique per acquisition: what "this lock is still mine" is checked against. */
  token: string;
  pid: number;
  host: string;
  /** When the lock was taken, ISO 8601 (the holder's clock). */
  since: string;
  /** Linux: /proc/sys/kernel/random/boot_id, the pid namespace and the process start time (clock ticks since boot), so a reused pid or a rebooted machine is not taken for the holder. */
  bootId?: string;
  pidNs?: string;
  start?: string;
}

/** The holder of a lock, as told to a waiter (CaOpenOptions.onLockWait). */
export interface LockHolder {
  /** Absolute path of the lock file. */
  lockFile: string;
  /** Undefined when the lock file cannot be read or parsed (being written, or left by an older ocsp-lab). */
  pid?: number;
  host?: string;
  since?: string;
  /** `alive`: a running process of this machine; `dead`: gone (the lock is taken over); `unknown`: another machine or namespace (taken over once stale). */
  liveness: Liveness;
}

/**
 * What a command waiting for the store lock says (without its program name or a newline):
 * `waiting for the store lock held by pid N since <ISO time> (<lock file>)`, naming the host
 * when it is another machine's.
 */
export function describeLockHolder(h: LockHolder, thisHost: string = hostname()): string {
  return h.pid === undefined
    ? `waiting for the store lock ${h.lockFile} (its holder did not say who it is)`
    : `waiting for the store lock held by pid ${h.pid}${h.host === thisHost ? "" : ` on host ${h.host}`} since ${h.since} (${h.lockFile})`;
}

/** See LockHolder.liveness. */
export type Liveness = "alive" | "dead" | "unknown";

/** How a lock is taken. */
export interface LockOptions {
  /** How long to wait for a lock another process holds, in ms. */
  waitMs: number;
  /** Age (ms since its last refresh) after which a lock whose holder's liveness is unknown is taken over; the holder refreshes every staleMs / 2. */
  staleMs: number;
  /** Called once, after `announceAfterMs` of waiting, with who holds the lock. */
  onWait?: (holder: LockHolder) => void;
  /** Default 1000 ms. */
  announceAfterMs?: number;
  /** Clock of the `since` written into the lock file (the wait itself is on real time). Default the system clock. */
  clock?: Clock;
}

/** Retry step while waiting for a lock. */
const RETRY_MS = 20;

interface Identity {
  host: string;
  bootId?: string;
  pidNs?: string;
}

let self: (Identity & { start?: string; tag: string }) | undefined;

/** This process's identity (host, Linux boot id and pid namespace, start time) and its short tag. */
export function processIdentity(): Identity & { start?: string; tag: string } {
  if (self) return self;
  const host = hostname();
  const bootId = readOr(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
  const pidNs = readOr(() => readlinkSync("/proc/self/ns/pid"));
  const start = startTicks(process.pid);
  const tag = createHash("sha256")
    .update(`${host}\0${bootId ?? ""}\0${pidNs ?? ""}`)
    .digest("hex")
    .slice(0, 8);
  self = { host, tag, ...(bootId ? { bootId } : {}), ...(pidNs ? { pidNs } : {}), ...(start ? { start } : {}) };
  return self;
}

function readOr(f: () => string): string | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks after boot), undefined when unreadable; `Z` for a zombie. */
function startTicks(pid: number): string | undefined {
  const stat = readOr(() => readFileSync(`/proc/${pid}/stat`, "utf8"));
  if (!stat) return undefined;
  // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the last `)`.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return "Z";
  return fields[19];
}

/**
 * Whether process `pid` that wrote identity `who` still runs: `alive`, `dead`, or `unknown`
 * when it is not of this machine and pid namespace (another host, a container, another boot
 * with the same host name). A stopped process (SIGSTOP) is alive; a zombie is dead.
 */
export function liveness(pid: number, who: { host?: string; bootId?: string; pidNs?: string; start?: string }): Liveness {
  const me = processIdentity();
  if (who.host !== me.host) return "unknown";
  if ((who.bootId ?? me.bootId) !== me.bootId || (who.pidNs ?? me.pidNs) !== me.pidNs) return "unknown";
  if (!Number.isSafeInteger(pid) || pid <= 0) return "unknown";
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return "dead";
    // EPERM: it exists, under another user.
  }
  const start = startTicks(pid);
  if (start === "Z") return "dead";
  // The pid was reused by a process started after the holder.
  if (who.start !== undefined && start !== undefined && start !== who.start) return "dead";
  return "alive";
}

/** What is at the lock path right now. */
type Found =
  | { kind: "none" }
  | { kind: "file"; raw: string; owner?: LockOwner; mtimeMs: number }
  | { kind: "folder"; mtimeMs: number };

async function inspect(lockFile: string): Promise<Found> {
  let st: import("node:fs").Stats;
  try {
    st = await fs.lstat(lockFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
    throw err;
  }
  // ocsp-lab before 0.2 locked with a folder (proper-lockfile), refreshed every 2.5 s.
  if (st.isDirectory()) return { kind: "folder", mtimeMs: st.mtimeMs };
  let raw: string;
  try {
    raw = await fs.readFile(lockFile, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
    throw err;
  }
  const owner = parseOwner(raw);
  return { kind: "file", raw, mtimeMs: st.mtimeMs, ...(owner ? { owner } : {}) };
}

function parseOwner(raw: string): LockOwner | undefined {
  try {
    const o = JSON.parse(raw) as Partial<LockOwner>;
    if (typeof o.token === "string" && typeof o.pid === "number" && typeof o.host === "string" && typeof o.since === "string")
      return o as LockOwner;
  } catch {
    // Being written (the file is created, then filled) or not ours.
  }
  return undefined;
}

function holderOf(lockFile: string, found: Found): LockHolder {
  if (found.kind === "file" && found.owner) {
    const o = found.owner;
    return { lockFile, pid: o.pid, host: o.host, since: o.since, liveness: liveness(o.pid, o) };
  }
  return { lockFile, liveness: "unknown" };
}

/** One line on who holds the lock and what to do, for LockTimeoutError. */
function describeHolder(h: LockHolder, staleMs: number): string {
  if (h.pid === undefined)
    return `it is held by a process that did not say who it is (an older ocsp-lab, or a lock being created); retry, or remove ${h.lockFile} if no ocsp-lab process uses this folder`;
  const where = h.host === processIdentity().host ? "" : ` on host ${h.host}`;
  const who = `it is held by pid ${h.pid}${where} since ${h.since}`;
  if (h.liveness === "alive")
    return `${who}, which is still running but not finishing (stopped with Ctrl-Z or SIGSTOP, or in a debugger?): resume it (kill -CONT ${h.pid}) or end it, then retry; its lock is never taken from it while it runs`;
  return `${who}, which refreshes it (it is taken over once not refreshed for ${staleMs / 1000} s): retry once it is done`;
}

/**
 * Take the lock at `lockFile` (creating it exclusively with this process's LockOwner), waiting
 * up to `options.waitMs` for another holder, taking it over when its holder is dead (or, when
 * liveness is unknown, not refreshed for `staleMs`). Resolves with the held lock; its mtime
 * is refreshed every staleMs / 2 until `release()`.
 * @throws LockTimeoutError naming the holder when it is not free in time; the file system's
 * error when the folder is not writable.
 */
export async function acquireLock(lockFile: string, options: LockOptions): Promise<HeldLock> {
  const clock = options.clock ?? systemClock;
  const me = processIdentity();
  const owner: LockOwner = {
    token: randomBytes(16).toString("hex"),
    pid: process.pid,
    host: me.host,
    since: clock.now().toISOString(),
    ...(me.bootId ? { bootId: me.bootId } : {}),
    ...(me.pidNs ? { pidNs: me.pidNs } : {}),
    ...(me.start ? { start: me.start } : {}),
  };
  const text = `${JSON.stringify(owner)}\n`;
  const started = performance.now();
  let announced = false;
  for (;;) {
    try {
      const handle = await fs.open(lockFile, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644);
      try {
        await handle.writeFile(text);
      } finally {
        await handle.close();
      }
      return new HeldLock(lockFile, owner, options.staleMs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const found = await inspect(lockFile);
    if (found.kind === "none") continue;
    const holder = holderOf(lockFile, found);
    const age = systemClock.now().getTime() - found.mtimeMs;
    if (holder.liveness === "dead" || (holder.liveness === "unknown" && age > options.staleMs)) {
      await takeOver(lockFile, found);
      continue;
    }
    const waited = performance.now() - started;
    if (!announced && waited >= (options.announceAfterMs ?? 1000)) {
      announced = true;
      options.onWait?.(holder);
    }
    if (waited >= options.waitMs) throw new LockTimeoutError(lockFile, options.waitMs, describeHolder(holder, options.staleMs));
    await delay(RETRY_MS);
  }
}

/**
 * Remove a lock judged abandoned, unless it changed since it was judged (another waiter took
 * it over first and holds it now). Between this last look and the unlink a few microseconds
 * remain in which a third process could take it; that holder then finds its lock gone at its
 * next check (HeldLock.assertHeld) and writes nothing.
 */
async function takeOver(lockFile: string, judged: Found): Promise<void> {
  const now = await inspect(lockFile);
  if (judged.kind === "folder") {
    if (now.kind === "folder" && now.mtimeMs === judged.mtimeMs) await fs.rm(lockFile, { recursive: true, force: true });
    return;
  }
  if (judged.kind === "file" && now.kind === "file" && now.raw === judged.raw && now.mtimeMs === judged.mtimeMs) {
    await fs.rm(lockFile, { force: true });
  }
}

/** A lock this process holds. */
export class HeldLock {
  readonly lockFile: string;
  readonly owner: LockOwner;
  private readonly refresher: NodeJS.Timeout;

  /** Use acquireLock. */
  constructor(lockFile: string, owner: LockOwner, staleMs: number) {
    this.lockFile = lockFile;
    this.owner = owner;
    // Tells waiters that cannot check this process's liveness (another host) that it is at work.
    this.refresher = setInterval(() => {
      const now = systemClock.now();
      void this.mine()
        .then((ok) => (ok ? fs.utimes(lockFile, now, now) : undefined))
        .catch(() => undefined);
    }, staleMs / 2);
    this.refresher.unref();
  }

  /**
   * Check that the lock file is still this acquisition's (same token).
   * @throws LockLostError when it was removed or another process holds it now.
   */
  async assertHeld(): Promise<void> {
    const found = await inspect(this.lockFile);
    if (found.kind === "file" && found.owner?.token === this.owner.token) return;
    const now =
      found.kind === "none"
        ? "the lock file was removed"
        : found.kind === "file" && found.owner
          ? `pid ${found.owner.pid}${found.owner.host === this.owner.host ? "" : ` on host ${found.owner.host}`} holds it since ${found.owner.since}`
          : "another process holds it";
    throw new LockLostError(this.lockFile, this.owner.since, now);
  }

  /** Stop refreshing and remove the lock file if it is still this acquisition's (never another holder's). */
  async release(): Promise<void> {
    clearInterval(this.refresher);
    if (await this.mine()) await fs.rm(this.lockFile, { force: true });
  }

  private async mine(): Promise<boolean> {
    const found = await inspect(this.lockFile).catch(() => undefined);
    return found?.kind === "file" && found.owner?.token === this.owner.token;
  }
}
