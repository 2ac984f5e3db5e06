import { AsyncLocalStorage } from "node:async_hooks";
import { constants as fsc, promises as fs, unwatchFile, watchFile, type Stats } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { CRLReason, systemClock, type Clock } from "@ocsp-lab/ocsp";
import type { KeyType } from "./keys.js";
import {
  type CaError,
  CrlNotPublishedError,
  StateCorruptError,
  StateExistsError,
  StateNotFoundError,
  StoreConflictError,
} from "./errors.js";
import { type HeldLock, type LockHolder, acquireLock, liveness, processIdentity } from "./lock.js";

/** What a certificate in the CA is for: a CA (root, intermediate) or a profile it issued. */
export type CertificateKind = "root" | "intermediate" | "ocsp-signer" | "server" | "client";

/** A revocation as recorded in the store (RFC 5280 §5.3.1 reason, RFC 6960 revocationTime). */
export interface RevocationRecord {
  /** ISO 8601 revocation time (may be backdated). */
  time: string;
  /** RFC 5280 CRLReason code; certificateHold (6) for a hold. */
  reason: CRLReason;
  /** RFC 5280 §5.3.2 invalidity date, ISO 8601. */
  invalidityDate?: string;
  /**
   * When `revoke()` (or `hold()`) was called, on the CA's clock, ISO 8601: differs from `time`
   * when the revocation was backdated. For people and tools reading ca.json only: no CRL or
   * OCSP answer uses it, and delta CRLs select on CertificateRecord.changedGeneration.
   */
  recordedAt?: string;
}

/** The CRL numbering of one issuer (RFC 5280 §5.2.3), persisted so a number is never reused. */
export interface CrlState {
  /**
   * Last CRL Number used (RFC 5280 §5.2.3). Each publication uses the next number for both the
   * full and the delta CRL it issues together; a number is never reused, even after a crash.
   */
  lastNumber: number;
  /**
   * The full CRL that current delta CRLs are relative to (RFC 5280 §5.2.4 BaseCRLNumber), and
   * the store generation it was issued in.
   */
  base?: { number: number; thisUpdate: string; generation?: number };
}

/** One issued certificate. Paths are relative to the state folder. */
export interface CertificateRecord {
  /** Canonical lowercase hex serial (see normalizeSerial). */
  serial: string;
  kind: CertificateKind;
  /** Subject DN as text, e.g. `CN=localhost`. */
  subject: string;
  keyType: KeyType;
  /** ISO 8601 validity. */
  notBefore: string;
  notAfter: string;
  /** PEM certificate file. */
  certFile: string;
  /** PEM PKCS#8 private key file (mode 0600); absent for a certificate signed from a CSR. */
  keyFile?: string;
  /** Serial of the issuing CA; absent for the root (and, in stores written before intermediates existed, meaning the root). */
  issuer?: string;
  /** Issuer chain up to the root (PEM), and the certificate followed by it (PEM). */
  chainFile?: string;
  fullchainFile?: string;
  /** For CAs: serial of its delegated OCSP signer. */
  ocspSigner?: string;
  /** For CAs: basicConstraints pathLenConstraint; absent means unlimited. */
  pathLength?: number;
  /** For deliberately broken OCSP signers: the defect. */
  flaw?: string;
  /** Present while revoked (or on hold). */
  revocation?: RevocationRecord;
  /**
   * When it was last released from certificateHold, on the CA's clock, ISO 8601: the
   * revocationDate of its removeFromCRL entry in delta CRLs (which delta CRLs list it is decided
   * by `changedGeneration`, not by this time).
   */
  releasedAt?: string;
  /**
   * CaDatabase.generation of the write that last changed its revocation state (revoke, hold,
   * release); absent while it never changed. A delta CRL lists the certificate (as revoked, held,
   * or removeFromCRL once released) when this is greater than its base CRL's generation
   * (CrlState.base.generation): generations, not clocks, so a clock step never hides a change.
   */
  changedGeneration?: number;
}

/** The CA database, `ca.json` in the state folder. */
export interface CaDatabase {
  version: 1;
  /** Incremented on every write, so readers can tell a change even within one mtime tick. */
  generation: number;
  /** Serial of the root CA certificate. */
  root: string;
  /** Serial of the delegated OCSP signing certificate. */
  ocspSigner: string;
  /** Every certificate, keyed by canonical serial. */
  certificates: Record<string, CertificateRecord>;
  /** CRL numbering per issuing CA serial. */
  crls?: Record<string, CrlState>;
}

