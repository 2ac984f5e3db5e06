import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { CRLReason, defaultCrypto, normalizeSerial, systemClock, type CertStatus, type Clock } from "@ocsp-lab/ocsp";
import { CrlGenerator, crlToPem, type CrlEntryParams } from "./crl/crl-generator.js";
import {
  InvalidArgumentError,
  InvalidCsrError,
  StateExistsError,
  UnknownSerialError,
} from "./errors.js";
import {
  generateKeyPair,
  keyTypeOf,
  parseKeyType,
  privateKeyFromPem,
  privateKeyToPem,
  signingAlgorithm,
  type KeyType,
  type Signer,
} from "./keys.js";
import {
  PROFILES,
  SIGNER_FLAWS,
  checkAltNames,
  profileExtensions,
  type AltNames,
  type Locations,
  type Profile,
  type SignerFlaw,
} from "./profiles.js";
import { checkedSerial, newSerial } from "./serial.js";
import { FileStore, type CaDatabase, type CertificateRecord } from "./store.js";
import { subjectName, type SubjectFields } from "./subject.js";

const DAY_MS = 86_400_000;
/**
 * Certificates start one hour in the past so a client whose clock is a little behind does not
 * reject a certificate issued a moment ago.
 */
const DEFAULT_BACKDATE_SECONDS = 3600;
/** Root validity: 10 years, long enough that a lab never has to rotate it. */
const ROOT_VALIDITY_DAYS = 3650;
/** Intermediate validity: 5 years. */
const INTERMEDIATE_VALIDITY_DAYS = 1825;
/** Delegated OCSP signer validity: 2 years. */
const SIGNER_VALIDITY_DAYS = 730;
/** Server and client certificate validity: 397 days, the longest public CAs may issue. */
const LEAF_VALIDITY_DAYS = 397;
/**
 * CRL validity (thisUpdate → nextUpdate): one day, as public CAs publish; `refreshCrls` is
 * meant to run before half of it has passed.
 */
export const DEFAULT_CRL_VALIDITY_SECONDS = 86_400;

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
  clock?: Clock;
  crypto?: Crypto;
  /** Follow changes other processes make to the store (polls every 200 ms). Default false. */
  watch?: boolean;
  /** thisUpdate → nextUpdate of the CRLs this handle publishes, in seconds. Default 86,400. */
  crlValiditySeconds?: number;
}

/** Options of `issue` (and its shortcuts). Times are Dates; durations say their unit. */
export interface IssueOptions extends AltNames, Locations {
  /** Serial of the issuing CA (root or intermediate). Default the root. */
  issuer?: string;
  /** Subject fields; the common name defaults to the first DNS name, IP, email or URI. */
  subject?: SubjectFields;
  /** Shortcut for subject.commonName. */
  commonName?: string;
  /** Key type of the new key. Default the issuer's. */
  keyType?: KeyType;
  /** Explicit validity start; default now − backdateSeconds. */
  notBefore?: Date;
  /** Explicit validity end; default notBefore + validityDays. */
  notAfter?: Date;
  /** Validity in days when notAfter is not given; default by profile (397 for leaves). */
  validityDays?: number;
  /** How far before now notBefore starts, in seconds; default 3600. */
  backdateSeconds?: number;
  /** RFC 7633 TLS Feature status_request ("must-staple"). */
  mustStaple?: boolean;
  /** Intermediates: basicConstraints pathLenConstraint; default 0 (issues leaves only). */
  pathLength?: number;
  /** OCSP signers: a deliberate defect (see SignerFlaw). */
  flaw?: SignerFlaw;
  /**
   * Serial number of the new certificate, hex in any form `normalizeSerial` takes (`0x`, `:`,
   * either case; stored canonical). Default a fresh random one (`newSerial`: 16 bytes). For
   * tests and labs that need a given serial, e.g. one whose hex begins with 0. It must be
   * positive, at most 20 octets (RFC 5280 §4.1.2.2) and not yet used in this CA. An
   * intermediate's own OCSP signer still gets a random serial.
   */
  serial?: string;
}

