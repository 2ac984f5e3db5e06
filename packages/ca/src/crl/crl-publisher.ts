import { CRLReason, MAX_TIMER_MS, type Clock, type Timer } from "@ocsp-lab/ocsp";
import type { Signer } from "../keys.js";
import type { CaDatabase, CertificateRecord, FileStore } from "../store.js";
import { CrlGenerator, crlToPem, type CrlEntryParams } from "./crl-generator.js";

/**
 * CRL validity (thisUpdate → nextUpdate): one day, as public CAs publish; `refreshCrls` is
 * meant to run before half of it has passed.
 */
export const DEFAULT_CRL_VALIDITY_SECONDS = 86_400;

/** A published CRL pair for one issuer. */
export interface PublishedCrls {
  issuer: string;
  /** CRL Number of the full CRL and of the delta CRL. */
  fullNumber: number;
  deltaNumber: number;
  /** BaseCRLNumber of the delta. */
  baseNumber: number;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Absolute paths: PEM and DER of the full and the delta CRL. */
  files: { full: string; fullDer: string; delta: string; deltaDer: string };
}

/** A file to write once the database is on disk: path relative to the state folder, content. */
export type PendingFile = [string, string | Uint8Array];

/** CRLs signed for a store write in progress, and the files to write once it is on disk. */
export interface PreparedCrls {
  published: PublishedCrls;
  files: PendingFile[];
}

/** What a CrlPublisher works with. */
export interface CrlPublisherOptions {
  store: FileStore;
  /** Time source of thisUpdate, and the scheduler of `schedule`. */
  clock: Clock;
  crypto: Crypto;
  /** thisUpdate → nextUpdate, in milliseconds. */
  validityMs: number;
  /** The signing identity (certificate and key) of a CA of the store, by canonical serial. */
  signer: (serial: string) => Promise<Signer>;
}

/**
 * Publishes the full and delta CRLs (RFC 5280 §5) of the CAs in one state folder: signs them
 * inside a store write (so the CRL Number is persisted with the change it reflects), writes the
 * PEM and DER files once that write is on disk, and republishes them on a timer. The files of a
 * CA are `ca.crl`, `ca.crl.der`, `ca-delta.crl`, `ca-delta.crl.der`: in the state folder for
 * the root, in `issuers/<serial>/` for an intermediate.
 */
export class CrlPublisher {
  private readonly opts: CrlPublisherOptions;

  constructor(options: CrlPublisherOptions) {
    this.opts = options;
  }

  /** Absolute paths of the CRL files of the CA `issuerSerial` (canonical) of `db`. */
  files(db: CaDatabase, issuerSerial: string): PublishedCrls["files"] {
    const base = crlBase(db, issuerSerial);
    const { store } = this.opts;
    return {
      full: store.path(`${base}.crl`),
      fullDer: store.path(`${base}.crl.der`),
      delta: store.path(`${base}-delta.crl`),
      deltaDer: store.path(`${base}-delta.crl.der`),
    };
  }