/** File name of the database inside the state folder. */
export const DATABASE_FILE = "ca.json";
/** File name of the lock (see lock.ts) inside the state folder. */
export const LOCK_FILE = "ca.json.lock";
/** How long a writer waits for the lock by default. Writes take milliseconds; 10 s means something is stuck. */
export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
/**
 * A lock whose holder's liveness cannot be told (another host or pid namespace sharing the
 * folder) and that was not refreshed for this long is taken over. The holder refreshes it
 * every LOCK_STALE_MS / 2. A holder on this machine is judged by its pid instead: taken over
 * at once when it has exited, never while it runs.
 */
const LOCK_STALE_MS = 5_000;
/** A temp file of an ocsp-lab older than 0.2 (no pid in its name) older than this is left from an interrupted write. */
const LEGACY_TEMP_AGE_MS = 60_000;
/** Temp files: `.<host tag>.<pid>.<12 hex>.tmp` in the state folder; older ocsp-lab: `.<12 hex>.tmp`. */
const TEMP_FILE = /^\.([0-9a-f]{8})\.(\d+)\.[0-9a-f]{12}\.tmp$/;
const LEGACY_TEMP_FILE = /^\.[0-9a-f]{12}\.tmp$/;
/**
 * Debug hook: with this environment variable set to `1`, a writer that holds the lock and has
 * written the new database to its temp file prints one line on stderr
 * (`OCSP_LAB_STORE_PAUSE_BEFORE_COMMIT: pid N holds the store lock …`) and stops itself with
 * SIGSTOP, before checking its lock and renaming the file into place; `kill -CONT N` resumes
 * it. It reproduces a stall at the worst moment (a paused VM, a debugger, Ctrl-Z), for tests
 * and for anyone checking what a stall does to the store.
 */
export const PAUSE_BEFORE_COMMIT_ENV = "OCSP_LAB_STORE_PAUSE_BEFORE_COMMIT";
/**
 * How often a watching reader stats the database. 200 ms keeps "a revocation made by one command
 * is seen by a running responder within 1 second" with room to spare, for one stat() per tick.
 */
export const WATCH_INTERVAL_MS = 200;

/** Options of a FileStore. */
export interface FileStoreOptions {
  /** How long a write waits for the lock another process holds, in ms. Default 10,000. */
  lockTimeoutMs?: number;
  /** Called once when a write has waited 1 s for the lock, with who holds it (e.g. to print `waiting for the store lock held by pid N since …`). */
  onLockWait?: (holder: LockHolder) => void;
  /**
   * What went wrong after a change landed (CrlNotPublishedError: the CRL files were not
   * republished). Default: process.emitWarning, so it is never silent.
   */
  onWarning?: (warning: CaError) => void;
  /** Clock of the `since` time in the lock file. Default the system clock. */
  clock?: Clock;
}

/** What identifies the database file a write read, to tell whether it was replaced since. */
interface FileIdentity {
  ino: number;
  size: number;
  mtimeMs: number;
}

/**
 * The persistent state folder of one lab CA (like mkcert's CAROOT): the database `ca.json`,
 * PEM certificates and 0600 keys.
 *
 * Writes are atomic (temp file, fsync, rename, fsync of the folder) and serialised across
 * processes by the lock file `ca.json.lock` (see lock.ts), which names its holder. A write
 * lands only if, right before its rename, the lock is still its own (same token) and
 * `ca.json` is still the file it read (same inode, size and mtime); otherwise it is dropped
 * with LockLostError or StoreConflictError and the store keeps what the other writer put
 * there. So a command that reports success has its change on disk, and one that reports
 * failure changed nothing (see `update` for the one exception, CRL files, delivered as a
 * warning).
 *
 * A lock is never taken from a holder that still runs on this machine, however long it stalls
 * (SIGSTOP, a debugger): waiters give up after the lock timeout with LockTimeoutError naming
 * it. A holder that has exited (kill -9, a crash) loses its lock to the next writer at once.
 * A holder on another host (a shared folder) is taken over once its lock has not been refreshed
 * for 5 s; its late write is then refused by the checks above. What remains: a holder that
 * stalls between those checks and its rename (microseconds) while its lock is removed by hand
 * or taken over from another host can still land a stale copy; on one machine, with ocsp-lab's
 * own tools, that cannot happen.
 */
