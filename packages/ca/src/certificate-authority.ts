import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { CRLReason, defaultCrypto, normalizeSerial, systemClock, type CertStatus, type Clock } from "@ocsp-lab/ocsp";
import { CrlPublisher, DEFAULT_CRL_VALIDITY_SECONDS, type PendingFile, type PublishedCrls } from "./crl/crl-publisher.js";
import {
  AlreadyRevokedError,
  type CaError,
  InvalidArgumentError,
  StateCorruptError,
  StateExistsError,
  UnknownSerialError,
} from "./errors.js";
import {
  DAY_MS,
  DEFAULT_BACKDATE_SECONDS,
  ROOT_VALIDITY_DAYS,
  SIGNER_VALIDITY_DAYS,
  buildCertificate,
  certificatePem,
  checkKeyType,
  duplicateSerialError,
  planIssuance,
  readCsr,
  recordOf,
  selfSignedCa,
  throwawayCa,
  type IssuancePlan,
  type IssueOptions,
  type IssueServerOptions,
  type IssuedCertificate,
} from "./issuance.js";
import { generateKeyPair, parseKeyType, privateKeyFromPem, privateKeyToPem, type KeyType, type Signer } from "./keys.js";
import type { Profile } from "./profiles.js";
import { newSerial } from "./serial.js";
import type { LockHolder } from "./lock.js";
import { DATABASE_FILE, FileStore, type CaDatabase, type CertificateRecord, type FileStoreOptions } from "./store.js";
import { subjectName } from "./subject.js";

/** Options of CertificateAuthority.init. */
export interface CaInitOptions {
  /** Key type of the root and its OCSP signer. Default `ecdsa-p256`. */
  keyType?: KeyType;
  /** Root common name. Default `ocsp-lab root CA <4 hex>` so two labs never look alike. */
  commonName?: string;
  clock?: Clock;
  crypto?: Crypto;
}

/** Options of CertificateAuthority.open. */
export interface CaOpenOptions {
  /** Time source (issuance, revocation times, CRL thisUpdate) and the scheduler of scheduleCrlRefresh. Default the system clock. */
  clock?: Clock;
  crypto?: Crypto;
  /** Follow changes other processes make to the store (polls every 200 ms). Default false. */
  watch?: boolean;
  /** thisUpdate → nextUpdate of the CRLs this handle publishes, in seconds. Default 86,400. */
  crlValiditySeconds?: number;
  /** How long a write waits for the store lock another process holds, in seconds. Default 10. */
  lockTimeoutSeconds?: number;
  /**
   * Called once when a write has waited 1 s for the store lock, with its holder (pid, host,
   * since when; see LockHolder): the CLI prints `waiting for the store lock held by pid N since …`.
   */
  onLockWait?: (holder: LockHolder) => void;
  /**
   * What went wrong after a change landed (CrlNotPublishedError: the change is in ca.json,
   * its CRL files were not republished). Default process.emitWarning.
   */
  onWarning?: (warning: CaError) => void;
  /**
   * With `watch: true`: called when the store changed on disk but cannot be reloaded (a
   * StateCorruptError naming the file and what is wrong, or StateNotFoundError when ca.json is
   * gone); the handle keeps serving its last good state. Same as `watch(undefined, onError)`.
   */
  onWatchError?: (error: CaError) => void;
}