/** Options of issueServer (kept from the first slice). */
export type IssueServerOptions = Omit<IssueOptions, "flaw" | "pathLength" | "emails" | "uris">;

/** An issued certificate: its record, parsed form, PEM texts and absolute file paths. */
export interface IssuedCertificate {
  serial: string;
  profile: Profile;
  certificate: x509.X509Certificate;
  certPem: string;
  /** Absent when the certificate was signed from a CSR (the key stays with its owner). */
  keyPem: string;
  certFile: string;
  keyFile: string;
  /** Issuer chain up to and including the root, PEM. */
  chainFile: string;
  /** Certificate then chain, PEM: what a TLS server loads. */
  fullchainFile: string;
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
}

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

/**
 * A private CA kept in a state folder: a self-signed root, any number of intermediates, a
 * delegated OCSP signer per CA (id-kp-OCSPSigning + id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2),
 * server and client certificates, certificates signed from CSRs, revocation with RFC 5280
 * reasons, holds and releases, and full and delta CRLs (RFC 5280 §5) republished on every
 * revocation change. Every write goes through the store's lock; a handle opened with
 * `watch: true` sees other processes' changes within a second.
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
  private readonly crlValidityMs: number;
  private readonly signers = new Map<string, Signer>();
  private unwatch: (() => void) | undefined;
  private readonly listeners = new Set<() => void>();

  private constructor(store: FileStore, db: CaDatabase, root: Signer, ocspSigner: Signer, options: CaOpenOptions) {
    this.store = store;
    this.db = db;
    this.root = root;
    this.ocspSigner = ocspSigner;
    this.clock = options.clock ?? systemClock;
    this.crypto = options.crypto ?? defaultCrypto;
    this.crlValidityMs = (options.crlValiditySeconds ?? DEFAULT_CRL_VALIDITY_SECONDS) * 1000;
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
   * Create a CA in `stateDir`: root (10 years, CA:TRUE, keyCertSign+cRLSign), its delegated OCSP
   * signer (2 years) and a first (empty) CRL, keys 0600. Creation runs under the store lock, so
   * two processes creating the same folder end with one CA.
   * @throws StateExistsError when the folder already holds a CA; InvalidArgumentError for an
   * unknown key type or Ed25519 (pkijs cannot sign OCSP responses with it).
   */
  static async init(stateDir: string, options: CaInitOptions & CaOpenOptions = {}): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    const crypto = options.crypto ?? defaultCrypto;
    const keyType = parseKeyType(options.keyType ?? "ecdsa-p256");
    if (keyType === "ed25519") {
      throw new InvalidArgumentError("root key type", keyType, "the root's OCSP signer uses the root's key type and pkijs cannot sign OCSP with Ed25519; use ecdsa-p256, ecdsa-p384 or rsa-*, and issue Ed25519 leaves under it");
    }
    const store = new FileStore(stateDir);
    if (await store.exists()) throw new StateExistsError(stateDir);

    const now = clock.now();
    const rootKeys = await generateKeyPair(keyType, crypto);
    const rootSerial = newSerial();
    const rootName = `CN=${options.commonName ?? `ocsp-lab root CA ${rootSerial.slice(0, 4)}`}, O=ocsp-lab`;
    const rootCert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: rootSerial,
        subject: rootName,
        issuer: rootName,
        notBefore: new Date(now.getTime() - DEFAULT_BACKDATE_SECONDS * 1000),
        notAfter: new Date(now.getTime() + ROOT_VALIDITY_DAYS * DAY_MS),
        publicKey: rootKeys.publicKey,
        signingKey: rootKeys.privateKey,
        signingAlgorithm: signingAlgorithm(keyType),
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
            true,
          ),
          await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    const root: Signer = { certificate: rootCert, key: rootKeys.privateKey, keyType };
    const signer = await makeCertificate({
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
    const ca = new CertificateAuthority(store, db, root, { certificate: signer.certificate, key: signer.key, keyType }, { ...options, clock, crypto });
    let crlFiles: PendingFile[] = [];
    await store.initialize(
      async () => {
        await store.writeAtomic("ca.key", await privateKeyToPem(rootKeys.privateKey, crypto), 0o600);
        await store.writeAtomic("ca.pem", pem(rootCert), 0o644);
        await store.writeAtomic("ocsp-signer.key", await privateKeyToPem(signer.key, crypto), 0o600);
        await store.writeAtomic("ocsp-signer.pem", pem(signer.certificate), 0o644);
        crlFiles = (await ca.prepareCrls(db, rootRecord.serial, true)).files;
        return db;
      },
      () => ca.writeFiles(crlFiles),
    );
    if (options.watch) ca.watch();
    return ca;
  }

  /**
   * Open the CA in `stateDir`.
   * @throws StateNotFoundError when there is none; StateCorruptError when ca.json does not parse.
   */
  static async open(stateDir: string, options: CaOpenOptions = {}): Promise<CertificateAuthority> {
    const crypto = options.crypto ?? defaultCrypto;
    const store = new FileStore(stateDir);
    const db = await store.read();
    const root = await loadSigner(store, db.certificates[db.root]!, crypto);
    const signer = await loadSigner(store, db.certificates[db.ocspSigner]!, crypto);
    const ca = new CertificateAuthority(store, db, root, signer, options);
    if (options.watch) ca.watch();
    return ca;
  }

  /** Open the CA in `stateDir`, creating it first when the folder holds none. */
  static async openOrInit(stateDir: string, options: CaInitOptions & CaOpenOptions = {}): Promise<CertificateAuthority> {
    const store = new FileStore(stateDir);
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
   * signer and an empty CRL under `issuers/<serial>/`.
   * @throws InvalidArgumentError for a bad SAN, validity, path length, flaw or profile;
   * UnknownSerialError when the issuer is not a CA of this store.
   */
  async issue(profile: Profile, options: IssueOptions = {}): Promise<IssuedCertificate> {
    if (!PROFILES.includes(profile)) throw new InvalidArgumentError("profile", profile, `use one of ${PROFILES.join(", ")}`);
    const keyType = parseKeyType(options.keyType ?? (await this.issuerSigner(options.issuer)).keyType);
    if (keyType === "ed25519" && (profile === "ocsp-signer" || profile === "intermediate")) {
      throw new InvalidArgumentError("key type", keyType, `pkijs cannot sign OCSP responses with Ed25519, so a ${profile} needs ecdsa-* or rsa-*`);
    }
    const keys = await generateKeyPair(keyType, this.crypto);
    return this.issueForKey(profile, options, keyType, keys.publicKey, keys.privateKey);
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
  async signCsr(csrPem: string, profile: Profile = "server", options: Omit<IssueOptions, "keyType"> = {}): Promise<IssuedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (cause) {
      throw new InvalidCsrError("it is not a PEM or DER PKCS#10 certificate request", { cause });
    }
    let valid = false;
    try {
      valid = await csr.verify(this.crypto);
    } catch (cause) {
      throw new InvalidCsrError(`its signature cannot be checked (${String(cause)})`, { cause });
    }
    if (!valid) throw new InvalidCsrError("its signature does not verify with the public key it carries");
    if (profile === "intermediate") {
      throw new InvalidArgumentError("profile for a CSR", profile, "an intermediate needs its key in the store to sign; create it with createIntermediate() / `ocsp-ca issue --profile intermediate`");
    }
    const keyType = keyTypeOf(csr.publicKey);
    if (keyType === "ed25519" && profile === "ocsp-signer") {
      throw new InvalidArgumentError("key type", keyType, "pkijs cannot sign OCSP responses with Ed25519, so an ocsp-signer CSR needs an ECDSA or RSA key");
    }
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    const fromCsr: AltNames = {};
    for (const name of san?.names.items ?? []) {
      if (name.type === "dns") (fromCsr.dnsNames ??= []).push(name.value);
      else if (name.type === "ip") (fromCsr.ipAddresses ??= []).push(name.value);
      else if (name.type === "email") (fromCsr.emails ??= []).push(name.value);
      else if (name.type === "url") (fromCsr.uris ??= []).push(name.value);
    }
    const merged: IssueOptions = { ...fromCsr, ...options };
    const subject = options.subject || options.commonName ? undefined : csr.subjectName;
    return this.issueForKey(profile, merged, keyType, csr.publicKey, undefined, subject);
  }

  /**
   * Revoke a certificate (RFC 5280 §5.3.1 reason, revocation time default now, optional
   * invalidity date). Revoking again replaces reason and times (e.g. certificateHold →
   * keyCompromise). The issuer's full and delta CRLs are republished in the same locked write.
   * @throws UnknownSerialError when the CA did not issue that serial; InvalidSerialError when it
   * is not hex; InvalidArgumentError for a reason that is not an RFC 5280 code, or removeFromCRL
   * (use release).
   */
  async revoke(serial: string, options: RevokeOptions = {}): Promise<CertificateRecord> {
    const key = normalizeSerial(serial);
    const reason = options.reason ?? CRLReason.unspecified;
    if (CRLReason[reason] === undefined) throw new InvalidArgumentError("CRLReason", reason, "use an RFC 5280 reason code");
    if (reason === CRLReason.removeFromCRL) throw new InvalidArgumentError("CRLReason", "removeFromCRL", "release a held certificate with release() instead");
    const now = this.clock.now();
    const time = options.time ?? now;
    await this.change(key, (rec) => {
      if (rec.revocation && rec.revocation.reason !== CRLReason.certificateHold && reason === CRLReason.certificateHold) {
        throw new InvalidArgumentError("hold of serial", key, `it is revoked for ${CRLReason[rec.revocation.reason]}, which is final (only a hold can be released)`);
      }
      rec.revocation = {
        time: time.toISOString(),
        reason,
        recordedAt: now.toISOString(),
        ...(options.invalidityDate ? { invalidityDate: options.invalidityDate.toISOString() } : {}),
      };
    });
    return this.db.certificates[key]!;
  }

  /** Put a certificate on hold: revoke it with reason certificateHold (RFC 5280 §5.3.1). */
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
          rec.revocation ? `it is revoked for ${CRLReason[rec.revocation.reason]}, which is final; only certificateHold can be released` : "it is not on hold",
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
    const base = crlBase(this.db, normalizeSerial(issuerSerial));
    return {
      full: this.store.path(`${base}.crl`),
      fullDer: this.store.path(`${base}.crl.der`),
      delta: this.store.path(`${base}-delta.crl`),
      deltaDer: this.store.path(`${base}-delta.crl.der`),
    };
  }

  /**
   * Publish fresh CRLs for every CA now: a new full CRL that becomes the base, and an empty
   * delta against it. Call before nextUpdate (see scheduleCrlRefresh); revocation changes
   * republish on their own.
   */
  async refreshCrls(): Promise<PublishedCrls[]> {
    const out: PublishedCrls[] = [];
    const files: PendingFile[] = [];
    this.db = await this.store.update(
      async (db) => {
        for (const rec of Object.values(db.certificates)) {
          if (rec.kind !== "root" && rec.kind !== "intermediate") continue;
          const prepared = await this.prepareCrls(db, rec.serial, true);
          out.push(prepared.published);
          files.push(...prepared.files);
        }
      },
      () => this.writeFiles(files),
    );
    this.emitChange();
    return out;
  }

  /**
   * Republish every CA's CRLs at half their validity (so a relying party never holds an expired
   * CRL). Returns a function that stops the timer; the timer does not keep the process alive.
   */
  scheduleCrlRefresh(onError: (err: unknown) => void = () => undefined): () => void {
    const timer = setInterval(() => {
      this.refreshCrls().catch(onError);
      // Node timers hold at most 2^31 − 1 ms; beyond that they fire at once.
    }, Math.min(2_147_483_647, Math.max(1000, this.crlValidityMs / 2)));
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Re-read the store now (another process may have written it). */
  async reload(): Promise<void> {
    const db = await this.store.read();
    // Only ever move forward: a slow read must not undo a newer write this process made.
    if (db.generation > this.db.generation) {
      this.db = db;
      this.emitChange();
    }
  }

  /**
   * Follow changes other processes make to the store; `listener`, if given, runs after each
   * change is loaded. Idempotent. Stopped by `close()`.
   */
  watch(listener?: () => void): void {
    if (listener) this.listeners.add(listener);
    if (this.unwatch) return;
    const reload = (): void => {
      // A failed read (a file replaced mid-way cannot happen: writes are atomic) keeps the old view.
      this.reload().catch(() => undefined);
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
  }

  private emitChange(): void {
    for (const l of this.listeners) l();
  }

  private async issuerSigner(issuer: string | undefined): Promise<Signer> {
    const serial = normalizeSerial(issuer ?? this.db.root);
    const rec = this.db.certificates[serial];
    if (!rec || (rec.kind !== "root" && rec.kind !== "intermediate")) throw new UnknownSerialError(serial);
    return this.signer(serial);
  }

  /** Revocation-state change of one record, then CRLs of its issuer, in one locked write. */
  private async change(serial: string, mutate: (rec: CertificateRecord) => void): Promise<void> {
    let files: PendingFile[] = [];
    this.db = await this.store.update(
      async (db) => {
        const rec = db.certificates[serial];
        if (!rec) throw new UnknownSerialError(serial);
        if (rec.kind === "root") throw new InvalidArgumentError("serial", serial, "it is the root: nothing above it can revoke it; delete the state folder to retire the CA");
        mutate(rec);
        rec.changedGeneration = db.generation + 1;
        if (rec.flaw !== "other-ca") files = (await this.prepareCrls(db, rec.issuer ?? db.root, false)).files;
      },
      () => this.writeFiles(files),
    );
    this.emitChange();
  }

  private async issueForKey(
    profile: Profile,
    options: IssueOptions,
    keyType: KeyType,
    publicKey: CryptoKey | x509.PublicKey,
    privateKey: CryptoKey | undefined,
    csrSubject?: x509.Name,
  ): Promise<IssuedCertificate> {
    checkAltNames(profile, options);
    if (options.flaw !== undefined && (profile !== "ocsp-signer" || !SIGNER_FLAWS.includes(options.flaw))) {
      throw new InvalidArgumentError("flaw", options.flaw, profile === "ocsp-signer" ? `use one of ${SIGNER_FLAWS.join(", ")}` : "flaws apply to ocsp-signer certificates only");
    }
    const issuerSerial = normalizeSerial(options.issuer ?? this.db.root);
    const issuerRecord = this.db.certificates[issuerSerial];
    if (!issuerRecord || (issuerRecord.kind !== "root" && issuerRecord.kind !== "intermediate")) throw new UnknownSerialError(issuerSerial);
    const wantedSerial = options.serial === undefined ? undefined : checkedSerial(options.serial);
    if (wantedSerial !== undefined && this.db.certificates[wantedSerial]) throw duplicateSerial(wantedSerial);
    if (issuerRecord.revocation) throw new InvalidArgumentError("issuer", issuerSerial, "it is revoked; issue under another CA");
    if (options.pathLength !== undefined && profile !== "intermediate") throw new InvalidArgumentError("pathLength", options.pathLength, "it applies to intermediates only");
    if (options.mustStaple && profile !== "server" && profile !== "client") throw new InvalidArgumentError("mustStaple", true, "it applies to server and client certificates only");
    let pathLength: number | undefined;
    if (profile === "intermediate") {
      pathLength = options.pathLength ?? 0;
      if (!Number.isInteger(pathLength) || pathLength < 0) throw new InvalidArgumentError("pathLength", pathLength, "give a whole number ≥ 0");
      if (issuerRecord.pathLength !== undefined && pathLength >= issuerRecord.pathLength) {
        throw new InvalidArgumentError(
          "pathLength",
          pathLength,
          issuerRecord.pathLength === 0
            ? `issuer ${issuerSerial} has pathLength 0 and cannot issue intermediates`
            : `it must be below the issuer's pathLength ${issuerRecord.pathLength}`,
        );
      }
    }
    // An `other-ca` signer is issued by a throw-away CA that is not in this store.
    const issuer = options.flaw === "other-ca" ? await throwawayCa(keyType, this.clock, this.crypto) : await this.signer(issuerSerial);

    const now = this.clock.now();
    const defaultDays = profile === "intermediate" ? INTERMEDIATE_VALIDITY_DAYS : profile === "ocsp-signer" ? SIGNER_VALIDITY_DAYS : LEAF_VALIDITY_DAYS;
    let notBefore = options.notBefore ?? new Date(now.getTime() - (options.backdateSeconds ?? DEFAULT_BACKDATE_SECONDS) * 1000);
    const issuerNotAfter = new Date(issuerRecord.notAfter);
    // A default validity ends with the issuer's at the latest; an explicit one may not outlive it.
    let notAfter = options.notAfter ?? new Date(Math.min(notBefore.getTime() + (options.validityDays ?? defaultDays) * DAY_MS, issuerNotAfter.getTime()));
    if (options.flaw === "expired") {
      notBefore = new Date(now.getTime() - 2 * DAY_MS);
      notAfter = new Date(now.getTime() - DAY_MS);
    }
    if (options.flaw !== "other-ca" && notAfter.getTime() > issuerNotAfter.getTime()) {
      throw new InvalidArgumentError("notAfter", notAfter.toISOString(), `it must not outlive its issuer (notAfter ${issuerNotAfter.toISOString()})`);
    }
    if (!(notAfter.getTime() > notBefore.getTime())) {
      throw new InvalidArgumentError("validity", { notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() }, "notAfter must be after notBefore (and validityDays positive)");
    }
    const fields: SubjectFields = { ...options.subject };
    if (options.commonName) fields.commonName = options.commonName;
    fields.commonName ??= options.dnsNames?.[0] ?? options.ipAddresses?.[0] ?? options.emails?.[0] ?? options.uris?.[0] ?? defaultCommonName(profile);
    const made = await makeCertificate({
      profile,
      issuer,
      keyType,
      subject: csrSubject ?? subjectName(fields),
      notBefore,
      notAfter,
      options: { ...options, pathLength },
      crypto: this.crypto,
      publicKey,
      privateKey,
      ...(wantedSerial !== undefined ? { serial: wantedSerial } : {}),
    });
    const cert = made.certificate;
    const serial = normalizeSerial(cert.serialNumber);
    const isCa = profile === "intermediate";
    const base = isCa ? `issuers/${serial}` : `certs/${serial}`;
    const certName = isCa ? "ca" : "cert";
    const chain = options.flaw === "other-ca" ? [issuer.certificate] : await this.chainOf(issuerSerial);
    const chainPem = chain.map(pem).join("");
    const certPem = pem(cert);
    const keyPem = privateKey ? await privateKeyToPem(privateKey, this.crypto) : "";
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
      signerMade = await makeCertificate({
        profile: "ocsp-signer",
        issuer: { certificate: cert, key: privateKey!, keyType },
        keyType,
        subject: [{ CN: [`ocsp-lab OCSP signer ${serial.slice(0, 4)}`] }, { O: ["ocsp-lab"] }],
        notBefore,
        notAfter: new Date(Math.min(notAfter.getTime(), now.getTime() + SIGNER_VALIDITY_DAYS * DAY_MS)),
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
          if (db.certificates[serial]) throw duplicateSerial(serial);
          wrote = true;
          // Known before the database write: a new CA signs its first CRL inside it.
          if (privateKey) this.signers.set(serial, { certificate: cert, key: privateKey, keyType });
          if (rec.keyFile) await this.store.writeAtomic(rec.keyFile, keyPem, 0o600);
          await this.store.writeAtomic(rec.certFile, certPem, 0o644);
          await this.store.writeAtomic(rec.chainFile!, chainPem, 0o644);
          await this.store.writeAtomic(rec.fullchainFile!, certPem + chainPem, 0o644);
          if (signerRec && signerMade) {
            await this.store.writeAtomic(signerRec.keyFile!, signerKeyPem, 0o600);
            await this.store.writeAtomic(signerRec.certFile, pem(signerMade.certificate), 0o644);
          }
          db.certificates[serial] = rec;
          if (signerRec) db.certificates[signerRec.serial] = signerRec;
          if (isCa) crlFiles = (await this.prepareCrls(db, serial, true)).files;
        },
        () => {
          committed = true;
          return this.writeFiles(crlFiles);
        },
      );
    } catch (err) {
      // Leave nothing behind that the database does not account for (and never touch the
      // files of the certificate that already holds a duplicate serial).
      if (!committed && wrote) {
        this.signers.delete(serial);
        await fs.rm(this.store.path(base), { recursive: true, force: true });
      }
      throw err;
    }
    return {
      serial,
      profile,
      certificate: cert,
      certPem,
      keyPem,
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

  /**
   * Sign the full CRL and the delta CRL of `issuerSerial` for the store write in progress
   * (`db`), bumping the persisted CRL Number; both carry the same number, as RFC 5280 §5.2.3
   * asks of CRLs issued together. The delta lists what changed after the base CRL's store
   * generation (revocations, holds, and releases as removeFromCRL); `rebase` makes this full CRL
   * the new base (the delta is then empty). Returns the files to write once `db` is on disk.
   */
  private async prepareCrls(db: CaDatabase, issuerSerial: string, rebase: boolean): Promise<{ published: PublishedCrls; files: PendingFile[] }> {
    const issuer = await this.signer(issuerSerial);
    db.crls ??= {};
    const state = (db.crls[issuerSerial] ??= { lastNumber: 0 });
    const generation = db.generation + 1; // the generation this write will have
    const thisUpdate = new Date(Math.floor(this.clock.now().getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + this.crlValidityMs);
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
      crypto: this.crypto,
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
              .map((r) => ({ serial: r.serial, revocationTime: new Date(r.releasedAt!), revocationReason: CRLReason.removeFromCRL })),
          ];
    const deltaDer = await CrlGenerator.create({
      issuer,
      entries: deltaEntries,
      crlNumber: BigInt(number),
      deltaBaseCrlNumber: BigInt(base.number),
      thisUpdate,
      nextUpdate,
      crypto: this.crypto,
    });
    const name = crlBase(db, issuerSerial);
    const pemText = (der: Uint8Array): string => crlToPem(der).trimEnd() + "\n";
    return {
      published: { issuer: issuerSerial, fullNumber: number, deltaNumber: number, baseNumber: base.number, thisUpdate, nextUpdate, files: this.crlFiles(issuerSerial) },
      files: [
        [`${name}.crl`, pemText(fullDer)],
        [`${name}.crl.der`, fullDer],
        [`${name}-delta.crl`, pemText(deltaDer)],
        [`${name}-delta.crl.der`, deltaDer],
      ],
    };
  }

  private async writeFiles(files: PendingFile[]): Promise<void> {
    for (const [rel, data] of files) await this.store.writeAtomic(rel, data, 0o644);
  }
}

/** A file to write once the database is on disk: path relative to the state folder, content. */
type PendingFile = [string, string | Uint8Array];

/** The error for a serial already used in this CA. */
function duplicateSerial(serial: string): InvalidArgumentError {
  return new InvalidArgumentError("serial", serial, "a certificate with this serial is already in this CA; serials must be unique (RFC 5280 §4.1.2.2)");
}

/** PEM text of a certificate, with a final newline. */
function pem(cert: x509.X509Certificate): string {
  return cert.toString("pem") + "\n";
}

/** Path stem of a CA's CRL files: `ca` for the root, `issuers/<serial>/ca` for an intermediate. */
function crlBase(db: CaDatabase, issuerSerial: string): string {
  return issuerSerial === db.root ? "ca" : `issuers/${issuerSerial}/ca`;
}

function defaultCommonName(profile: Profile): string {
  return profile === "intermediate" ? "ocsp-lab intermediate CA" : profile === "ocsp-signer" ? "ocsp-lab OCSP signer" : "ocsp-lab certificate";
}

function recordOf(
  cert: x509.X509Certificate,
  kind: CertificateRecord["kind"],
  keyType: KeyType,
  extra: Partial<CertificateRecord> & { certFile: string },
): CertificateRecord {
  return {
    serial: normalizeSerial(cert.serialNumber),
    kind,
    subject: cert.subject,
    keyType,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    ...extra,
  };
}

async function loadSigner(store: FileStore, rec: CertificateRecord, crypto: Crypto): Promise<Signer> {
  if (!rec.keyFile) throw new InvalidArgumentError("signer", rec.serial, "its key is not in the store (signed from a CSR)");
  const [certPem, keyPem] = await Promise.all([fs.readFile(store.path(rec.certFile), "utf8"), fs.readFile(store.path(rec.keyFile), "utf8")]);
  return { certificate: new x509.X509Certificate(certPem), key: await privateKeyFromPem(keyPem, rec.keyType, crypto), keyType: rec.keyType };
}

/** Build one certificate of `profile` signed by `issuer`; a fresh key pair unless one is given. */
async function makeCertificate(p: {
  profile: Profile;
  issuer: Signer;
  keyType: KeyType;
  subject: x509.JsonName | x509.Name;
  notBefore: Date;
  notAfter: Date;
  options: IssueOptions;
  crypto: Crypto;
  publicKey?: CryptoKey | x509.PublicKey;
  privateKey?: CryptoKey;
  /** Canonical serial to use; default newSerial(). */
  serial?: string;
}): Promise<{ certificate: x509.X509Certificate; key: CryptoKey }> {
  let publicKey = p.publicKey;
  let privateKey = p.privateKey;
  if (!publicKey) {
    const keys = await generateKeyPair(p.keyType, p.crypto);
    publicKey = keys.publicKey;
    privateKey = keys.privateKey;
  }
  const extensions = await profileExtensions({
    ...p.options,
    profile: p.profile,
    keyType: p.keyType,
    subjectPublicKey: publicKey,
    issuerCertificate: p.issuer.certificate,
    crypto: p.crypto,
  });
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: p.serial ?? newSerial(),
      subject: p.subject,
      issuer: p.issuer.certificate.subjectName,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey,
      signingKey: p.issuer.key,
      signingAlgorithm: signingAlgorithm(p.issuer.keyType),
      extensions,
    },
    p.crypto,
  );
  return { certificate, key: privateKey! };
}

/** A self-signed CA that exists only in memory, for `other-ca` signer flaws. */
async function throwawayCa(keyType: KeyType, clock: Clock, crypto: Crypto): Promise<Signer> {
  const type = keyType === "ed25519" ? "ecdsa-p256" : keyType;
  const keys = await generateKeyPair(type, crypto);
  const now = clock.now();
  const name = `CN=ocsp-lab unrelated CA ${newSerial().slice(0, 4)}, O=ocsp-lab`;
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: newSerial(),
      subject: name,
      issuer: name,
      notBefore: new Date(now.getTime() - DAY_MS),
      notAfter: new Date(now.getTime() + ROOT_VALIDITY_DAYS * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: signingAlgorithm(type),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  return { certificate, key: keys.privateKey, keyType: type };
}