export class FileStore {
  /** Absolute path of the state folder. */
  readonly dir: string;
  private readonly options: FileStoreOptions;
  /** The lock held by the locked section a call runs in, if any (so its writes are checked against it). */
  private readonly held = new AsyncLocalStorage<HeldLock>();
  /** This handle's writers, one after the other (same-process writers queue here, not on the lock file). */
  private queue: Promise<void> = Promise.resolve();

  /** A store over the folder `dir` (not created until the first write). */
  constructor(dir: string, options: FileStoreOptions = {}) {
    this.dir = dir;
    this.options = options;
  }

  /** Absolute path of a file in the state folder. */
  path(rel: string): string {
    return join(this.dir, rel);
  }

  /** Whether a database exists in the folder. */
  async exists(): Promise<boolean> {
    try {
      await fs.access(this.path(DATABASE_FILE));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Read and validate the database.
   * @throws StateNotFoundError when there is none; StateCorruptError when it cannot be read,
   * does not parse, or is inconsistent (the message names the field: `"root" names serial …,
   * which has no record in "certificates"`, `generation is "7", not a whole number`…).
   */
  async read(): Promise<CaDatabase> {
    return (await this.readWithIdentity()).db;
  }

  /**
   * Remove the temp files interrupted writes left in the state folder (a writer killed between
   * creating its temp file and renaming it): those of processes of this machine that have
   * exited, and those of an ocsp-lab older than 0.2 older than a minute. A temp file of a
   * process that still runs (a stalled lock holder) is kept. Errors (a read-only folder) are
   * ignored. Returns the absolute paths removed.
   */
  async removeInterruptedWrites(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return [];
    }
    const me = processIdentity();
    const now = (this.options.clock ?? systemClock).now().getTime();
    const removed: string[] = [];
    for (const name of names) {
      const file = this.path(name);
      const m = TEMP_FILE.exec(name);
      let abandoned = false;
      // Same tag: same host, boot and pid namespace, so the pid says whether its writer still runs.
      if (m)
        abandoned = m[1] === me.tag && liveness(Number(m[2]), { host: me.host, bootId: me.bootId, pidNs: me.pidNs }) === "dead";
      else if (LEGACY_TEMP_FILE.test(name)) {
        const st = await fs.stat(file).catch(() => undefined);
        abandoned = st !== undefined && now - st.mtimeMs > LEGACY_TEMP_AGE_MS;
      }
      if (!abandoned) continue;
      try {
        await fs.rm(file, { force: true });
        removed.push(file);
      } catch {
        // Not ours to remove (read-only folder): harmless, never read.
      }
    }
    return removed;
  }

  /**
   * Create the store under the lock: fails if a database exists, else runs `writeFiles` (keys,
   * certificates), writes the database it returns, then runs `afterWrite` (the first CRLs; see
   * update), so two processes initialising the same folder at once never mix their keys and
   * certificates. A crash before the database is written leaves keys and certificates without
   * a ca.json (the folder is still "no CA": the next init overwrites them); a crash after it
   * leaves a CA whose first CRL files are missing until the next CRL refresh.
   * @throws StateExistsError when the folder already holds a database; LockTimeoutError,
   * LockLostError as update.
   */
  async initialize(writeFiles: () => Promise<CaDatabase>, afterWrite?: (db: CaDatabase) => Promise<void>): Promise<void> {
    await this.withLock(async (lock) => {
      if (await this.exists()) throw new StateExistsError(this.dir);
      const db = await writeFiles();
      await this.writeFileAtomic(this.path(DATABASE_FILE), serialise(db), 0o644, async () => {
        await lock.assertHeld();
        if (await this.exists()) throw new StateExistsError(this.dir);
      });
      await this.afterCommit(db, afterWrite);
    });
  }

  /**
   * Read-modify-write under the lock, in this order:
   * 1. `change` gets the database as on disk and mutates it. It may write files of its own
   *    first: issuance writes the new certificate's key, certificate and chain files
   *    (`certs/<serial>/`, `issuers/<serial>/`) here, before the database names them. If it
   *    throws, the database is not written; files it wrote are the caller's to remove, in
   *    `undo` (issuance removes them there).
   * 2. The generation is bumped and the database written to a temp file (fsync). Right before
   *    renaming it over `ca.json`, the lock is checked to be still this write's and `ca.json`
   *    to be still the file read in 1; if not, nothing is renamed (LockLostError,
   *    StoreConflictError). Every other file written inside the locked section (by `change`
   *    or `afterWrite`) is checked against the lock the same way.
   * 3. `afterWrite`, if given, runs with the database on disk, still under the lock: files
   *    derived from the new state (the CRLs) go there. The change has landed by then, so a
   *    failure here does not fail the call: it goes to FileStoreOptions.onWarning as
   *    CrlNotPublishedError.
   * If 1 or 2 fails, `undo` (if given) runs still under the lock, so no other process can take
   * over what it removes; an error of `undo` is ignored and the original error is thrown.
   *
   * What a crash (kill -9, power loss) leaves: during 1, the old database plus files no record
   * names (a certificate folder missing from ca.json: never read, safe to delete) and maybe a
   * temp file (removed at the next open, see removeInterruptedWrites); during 3,
   * the new database with the CRL files of the previous state: a CRL Number recorded but never
   * published (a gap in the sequence), and for a new intermediate no CRL files at all, until the
   * next revocation change or CRL refresh publishes them. Never a half-written file, and never a
   * record whose certificate or key file is missing.
   * Returns the database as written.
   * @throws LockTimeoutError when another process holds the lock for longer than the lock
   * timeout (10 s by default); LockLostError, StoreConflictError (nothing written);
   * StateCorruptError when ca.json is unusable; whatever `change` throws.
   */
  async update(
    change: (db: CaDatabase) => void | Promise<void>,
    afterWrite?: (db: CaDatabase) => Promise<void>,
    undo?: () => Promise<void>,
  ): Promise<CaDatabase> {
    return this.withLock(async (lock) => {
      const { db, identity } = await this.readWithIdentity();
      const readGeneration = db.generation;
      try {
        await change(db);
        db.generation += 1;
        await this.writeFileAtomic(this.path(DATABASE_FILE), serialise(db), 0o644, async () => {
          pauseBeforeCommit(this.dir, db.generation);
          await lock.assertHeld();
          await this.assertUnchanged(identity, readGeneration);
        });
      } catch (err) {
        await undo?.().catch(() => undefined);
        throw err;
      }
      await this.afterCommit(db, afterWrite);
      return db;
    });
  }

  /**
   * Write a file atomically: temp file in the state folder, fsync, rename over the target, fsync
   * the target's folder. `mode` applies from creation (keys are never world-readable, not even
   * briefly). Called inside `update`'s or `initialize`'s callbacks, the rename happens only if
   * the lock is still held (else LockLostError, and the target is untouched). Returns the
   * absolute path written.
   */
  async writeAtomic(rel: string, data: string | Uint8Array, mode: number): Promise<string> {
    const lock = this.held.getStore();
    const target = this.path(rel);
    await this.writeFileAtomic(target, data, mode, lock ? () => lock.assertHeld() : undefined);
    return target;
  }

  /**
   * Call `onChange` whenever the database file changes on disk (another process wrote it).
   * Polls with stat() every WATCH_INTERVAL_MS, which also sees rename-replace (the inode
   * changes). Returns a function that stops watching. The poller does not keep the process alive.
   */
  watch(onChange: () => void): () => void {
    const file = this.path(DATABASE_FILE);
    const listener = (curr: Stats, prev: Stats): void => {
      if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) onChange();
    };
    watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, listener);
    return () => unwatchFile(file, listener);
  }

  /** The database and the identity of the file it was read from (one open file: what was read is what is identified). */
  private async readWithIdentity(): Promise<{ db: CaDatabase; identity: FileIdentity }> {
    const file = this.path(DATABASE_FILE);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "r");
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") throw new StateNotFoundError(this.dir, { cause });
      throw new StateCorruptError(file, `it cannot be read (${code ?? String(cause)})`, { cause });
    }
    try {
      const st = await handle.stat();
      const text = await handle.readFile("utf8");
      return { db: parseDatabase(text, file), identity: { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } };
    } finally {
      await handle.close();
    }
  }

  /** @throws StoreConflictError when ca.json is no longer the file `identity` describes. */
  private async assertUnchanged(identity: FileIdentity, readGeneration: number): Promise<void> {
    const file = this.path(DATABASE_FILE);
    const st = await fs.stat(file).catch(() => undefined);
    if (st && st.ino === identity.ino && st.size === identity.size && st.mtimeMs === identity.mtimeMs) return;
    let now: number | undefined;
    try {
      now = parseDatabase(await fs.readFile(file, "utf8"), file).generation;
    } catch {
      now = undefined;
    }
    throw new StoreConflictError(file, readGeneration, now);
  }

  /** Run `afterWrite` once the database landed; its failure is a warning, not the caller's error. */
  private async afterCommit(db: CaDatabase, afterWrite: ((db: CaDatabase) => Promise<void>) | undefined): Promise<void> {
    if (!afterWrite) return;
    try {
      await afterWrite(db);
    } catch (err) {
      const warning = new CrlNotPublishedError(db.generation, err);
      if (this.options.onWarning) this.options.onWarning(warning);
      else process.emitWarning(warning);
    }
  }

  /**
   * Temp file in the state folder (so an interrupted write leaves it where the next open looks),
   * fsync, `check` (the lock's), rename over `target`, fsync of the target's folder. A state
   * folder whose subfolders are on another file system gets the temp file beside the target.
   */
  private async writeFileAtomic(
    target: string,
    data: string | Uint8Array,
    mode: number,
    check?: () => Promise<void>,
  ): Promise<void> {
    const dir = dirname(target);
    await fs.mkdir(dir, { recursive: true });
    let tmp = await writeTemp(this.dir, data, mode);
    try {
      await check?.();
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
        await fs.rm(tmp, { force: true });
        tmp = await writeTemp(dir, data, mode);
        await check?.();
        await fs.rename(tmp, target);
      }
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const dirHandle = await fs.open(dir, "r");
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  /**
   * Run `fn` holding the store's lock (see lock.ts; the lock timeout and onLockWait from the
   * options), one writer of this handle at a time. Writes made by `fn` through writeAtomic are
   * checked against the lock before they land.
   * @throws LockTimeoutError when the lock cannot be had within the lock timeout.
   */
  private async withLock<T>(fn: (lock: HeldLock) => Promise<T>): Promise<T> {
    const previous = this.queue;
    let done!: () => void;
    this.queue = new Promise<void>((resolve) => {
      done = resolve;
    });
    await previous;
    try {
      await fs.mkdir(this.dir, { recursive: true });
      const lock = await acquireLock(this.path(LOCK_FILE), {
        waitMs: this.options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
        staleMs: LOCK_STALE_MS,
        ...(this.options.onLockWait ? { onWait: this.options.onLockWait } : {}),
        ...(this.options.clock ? { clock: this.options.clock } : {}),
      });
      try {
        return await this.held.run(lock, () => fn(lock));
      } finally {
        await lock.release().catch(() => undefined);
      }
    } finally {
      done();
    }
  }
}

