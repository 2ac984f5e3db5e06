import { constants as fsc, promises as fs, unwatchFile, watchFile, type Stats } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import type { CRLReason } from "./crl-reason.js";
import type { KeyType } from "./keys.js";
import { LockTimeoutError, StateCorruptError, StateNotFoundError } from "./errors.js";

/** What a certificate in the CA is for. */
export type CertificateKind = "root" | "ocsp-signer" | "server";

/** A revocation as recorded in the store (RFC 5280 §5.3.1 reason, RFC 6960 revocationTime). */
export interface RevocationRecord {
  /** ISO 8601 revocation time. */
  time: string;
  /** RFC 5280 CRLReason code. */
  reason: CRLReason;
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
  /** PEM PKCS#8 private key file (mode 0600). */
  keyFile: string;
  /** For server certificates: issuer chain (PEM) and leaf + chain (PEM). */
  chainFile?: string;
  fullchainFile?: string;
  /** Present once revoked. */
  revocation?: RevocationRecord;
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
}

/** File name of the database inside the state folder. */
export const DATABASE_FILE = "ca.json";
const LOCK_FILE = "ca.json.lock";
/** How long a writer waits for the lock. Writes take milliseconds; 10 s means something is stuck. */
const LOCK_WAIT_MS = 10_000;
/** Poll step while waiting for the lock. */
const LOCK_RETRY_MS = 15;
/**
 * How often a watching reader stats the database. 200 ms keeps "a revocation made by one command
 * is seen by a running responder within 1 second" with room to spare, for one stat() per tick.
 */
export const WATCH_INTERVAL_MS = 200;

/**
 * The persistent state folder of one lab CA (like mkcert's CAROOT): the database `ca.json`,
 * PEM certificates and 0600 keys. Writes are atomic (temp file, fsync, rename, fsync of the
 * folder) and serialised across processes by an exclusive lock file, so a CLI revoking while a
 * responder serves never loses an update and a crash never leaves a half-written file.
 */
export class FileStore {
  /** Absolute path of the state folder. */
  readonly dir: string;

  /** A store over the folder `dir` (not created until the first write). */
  constructor(dir: string) {
    this.dir = dir;
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
   * @throws StateNotFoundError when there is none, StateCorruptError when it does not parse.
   */
  async read(): Promise<CaDatabase> {
    const file = this.path(DATABASE_FILE);
    let text: string;
    try {
      text = await fs.readFile(file, "utf8");
    } catch (cause) {
      throw new StateNotFoundError(this.dir, { cause });
    }
    let db: CaDatabase;
    try {
      db = JSON.parse(text) as CaDatabase;
    } catch (cause) {
      throw new StateCorruptError(file, "not JSON", { cause });
    }
    if (db?.version !== 1 || typeof db.certificates !== "object" || db.certificates === null) {
      throw new StateCorruptError(file, `unknown version ${JSON.stringify(db?.version)}`);
    }
    return db;
  }

  /**
   * Create the database; fails if one exists (exclusive create of the lock, then of the file).
   */
  async create(db: CaDatabase): Promise<void> {
    await this.withLock(async () => {
      await this.writeAtomic(DATABASE_FILE, JSON.stringify(db, null, 2) + "\n", 0o644);
    });
  }

  /**
   * Read-modify-write under the lock. `change` mutates the database it is given (or throws to
   * abort, leaving the store untouched); the generation is bumped and the result written
   * atomically. Returns the database as written.
   * @throws LockTimeoutError when another process holds the lock for more than 10 s.
   */
  async update(change: (db: CaDatabase) => void | Promise<void>): Promise<CaDatabase> {
    return this.withLock(async () => {
      const db = await this.read();
      await change(db);
      db.generation += 1;
      await this.writeAtomic(DATABASE_FILE, JSON.stringify(db, null, 2) + "\n", 0o644);
      return db;
    });
  }

  /**
   * Write a file atomically: temp file in the same folder, fsync, rename over the target, fsync
   * the folder. `mode` applies from creation (keys are never world-readable, not even briefly).
   */
  async writeAtomic(rel: string, data: string | Uint8Array, mode: number): Promise<string> {
    const target = this.path(rel);
    const dir = dirname(target);
    await fs.mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
    const handle = await fs.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, target);
    const dirHandle = await fs.open(dir, "r");
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
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

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.dir, { recursive: true });
    const lock = this.path(LOCK_FILE);
    const started = Date.now();
    for (;;) {
      try {
        const handle = await fs.open(lock, "wx", 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        if (await this.lockIsStale(lock)) {
          await fs.rm(lock, { force: true });
          continue;
        }
        if (Date.now() - started > LOCK_WAIT_MS) throw new LockTimeoutError(lock, LOCK_WAIT_MS);
        await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
      }
    }
    try {
      return await fn();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  /** A lock is stale when the process that wrote it no longer exists (killed mid-write). */
  private async lockIsStale(lock: string): Promise<boolean> {
    let pid: number;
    try {
      pid = Number(await fs.readFile(lock, "utf8"));
    } catch {
      return false;
    }
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }
}