/** The FileStore options of CaOpenOptions. */
function storeOptions(options: CaOpenOptions): FileStoreOptions {
  return {
    ...(options.lockTimeoutSeconds !== undefined ? { lockTimeoutMs: options.lockTimeoutSeconds * 1000 } : {}),
    ...(options.onLockWait ? { onLockWait: options.onLockWait } : {}),
    ...(options.onWarning ? { onWarning: options.onWarning } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  };
}

/**
 * The status of a serial as the CA knows it: an RFC 6960 §4.2.1 CertStatus (for revoked, the
 * RevokedInfo with the recorded CRLReason) plus, when recorded, the RFC 5280 §5.3.2
 * invalidity date.
 */
export type SerialStatus = CertStatus & { invalidityDate?: Date };

/** Options of revoke. */
export interface RevokeOptions {
  /** RFC 5280 CRLReason; default unspecified. */
  reason?: CRLReason;
  /** Revocation time; default now. */
  time?: Date;
  /** RFC 5280 §5.3.2 invalidity date: when the key is known or suspected to have been compromised. */
  invalidityDate?: Date;
  /**
   * Replace the reason, time and invalidity date of a certificate already revoked (for a final
   * reason: among final reasons only) or already on hold. Default false: the first revocation
   * stands and the call is refused (AlreadyRevokedError).
   */
  force?: boolean;
}

/**
 * A private CA kept in a state folder: a self-signed root, any number of intermediates, a
 * delegated OCSP signer per CA (id-kp-OCSPSigning + id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2),
 * server and client certificates, certificates signed from CSRs, revocation with RFC 5280
 * reasons, holds and releases, and full and delta CRLs (RFC 5280 §5, see CrlPublisher)
 * republished on every revocation change. Every write goes through the store's lock; a handle
 * opened with `watch: true` sees other processes' changes within a second.
 */
export class CertificateAuthority {
  readonly store: FileStore;
  /** The root CA, the trust anchor clients load. */
  readonly root: Signer;
  /** The root's delegated OCSP signer. */
  readonly ocspSigner: Signer;
  private db: CaDatabase;
  private readonly clock: Clock;
  private readonly crypto: Crypto;
  private readonly crls: CrlPublisher;
  private readonly signers = new Map<string, Signer>();
  private unwatch: (() => void) | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly errorListeners = new Set<(error: CaError) => void>();
  /** The message of the last reload failure reported, so a broken file is reported once, not on every poll. */
  private lastWatchError: string | undefined;

  private constructor(store: FileStore, db: CaDatabase, root: Signer, ocspSigner: Signer, options: CaOpenOptions) {
    this.store = store;
    this.db = db;
    this.root = root;
    this.ocspSigner = ocspSigner;
    this.clock = options.clock ?? systemClock;
    this.crypto = options.crypto ?? defaultCrypto;
    this.crls = new CrlPublisher({
      store,
      clock: this.clock,
      crypto: this.crypto,
      validityMs: (options.crlValiditySeconds ?? DEFAULT_CRL_VALIDITY_SECONDS) * 1000,
      signer: (serial) => this.signer(serial),
    });
    this.signers.set(db.root, root);
    this.signers.set(db.ocspSigner, ocspSigner);
  }

  /** Absolute path of the state folder. */
  get stateDir(): string {
    return this.store.dir;
  }

  /** Absolute path of the root certificate PEM (the `-CAfile` of every client). */
  get rootFile(): string {
    return this.store.path(this.db.certificates[this.db.root]!.certFile);
  }

  /** Serial of the root. */
  get rootSerial(): string {
    return this.db.root;
  }

  /** Absolute path of the root's delegated OCSP signer certificate PEM. */
  get ocspSignerFile(): string {
    return this.store.path(this.db.certificates[this.db.ocspSigner]!.certFile);
  }

  /**
   * Create a CA in `stateDir`: root (self-signed, 10 years, CA:TRUE, keyCertSign+cRLSign), its
   * delegated OCSP signer (2 years) and a first (empty) CRL, keys 0600. Creation runs under the
   * store lock, so two processes creating the same folder end with one CA.
   * @throws StateExistsError when the folder already holds a CA; InvalidArgumentError for an
   * unknown key type or Ed25519 (pkijs cannot sign OCSP responses with it).
   */
  static async init(stateDir: string, options: CaInitOptions & CaOpenOptions = {}): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    const crypto = options.crypto ?? defaultCrypto;
    const keyType = parseKeyType(options.keyType ?? "ecdsa-p256");
    if (keyType === "ed25519") {
      throw new InvalidArgumentError(
        "root key type",
        keyType,
        "the root's OCSP signer uses the root's key type and pkijs cannot sign OCSP with Ed25519; use ecdsa-p256, ecdsa-p384 or rsa-*, and issue Ed25519 leaves under it",
      );
    }
    const store = new FileStore(stateDir, storeOptions(options));
    if (await store.exists()) throw new StateExistsError(stateDir);
    await store.removeInterruptedWrites();

    const now = clock.now();
    const rootKeys = await generateKeyPair(keyType, crypto);
    const rootSerial = newSerial();
    const rootCert = await selfSignedCa({
      name: `CN=${options.commonName ?? `ocsp-lab root CA ${rootSerial.slice(0, 4)}`}, O=ocsp-lab`,
      serial: rootSerial,
      keys: rootKeys,
      keyType,
      notBefore: new Date(now.getTime() - DEFAULT_BACKDATE_SECONDS * 1000),
      notAfter: new Date(now.getTime() + ROOT_VALIDITY_DAYS * DAY_MS),
      withSubjectKeyId: true,
      crypto,
    });
    const root: Signer = { certificate: rootCert, key: rootKeys.privateKey, keyType };
    const signer = await buildCertificate({
      profile: "ocsp-signer",
      issuer: root,
      keyType,
      subject: [{ CN: [`ocsp-lab OCSP signer ${rootSerial.slice(0, 4)}`] }, { O: ["ocsp-lab"] }],
      notBefore: new Date(now.getTime() - DEFAULT_BACKDATE_SECONDS * 1000),
      notAfter: new Date(now.getTime() + SIGNER_VALIDITY_DAYS * DAY_MS),
      options: {},
      crypto,
    });

    const rootRecord = recordOf(rootCert, "root", keyType, { certFile: "ca.pem", keyFile: "ca.key" });
    const signerRecord = recordOf(signer.certificate, "ocsp-signer", keyType, {
      certFile: "ocsp-signer.pem",
      keyFile: "ocsp-signer.key",
      issuer: rootRecord.serial,
    });
    rootRecord.ocspSigner = signerRecord.serial;
    const db: CaDatabase = {
      version: 1,
      generation: 1,
      root: rootRecord.serial,
      ocspSigner: signerRecord.serial,
      certificates: { [rootRecord.serial]: rootRecord, [signerRecord.serial]: signerRecord },
      crls: {},
    };
    const ca = new CertificateAuthority(
      store,
      db,
      root,
      { certificate: signer.certificate, key: signer.key, keyType },
      { ...options, clock, crypto },
    );
    let crlFiles: PendingFile[] = [];
    await store.initialize(
      async () => {
        await store.writeAtomic("ca.key", await privateKeyToPem(rootKeys.privateKey, crypto), 0o600);
        await store.writeAtomic("ca.pem", certificatePem(rootCert), 0o644);
        await store.writeAtomic("ocsp-signer.key", await privateKeyToPem(signer.key, crypto), 0o600);
        await store.writeAtomic("ocsp-signer.pem", certificatePem(signer.certificate), 0o644);
        crlFiles = (await ca.crls.prepare(db, rootRecord.serial, true)).files;
        return db;
      },
      () => ca.crls.write(crlFiles),
    );
    if (options.watch) ca.watch(undefined, options.onWatchError);
    return ca;
  }

  /**
   * Open the CA in `stateDir`. Temp files left by interrupted writes of processes that have
   * exited are removed first (FileStore.removeInterruptedWrites).
   * @throws StateNotFoundError when there is none; StateCorruptError when ca.json cannot be
   * read, does not parse or is inconsistent (one line naming the file and the field), or a
   * root or signer file it names is missing or unusable; the system error itself (EACCES,
   * EPERM) when such a file is there but this user may not read it.
   */
  static async open(stateDir: string, options: CaOpenOptions = {}): Promise<CertificateAuthority> {
    const crypto = options.crypto ?? defaultCrypto;
    const store = new FileStore(stateDir, storeOptions(options));
    await store.removeInterruptedWrites();
    const db = await store.read();
    const load = async (serial: string, what: string): Promise<Signer> => {
      try {
        return await loadSigner(store, db.certificates[serial]!, crypto);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        // A file this user may not read is a permission problem, not a corrupt store: the
        // system error goes up as it is (the commands name the file and how to fix its mode).
        if (code === "EACCES" || code === "EPERM") throw cause;
        const detail = code ?? (cause instanceof Error ? cause.message : String(cause));
        throw new StateCorruptError(
          store.path(DATABASE_FILE),
          `the ${what} ${serial}'s certificate or key cannot be loaded (${detail})`,
          {
            cause,
          },
        );
      }
    };
    const root = await load(db.root, "root");
    const signer = await load(db.ocspSigner, "OCSP signer");
    const ca = new CertificateAuthority(store, db, root, signer, options);
    if (options.watch) ca.watch(undefined, options.onWatchError);
    return ca;
  }

  /** Open the CA in `stateDir`, creating it first when the folder holds none. */
  static async openOrInit(stateDir: string, options: CaInitOptions & CaOpenOptions = {}): Promise<CertificateAuthority> {
    const store = new FileStore(stateDir, storeOptions(options));
    if (!(await store.exists())) {
      try {
        return await CertificateAuthority.init(stateDir, options);
      } catch (err) {
        // Another process created it between our check and our lock: use theirs.
        if (!(err instanceof StateExistsError)) throw err;
      }
    }
    return CertificateAuthority.open(stateDir, options);
  }

  /**
   * Issue a certificate of `profile` under `options.issuer` (default the root) with a fresh key
   * of `options.keyType` (default the issuer's). Files go under `certs/<serial>/` (cert.pem,
   * key.pem 0600, chain.pem, fullchain.pem); an intermediate also gets its own delegated OCSP
   * signer and an empty CRL under `issuers/<serial>/`. The checks are planIssuance's. The files
   * are written under the store lock just before the database that names them, and the new
   * CA's CRLs just after it (see FileStore.update for what a crash in between leaves).
   * @throws InvalidArgumentError for a bad SAN, validity, path length, flaw, profile, serial or
   * key type; UnknownSerialError when the issuer is not a CA of this store.
   */
  async issue(profile: Profile, options: IssueOptions = {}): Promise<IssuedCertificate> {
    const plan = planIssuance(profile, options, this.db, this.clock.now());
    const keyType = parseKeyType(options.keyType ?? (await this.signer(plan.issuerSerial)).keyType);
    checkKeyType(profile, keyType);
    const keys = await generateKeyPair(keyType, this.crypto);
    return this.issueForKey(profile, options, plan, keyType, keys.publicKey, keys.privateKey);
  }

  /** `issue("server", …)`, defaulting the SANs to DNS:localhost when none are given. */
  async issueServer(options: IssueServerOptions = {}): Promise<IssuedCertificate> {
    const noSans = !options.dnsNames?.length && !options.ipAddresses?.length;
    return this.issue("server", noSans ? { ...options, dnsNames: ["localhost"] } : options);
  }

  /**
   * Create an intermediate CA under `options.issuer` (default the root), with its delegated
   * OCSP signer. `pathLength` defaults to 0 (it issues leaves only).
   */
  async createIntermediate(options: Omit<IssueOptions, "flaw" | "mustStaple"> = {}): Promise<IssuedCertificate> {
    return this.issue("intermediate", options);
  }

  /**
   * Sign an external PKCS#10 CSR (RFC 2986) so an existing key lives under the lab CA. The
   * subject and SANs come from the CSR unless `options` gives them; the profile's extensions
   * are the CA's, never the CSR's.
   * @throws InvalidCsrError when the PEM is not a CSR or its signature does not verify;
   * InvalidArgumentError as `issue`.
   */
  async signCsr(
    csrPem: string,
    profile: Profile = "server",
    options: Omit<IssueOptions, "keyType"> = {},
  ): Promise<IssuedCertificate> {
    const csr = await readCsr(csrPem, profile, this.crypto);
    const merged: IssueOptions = { ...csr.altNames, ...options };
    const plan = planIssuance(profile, merged, this.db, this.clock.now());
    const subject = options.subject || options.commonName ? undefined : csr.subject;
    return this.issueForKey(profile, merged, plan, csr.keyType, csr.publicKey, undefined, subject);
  }

  /**
   * Revoke a certificate (RFC 5280 §5.3.1 reason, revocation time default now, optional
   * invalidity date). The issuer's full and delta CRLs are republished in the same locked write.
   * What a certificate already revoked or on hold allows (checked under the store lock, against
   * the state on disk):
   * - on hold (certificateHold) → a final reason: allowed, that is how a hold is made permanent
   *   (RFC 5280 §5.3.1); the new reason and time (default now) replace the hold's.
   * - on hold → certificateHold again: refused (AlreadyRevokedError) unless `force`.
   * - revoked for a final reason → another final reason, or the same one again: refused
   *   (AlreadyRevokedError, the first reason and time stand) unless `force`, which replaces
   *   reason, time and invalidity date.
   * - revoked for a final reason → certificateHold: always refused (InvalidArgumentError), even
   *   with `force`: a final revocation never becomes releasable.
   * A refusal leaves the store untouched.
   * @throws UnknownSerialError when the CA did not issue that serial; InvalidSerialError when it
   * is not hex; InvalidArgumentError for a reason that is not an RFC 5280 code, removeFromCRL
   * (use release), a hold of a finally revoked certificate, or the root; AlreadyRevokedError as
   * above; the store's LockTimeoutError, LockLostError, StoreConflictError (nothing written).
   */
  async revoke(serial: string, options: RevokeOptions = {}): Promise<CertificateRecord> {
    const key = normalizeSerial(serial);
    const reason = options.reason ?? CRLReason.unspecified;
    if (CRLReason[reason] === undefined) throw new InvalidArgumentError("CRLReason", reason, "use an RFC 5280 reason code");
    if (reason === CRLReason.removeFromCRL)
      throw new InvalidArgumentError("CRLReason", "removeFromCRL", "release a held certificate with release() instead");
    const now = this.clock.now();
    const time = options.time ?? now;
    await this.change(key, (rec) => {
      const first = rec.revocation;
      if (first && first.reason !== CRLReason.certificateHold && reason === CRLReason.certificateHold) {
        throw new InvalidArgumentError(
          "hold of serial",
          key,
          `it is revoked for ${CRLReason[first.reason]}, which is final (only a hold can be released)`,
        );
      }
      const heldToFinal = first?.reason === CRLReason.certificateHold && reason !== CRLReason.certificateHold;
      if (first && !heldToFinal && !options.force) throw new AlreadyRevokedError(key, CRLReason[first.reason], first.time);
      rec.revocation = {
        time: time.toISOString(),
        reason,
        recordedAt: now.toISOString(),
        ...(options.invalidityDate ? { invalidityDate: options.invalidityDate.toISOString() } : {}),
      };
    });
    return this.db.certificates[key]!;
  }

  /**
   * Put a certificate on hold: revoke it with reason certificateHold (RFC 5280 §5.3.1).
   * @throws AlreadyRevokedError when it is on hold already (unless `force`: a new hold time);
   * InvalidArgumentError when it is revoked for a final reason; as revoke.
   */
  async hold(serial: string, options: Omit<RevokeOptions, "reason"> = {}): Promise<CertificateRecord> {
    return this.revoke(serial, { ...options, reason: CRLReason.certificateHold });
  }

  /**
   * Release a certificate from hold: it is good again, and delta CRLs list it with
   * removeFromCRL (RFC 5280 §5.3.1) until the next base CRL.
   * @throws InvalidArgumentError when it is not on hold (a revocation for any other reason is final).
   */
  async release(serial: string): Promise<CertificateRecord> {
    const key = normalizeSerial(serial);
    await this.change(key, (rec) => {
      if (rec.revocation?.reason !== CRLReason.certificateHold) {
        throw new InvalidArgumentError(
          "release of serial",
          key,
          rec.revocation
            ? `it is revoked for ${CRLReason[rec.revocation.reason]}, which is final; only certificateHold can be released`
            : "it is not on hold",
        );
      }
      delete rec.revocation;
      rec.releasedAt = this.clock.now().toISOString();
    });
    return this.db.certificates[key]!;
  }

  /**
   * Status of a serial as the CA knows it: revoked (with time, reason and invalidity date),
   * good (issued and not revoked), unknown (never issued here). O(1), from memory.
   */
  status(serial: string): SerialStatus {
    const rec = this.db.certificates[normalizeSerial(serial)];
    if (!rec) return { status: "unknown" };
    if (rec.revocation) {
      return {
        status: "revoked",
        revocationTime: new Date(rec.revocation.time),
        revocationReason: rec.revocation.reason,
        ...(rec.revocation.invalidityDate ? { invalidityDate: new Date(rec.revocation.invalidityDate) } : {}),
      };
    }
    return { status: "good" };
  }

  /** The record of a serial, or undefined. */
  get(serial: string): CertificateRecord | undefined {
    return this.db.certificates[normalizeSerial(serial)];
  }

  /** Every certificate record, root and signers included. */
  list(): CertificateRecord[] {
    return Object.values(this.db.certificates);
  }

  /** The records currently revoked or on hold. */
  listRevoked(): CertificateRecord[] {
    return this.list().filter((r) => r.revocation !== undefined);
  }

  /** The CA records: the root and every intermediate. */
  issuers(): CertificateRecord[] {
    return this.list().filter((r) => r.kind === "root" || r.kind === "intermediate");
  }

  /** Serial of the CA that issued `serial` (the root's own issuer is the root). */
  issuerOf(serial: string): string | undefined {
    const rec = this.get(serial);
    if (!rec) return undefined;
    return rec.kind === "root" ? rec.serial : (rec.issuer ?? this.db.root);
  }

  /**
   * The signing identity (certificate and key) of a certificate that has its key here: a CA,
   * an OCSP signer, a leaf.
   * @throws UnknownSerialError; InvalidArgumentError when its key is not in the store (CSR-signed).
   */
  async signer(serial: string): Promise<Signer> {
    const key = normalizeSerial(serial);
    const cached = this.signers.get(key);
    if (cached) return cached;
    const rec = this.db.certificates[key];
    if (!rec) throw new UnknownSerialError(key);
    const loaded = await loadSigner(this.store, rec, this.crypto);
    this.signers.set(key, loaded);
    return loaded;
  }

  /** The delegated OCSP signer of the CA `issuerSerial` (default the root). */
  async ocspSignerOf(issuerSerial: string = this.db.root): Promise<Signer> {
    const rec = this.db.certificates[normalizeSerial(issuerSerial)];
    if (!rec || (rec.kind !== "root" && rec.kind !== "intermediate")) throw new UnknownSerialError(issuerSerial);
    return this.signer(rec.ocspSigner ?? this.db.ocspSigner);
  }

  /** Absolute paths of the CRL files of the CA `issuerSerial` (default the root). */
  crlFiles(issuerSerial: string = this.db.root): PublishedCrls["files"] {
    return this.crls.files(this.db, normalizeSerial(issuerSerial));
  }

  /**
   * Publish fresh CRLs for every CA now: a new full CRL that becomes the base, and an empty
   * delta against it. Call before nextUpdate (see scheduleCrlRefresh); revocation changes
   * republish on their own.
   * @throws LockTimeoutError when another process holds the store lock for more than 10 s.
   */
  async refreshCrls(): Promise<PublishedCrls[]> {
    const { db, published } = await this.crls.refreshAll();
    this.db = db;
    this.emitChange();
    return published;
  }

  /**
   * Republish every CA's CRLs at half their validity (so a relying party never holds an expired
   * CRL), on this handle's clock. Returns a function that stops the timer; the timer does not
   * keep the process alive. A failed refresh goes to `onError`; the next one is still scheduled.
   */
  scheduleCrlRefresh(onError: (err: unknown) => void = () => undefined): () => void {
    return this.crls.schedule(() => this.refreshCrls(), onError);
  }

  /**
   * Re-read the store now (another process may have written it).
   * @throws StateNotFoundError, StateCorruptError (the handle keeps its state).
   */
  async reload(): Promise<void> {
    const db = await this.store.read();
    // Only ever move forward: a slow read must not undo a newer write this process made.
    if (db.generation > this.db.generation) {
      this.db = db;
      this.emitChange();
    }
  }

  /**
   * Follow changes other processes make to the store (and the intermediates this handle creates);
   * `listener`, if given, runs after each change is loaded. When the changed store cannot be
   * loaded (ca.json corrupted, inconsistent or removed, e.g. by a hand edit or another tool),
   * the handle keeps its last good state and `onError`, if given, gets the error
   * (StateCorruptError / StateNotFoundError: the file and what is wrong), once per distinct
   * failure; with no error listener at all, it goes to process.emitWarning. Idempotent (the
   * listeners add up). Stopped by `close()`.
   */
  watch(listener?: () => void, onError?: (error: CaError) => void): void {
    if (listener) this.listeners.add(listener);
    if (onError) this.errorListeners.add(onError);
    if (this.unwatch) return;
    const reload = (): void => {
      this.reload().then(
        () => {
          this.lastWatchError = undefined;
        },
        (err: unknown) => this.reportWatchError(err),
      );
    };
    this.unwatch = this.store.watch(reload);
    // A write that landed between open() and the watcher's first stat would otherwise go unseen.
    reload();
  }

  /** Stop watching the store. */
  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.listeners.clear();
    this.errorListeners.clear();
  }

  /** Tell the error listeners (once per distinct failure) that a reload failed; the state in memory stays. */
  private reportWatchError(err: unknown): void {
    const error: CaError =
      err instanceof Error && typeof (err as Partial<CaError>).code === "string" && (err as CaError).code.startsWith("OCSP_LAB_")
        ? (err as CaError)
        : new StateCorruptError(this.store.path(DATABASE_FILE), err instanceof Error ? err.message : String(err), { cause: err });
    if (error.message === this.lastWatchError) return;
    this.lastWatchError = error.message;
    if (this.errorListeners.size === 0) process.emitWarning(error);
    for (const l of this.errorListeners) l(error);
  }

  private emitChange(): void {
    for (const l of this.listeners) l();
  }

  /** Revocation-state change of one record, then CRLs of its issuer, in one locked write. */
  private async change(serial: string, mutate: (rec: CertificateRecord) => void): Promise<void> {
    let files: PendingFile[] = [];
    this.db = await this.store.update(
      async (db) => {
        const rec = db.certificates[serial];
        if (!rec) throw new UnknownSerialError(serial);
        if (rec.kind === "root")
          throw new InvalidArgumentError(
            "serial",
            serial,
            "it is the root: nothing above it can revoke it; delete the state folder to retire the CA",
          );
        mutate(rec);
        rec.changedGeneration = db.generation + 1;
        if (rec.flaw !== "other-ca") files = (await this.crls.prepare(db, rec.issuer ?? db.root, false)).files;
      },
      () => this.crls.write(files),
    );
    this.emitChange();
  }

  /**
   * Build the certificate `plan` settled (with the CA's key pair `publicKey`/`privateKey`, or a
   * CSR's public key alone), then record it: its files and the database, in one locked write.
   */
  private async issueForKey(
    profile: Profile,
    options: IssueOptions,
    plan: IssuancePlan,
    keyType: KeyType,
    publicKey: CryptoKey | x509.PublicKey,
    privateKey: CryptoKey | undefined,
    csrSubject?: x509.Name,
  ): Promise<IssuedCertificate> {
    const { issuerSerial, pathLength, notBefore, notAfter } = plan;
    // An `other-ca` signer is issued by a throw-away CA that is not in this store.
    const issuer =
      options.flaw === "other-ca" ? await throwawayCa(keyType, this.clock, this.crypto) : await this.signer(issuerSerial);
    const made = await buildCertificate({
      profile,
      issuer,
      keyType,
      subject: csrSubject ?? subjectName(plan.subject),
      notBefore,
      notAfter,
      options: { ...options, pathLength },
      crypto: this.crypto,
      publicKey,
      privateKey,
      ...(plan.serial !== undefined ? { serial: plan.serial } : {}),
    });
    const cert = made.certificate;
    const serial = normalizeSerial(cert.serialNumber);
    const isCa = profile === "intermediate";
    const base = isCa ? `issuers/${serial}` : `certs/${serial}`;
    const certName = isCa ? "ca" : "cert";
    const chain = options.flaw === "other-ca" ? [issuer.certificate] : await this.chainOf(issuerSerial);
    const chainPem = chain.map(certificatePem).join("");
    const certPem = certificatePem(cert);
    const keyPem = privateKey ? await privateKeyToPem(privateKey, this.crypto) : undefined;
    const rec = recordOf(cert, profile === "intermediate" ? "intermediate" : profile, keyType, {
      certFile: `${base}/${certName}.pem`,
      ...(privateKey ? { keyFile: `${base}/${isCa ? "ca.key" : "key.pem"}` } : {}),
      issuer: issuerSerial,
      chainFile: `${base}/chain.pem`,
      fullchainFile: `${base}/fullchain.pem`,
      ...(pathLength !== undefined ? { pathLength } : {}),
      ...(options.flaw ? { flaw: options.flaw } : {}),
    });

    // An intermediate gets its own delegated OCSP signer, like the root.
    let signerRec: CertificateRecord | undefined;
    let signerMade: { certificate: x509.X509Certificate; key: CryptoKey } | undefined;
    if (isCa) {
      signerMade = await buildCertificate({
        profile: "ocsp-signer",
        issuer: { certificate: cert, key: privateKey!, keyType },
        keyType,
        subject: [{ CN: [`ocsp-lab OCSP signer ${serial.slice(0, 4)}`] }, { O: ["ocsp-lab"] }],
        notBefore,
        notAfter: new Date(Math.min(notAfter.getTime(), this.clock.now().getTime() + SIGNER_VALIDITY_DAYS * DAY_MS)),
        options: {},
        crypto: this.crypto,
      });
      signerRec = recordOf(signerMade.certificate, "ocsp-signer", keyType, {
        certFile: `${base}/ocsp-signer.pem`,
        keyFile: `${base}/ocsp-signer.key`,
        issuer: serial,
      });
      rec.ocspSigner = signerRec.serial;
    }
    const signerKeyPem = signerMade ? await privateKeyToPem(signerMade.key, this.crypto) : "";

    let crlFiles: PendingFile[] = [];
    let wrote = false;
    let committed = false;
    try {
      this.db = await this.store.update(
        async (db) => {
          // Checked again under the lock: another process may have taken a chosen serial.
          if (db.certificates[serial]) throw duplicateSerialError(serial);
          wrote = true;
          // Known before the database write: a new CA signs its first CRL inside it.
          if (privateKey) this.signers.set(serial, { certificate: cert, key: privateKey, keyType });
          if (rec.keyFile && keyPem !== undefined) await this.store.writeAtomic(rec.keyFile, keyPem, 0o600);
          await this.store.writeAtomic(rec.certFile, certPem, 0o644);
          await this.store.writeAtomic(rec.chainFile!, chainPem, 0o644);
          await this.store.writeAtomic(rec.fullchainFile!, certPem + chainPem, 0o644);
          if (signerRec && signerMade) {
            await this.store.writeAtomic(signerRec.keyFile!, signerKeyPem, 0o600);
            await this.store.writeAtomic(signerRec.certFile, certificatePem(signerMade.certificate), 0o644);
          }
          db.certificates[serial] = rec;
          if (signerRec) db.certificates[signerRec.serial] = signerRec;
          if (isCa) crlFiles = (await this.crls.prepare(db, serial, true)).files;
        },
        () => {
          committed = true;
          return this.crls.write(crlFiles);
        },
        // Under the lock: leave nothing behind that the database does not account for (and
        // never touch the files of the certificate that already holds a duplicate serial).
        async () => {
          if (wrote) await fs.rm(this.store.path(base), { recursive: true, force: true });
        },
      );
    } catch (err) {
      if (!committed && wrote) this.signers.delete(serial);
      throw err;
    }
    // A new intermediate is a new issuer for this handle's watchers (a responder serves it from
    // now on); a store reload would not tell them, as this handle already holds the write.
    if (isCa) this.emitChange();
    return {
      serial,
      profile,
      certificate: cert,
      certPem,
      ...(keyPem !== undefined ? { keyPem } : {}),
      certFile: this.store.path(rec.certFile),
      keyFile: rec.keyFile ? this.store.path(rec.keyFile) : "",
      chainFile: this.store.path(rec.chainFile!),
      fullchainFile: this.store.path(rec.fullchainFile!),
    };
  }

  /** Certificates from `issuerSerial` up to and including the root. */
  private async chainOf(issuerSerial: string): Promise<x509.X509Certificate[]> {
    const chain: x509.X509Certificate[] = [];
    let serial: string | undefined = issuerSerial;
    while (serial) {
      const signer = await this.signer(serial);
      chain.push(signer.certificate);
      const rec: CertificateRecord = this.db.certificates[serial]!;
      serial = rec.kind === "root" ? undefined : (rec.issuer ?? this.db.root);
    }
    return chain;
  }
}

async function loadSigner(store: FileStore, rec: CertificateRecord, crypto: Crypto): Promise<Signer> {
  if (!rec.keyFile) throw new InvalidArgumentError("signer", rec.serial, "its key is not in the store (signed from a CSR)");
  const [certPem, keyPem] = await Promise.all([
    fs.readFile(store.path(rec.certFile), "utf8"),
    fs.readFile(store.path(rec.keyFile), "utf8"),
  ]);
  return {
    certificate: new x509.X509Certificate(certPem),
    key: await privateKeyFromPem(keyPem, rec.keyType, crypto),
    keyType: rec.keyType,
  };
}