/** Write `data` to a new temp file in `dir` (mode from creation, fsync); returns its path. */
async function writeTemp(dir: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = join(dir, `.${processIdentity().tag}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.chmod(tmp, mode);
  return tmp;
}

/** See PAUSE_BEFORE_COMMIT_ENV. */
function pauseBeforeCommit(dir: string, generation: number): void {
  if (process.env[PAUSE_BEFORE_COMMIT_ENV] !== "1") return;
  // stderr is synchronous for files, pipes and terminals on Linux: the line is out before the stop.
  process.stderr.write(
    `${PAUSE_BEFORE_COMMIT_ENV}: pid ${process.pid} holds the store lock of ${dir} and stops itself before writing ca.json generation ${generation}; resume it with: kill -CONT ${process.pid}\n`,
  );
  process.kill(process.pid, "SIGSTOP");
}

const KINDS = new Set<string>(["root", "intermediate", "ocsp-signer", "server", "client"]);

/**
 * Parse and check `ca.json` (text of `file`): JSON, version 1, a whole-number generation, the
 * root and OCSP signer records present, every record of the right shape. Linear in the number
 * of records, a few field checks each.
 * @throws StateCorruptError with one line naming the field and what is wrong.
 */
export function parseDatabase(text: string, file: string): CaDatabase {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new StateCorruptError(file, `it is not JSON (${(cause as Error).message})`, { cause });
  }
  const bad = (detail: string): never => {
    throw new StateCorruptError(file, detail);
  };
  const show = (v: unknown): string => (v === undefined ? "missing" : Array.isArray(v) ? "an array" : JSON.stringify(v));
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  const wholeNumber = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!isObject(raw)) return bad(`it is ${show(raw)}, not an object`);
  if (raw.version !== 1) return bad(`unknown version ${show(raw.version)} (this ocsp-lab reads version 1)`);
  if (!wholeNumber(raw.generation)) return bad(`"generation" is ${show(raw.generation)}, not a whole number ≥ 0`);
  const certs = raw.certificates;
  if (!isObject(certs)) return bad(`"certificates" is ${show(certs)}, not an object of records keyed by serial`);
  for (const field of ["root", "ocspSigner"] as const) {
    const serial = raw[field];
    if (typeof serial !== "string") return bad(`"${field}" is ${show(serial)}, not a serial`);
    if (!isObject(certs[serial])) return bad(`"${field}" names serial ${serial}, which has no record in "certificates"`);
  }
  if ((certs[raw.root as string] as { kind: string }).kind !== "root")
    return bad(`"root" names serial ${raw.root as string}, whose record is not of kind root`);
  // for…in and messages built only on failure: ~100,000 records in well under JSON.parse's time.
  for (const key in certs) {
    const rec = certs[key];
    const at = (): string => `certificates[${JSON.stringify(key)}]`;
    if (!isObject(rec)) return bad(`${at()} is ${show(rec)}, not a record`);
    if (rec.serial !== key) return bad(`${at()}.serial is ${show(rec.serial)}, not its key`);
    if (typeof rec.kind !== "string" || !KINDS.has(rec.kind))
      return bad(`${at()}.kind is ${show(rec.kind)}, not one of ${[...KINDS].join(", ")}`);
    if (typeof rec.certFile !== "string" || rec.certFile === "")
      return bad(`${at()}.certFile is ${show(rec.certFile)}, not a file name`);
    if (rec.keyFile !== undefined && typeof rec.keyFile !== "string")
      return bad(`${at()}.keyFile is ${show(rec.keyFile)}, not a file name`);
    const issuer = rec.issuer;
    if (issuer !== undefined && !(typeof issuer === "string" && isObject(certs[issuer])))
      return bad(`${at()}.issuer is ${show(issuer)}, which has no record in "certificates"`);
    if (rec.changedGeneration !== undefined && !wholeNumber(rec.changedGeneration))
      return bad(`${at()}.changedGeneration is ${show(rec.changedGeneration)}, not a whole number ≥ 0`);
    const r = rec.revocation;
    if (r !== undefined) {
      if (!isObject(r)) return bad(`${at()}.revocation is ${show(r)}, not a record`);
      if (typeof r.time !== "string" || Number.isNaN(Date.parse(r.time)))
        return bad(`${at()}.revocation.time is ${show(r.time)}, not an ISO 8601 time`);
      if (typeof r.reason !== "number" || CRLReason[r.reason] === undefined || r.reason === CRLReason.removeFromCRL)
        return bad(`${at()}.revocation.reason is ${show(r.reason)}, not an RFC 5280 CRLReason code`);
    }
  }
  if (raw.crls !== undefined) {
    if (!isObject(raw.crls)) return bad(`"crls" is ${show(raw.crls)}, not an object keyed by issuer serial`);
    for (const [key, state] of Object.entries(raw.crls)) {
      if (!isObject(state) || !wholeNumber(state.lastNumber))
        return bad(
          `crls[${JSON.stringify(key)}].lastNumber is ${show(isObject(state) ? state.lastNumber : state)}, not a whole number ≥ 0`,
        );
    }
  }
  return raw as unknown as CaDatabase;
}

/**
 * The database as written: compact JSON (a 100,000-certificate store is ~30% smaller and faster
 * to write than indented), one trailing newline. `ocsp-ca list --json` is the readable view.
 */
function serialise(db: CaDatabase): string {
  return `${JSON.stringify(db)}\n`;
}