  /**
   * Sign the full CRL and the delta CRL of `issuerSerial` for the store write in progress
   * (`db`, mutated: its persisted CRL Number is bumped); both carry the same number, as RFC
   * 5280 §5.2.3 asks of CRLs issued together. The delta lists what changed after the base CRL's
   * store generation (revocations, holds, and releases as removeFromCRL); `rebase` makes this
   * full CRL the new base (the delta is then empty). Returns the files to write (`write`) once
   * `db` is on disk.
   * @throws UnknownSerialError / InvalidArgumentError from `signer` when the CA's key is not in the store.
   */
  async prepare(db: CaDatabase, issuerSerial: string, rebase: boolean): Promise<PreparedCrls> {
    const issuer = await this.opts.signer(issuerSerial);
    const { clock, crypto, validityMs } = this.opts;
    db.crls ??= {};
    const state = (db.crls[issuerSerial] ??= { lastNumber: 0 });
    const generation = db.generation + 1; // the generation this write will have
    const thisUpdate = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + validityMs);
    const issued = Object.values(db.certificates).filter(
      (r) => r.kind !== "root" && r.flaw !== "other-ca" && (r.issuer ?? db.root) === issuerSerial,
    );
    const entry = (r: CertificateRecord): CrlEntryParams => ({
      serial: r.serial,
      revocationTime: new Date(r.revocation!.time),
      revocationReason: r.revocation!.reason,
      ...(r.revocation!.invalidityDate ? { invalidityDate: new Date(r.revocation!.invalidityDate) } : {}),
    });
    const number = ++state.lastNumber;
    const fullDer = await CrlGenerator.create({
      issuer,
      entries: issued.filter((r) => r.revocation).map(entry),
      crlNumber: BigInt(number),
      thisUpdate,
      nextUpdate,
      crypto,
    });
    if (rebase || !state.base) state.base = { number, thisUpdate: thisUpdate.toISOString(), generation };
    const base = state.base;
    const changed = (r: CertificateRecord): boolean => (r.changedGeneration ?? 0) > (base.generation ?? 0);
    const deltaEntries: CrlEntryParams[] =
      base.number === number
        ? []
        : [
            ...issued.filter((r) => r.revocation && changed(r)).map(entry),
            ...issued
              .filter((r) => !r.revocation && r.releasedAt && changed(r))
              .map((r) => ({
                serial: r.serial,
                revocationTime: new Date(r.releasedAt!),
                revocationReason: CRLReason.removeFromCRL,
              })),
          ];
    const deltaDer = await CrlGenerator.create({
      issuer,
      entries: deltaEntries,
      crlNumber: BigInt(number),
      deltaBaseCrlNumber: BigInt(base.number),
      thisUpdate,
      nextUpdate,
      crypto,
    });
    const name = crlBase(db, issuerSerial);
    // crlToPem gives no final newline; every PEM file the CA writes ends with one.
    const pemText = (der: Uint8Array): string => `${crlToPem(der).trimEnd()}\n`;
    return {
      published: {
        issuer: issuerSerial,
        fullNumber: number,
        deltaNumber: number,
        baseNumber: base.number,
        thisUpdate,
        nextUpdate,
        files: this.files(db, issuerSerial),
      },
      files: [
        [`${name}.crl`, pemText(fullDer)],
        [`${name}.crl.der`, fullDer],
        [`${name}-delta.crl`, pemText(deltaDer)],
        [`${name}-delta.crl.der`, deltaDer],
      ],
    };
  }

  /**
   * Publish fresh CRLs for every CA of the store in one locked write: a new full CRL that
   * becomes the base, and an empty delta against it; the files are written once the database
   * is on disk. Returns the database as written and what was published.
   * @throws LockTimeoutError when another process holds the store lock for more than 10 s.
   */
  async refreshAll(): Promise<{ db: CaDatabase; published: PublishedCrls[] }> {
    const published: PublishedCrls[] = [];
    const files: PendingFile[] = [];
    const db = await this.opts.store.update(
      async (current) => {
        for (const rec of Object.values(current.certificates)) {
          if (rec.kind !== "root" && rec.kind !== "intermediate") continue;
          const prepared = await this.prepare(current, rec.serial, true);
          published.push(prepared.published);
          files.push(...prepared.files);
        }
      },
      () => this.write(files),
    );
    return { db, published };
  }

  /** Write prepared CRL files (atomically, 0644). */
  async write(files: PendingFile[]): Promise<void> {
    for (const [rel, data] of files) await this.opts.store.writeAtomic(rel, data, 0o644);
  }

  /**
   * Run `refresh` every half CRL validity (at least 1 s, at most 2^31 − 1 ms apart), on the
   * clock's timers (a ManualClock in tests), so a relying party never holds an expired CRL. A
   * failed refresh goes to `onError` and the next one is still scheduled. The timers do not
   * keep the process alive. Returns a function that stops the schedule.
   */
  schedule(refresh: () => Promise<unknown>, onError: (err: unknown) => void): () => void {
    const periodMs = Math.min(MAX_TIMER_MS, Math.max(1000, this.opts.validityMs / 2));
    let stopped = false;
    let timer: Timer | undefined;
    const arm = (): void => {
      timer = this.opts.clock.setTimeout(() => {
        if (stopped) return;
        // A fixed cadence, like setInterval: the next one is armed before this refresh runs.
        arm();
        refresh().catch(onError);
      }, periodMs);
      timer.unref();
    };
    arm();
    return () => {
      stopped = true;
      timer?.cancel();
    };
  }
}

/** Path stem of a CA's CRL files: `ca` for the root, `issuers/<serial>/ca` for an intermediate. */
function crlBase(db: CaDatabase, issuerSerial: string): string {
  return issuerSerial === db.root ? "ca" : `issuers/${issuerSerial}/ca`;
}
