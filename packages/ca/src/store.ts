import { constants as fsc, promises as fs, unwatchFile, watchFile, type Stats } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import lockfile from "proper-lockfile";
import type { CRLReason } from "@ocsp-lab/ocsp";
import type { KeyType } from "./keys.js";
import { LockTimeoutError, StateCorruptError, StateExistsError, StateNotFoundError } from "./errors.js";

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
const LOCK_FILE = "ca.json.lock";
/** How long a writer waits for the lock. Writes take milliseconds; 10 s means something is stuck. */
const LOCK_WAIT_MS = 10_000;
/** Retry step while waiting for the lock. */
const LOCK_RETRY_MS = 20;
/**
 * A lock not refreshed for this long belongs to a dead writer and is taken over. The holder
 * refreshes it every LOCK_STALE_MS / 2, so only a killed process leaves one this old.
 */
const LOCK_STALE_MS = 5_000;
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
   * Create the store under the lock: fails if a database exists, else runs `writeFiles` (keys,
   * certificates), writes the database it returns, then runs `afterWrite` (the first CRLs; see
   * update), so two processes initialising the same folder at once never mix their keys and
   * certificates. A crash before the database is written leaves keys and certificates without
   * a ca.json (the folder is still "no CA": the next init overwrites them); a crash after it
   * leaves a CA whose first CRL files are missing until the next CRL refresh.
   * @throws StateExistsError when the folder already holds a database.
   */
  async initialize(writeFiles: () => Promise<CaDatabase>, afterWrite?: (db: CaDatabase) => Promise<void>): Promise<void> {
    await this.withLock(async () => {
      if (await this.exists()) throw new StateExistsError(this.dir);
      const db = await writeFiles();
      await this.writeAtomic(DATABASE_FILE, serialise(db), 0o644);
      await afterWrite?.(db);
    });
  }

  /**
   * Read-modify-write under the lock, in this order:
   * 1. `change` gets the database as on disk and mutates it. It may write files of its own
   *    first: issuance writes the new certificate's key, certificate and chain files
   *    (`certs/<serial>/`, `issuers/<serial>/`) here, before the database names them. If it
   *    throws, the database is not written; files it wrote are the caller's to remove, in
   *    `undo` (issuance removes them there).
   * 2. The generation is bumped and the database written atomically (temp file, fsync, rename).
   * 3. `afterWrite`, if given, runs with the database on disk, still under the lock: files
   *    derived from the new state (the CRLs) go there.
   * If 1 or 2 fails, `undo` (if given) runs still under the lock, so no other process can take
   * over what it removes; an error of `undo` is ignored and the original error is thrown.
   *
   * What a crash (kill -9, power loss) leaves: during 1, the old database plus files no record
   * names (a certificate folder missing from ca.json: never read, safe to delete); during 3,
   * the new database with the CRL files of the previous state: a CRL Number recorded but never
   * published (a gap in the sequence), and for a new intermediate no CRL files at all, until the
   * next revocation change or CRL refresh publishes them. Never a half-written file, and never a
   * record whose certificate or key file is missing.
   * Returns the database as written.
   * @throws LockTimeoutError when another process holds the lock for more than 10 s; whatever
   * `change` or `afterWrite` throws.
   */
  async update(
    change: (db: CaDatabase) => void | Promise<void>,
    afterWrite?: (db: CaDatabase) => Promise<void>,
    undo?: () => Promise<void>,
  ): Promise<CaDatabase> {
    return this.withLock(async () => {
      const db = await this.read();
      try {
        await change(db);
        db.generation += 1;
        await this.writeAtomic(DATABASE_FILE, serialise(db), 0o644);
      } catch (err) {
        await undo?.().catch(() => undefined);
        throw err;
      }
      await afterWrite?.(db);
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

  /**
   * Run `fn` holding the store's lock (proper-lockfile: a `ca.json.lock` folder created
   * atomically, its mtime refreshed while held, taken over when older than LOCK_STALE_MS, so a
   * writer killed mid-way blocks others for seconds, not forever).
   * @throws LockTimeoutError when the lock cannot be had within LOCK_WAIT_MS.
   */
  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.dir, { recursive: true });
    const target = this.path(DATABASE_FILE);
    let compromised: Error | undefined;
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(target, {
        realpath: false,
        lockfilePath: this.path(LOCK_FILE),
        stale: LOCK_STALE_MS,
        retries: {
          retries: Math.ceil(LOCK_WAIT_MS / LOCK_RETRY_MS),
          minTimeout: LOCK_RETRY_MS,
          maxTimeout: LOCK_RETRY_MS,
          factor: 1,
        },
        onCompromised: (err) => {
          compromised = err;
        },
      });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ELOCKED") throw new LockTimeoutError(this.path(LOCK_FILE), LOCK_WAIT_MS);
      throw cause;
    }
    try {
      const result = await fn();
      if (compromised) throw new LockTimeoutError(this.path(LOCK_FILE), LOCK_STALE_MS);
      return result;
    } finally {
      await release().catch(() => undefined);
    }
  }
}

/**
 * The database as written: compact JSON (a 100,000-certificate store is ~30% smaller and faster
 * to write than indented), one trailing newline. `ocsp-ca list --json` is the readable view.
 */
function serialise(db: CaDatabase): string {
  return `${JSON.stringify(db)}\n`;
}
