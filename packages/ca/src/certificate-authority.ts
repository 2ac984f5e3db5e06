import { promises as fs } from "node:fs";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { systemClock, type Clock } from "./clock.js";
import { CRLReason } from "./crl-reason.js";
import {
  InvalidArgumentError,
  StateExistsError,
  UnknownSerialError,
} from "./errors.js";
import {
  defaultCrypto,
  generateKeyPair,
  privateKeyFromPem,
  privateKeyToPem,
  signingAlgorithm,
  KEY_TYPES,
  type KeyType,
} from "./keys.js";
import { OID } from "./ocsp/oids.js";
import { newSerial, normalizeSerial } from "./serial.js";
import { FileStore, type CaDatabase, type CertificateRecord } from "./store.js";

const DAY_MS = 86_400_000;
/**
 * Certificates start one hour in the past so a client whose clock is a little behind does not
 * reject a certificate issued a moment ago.
 */
const BACKDATE_MS = 3_600_000;
/** Root validity: 10 years, long enough that a lab never has to rotate it. */
const ROOT_VALIDITY_DAYS = 3650;
/** Delegated OCSP signer validity: 2 years. */
const SIGNER_VALIDITY_DAYS = 730;
/** Server certificate validity: 397 days, the longest public CAs may issue. */
const SERVER_VALIDITY_DAYS = 397;

/** Options of CertificateAuthority.init. */
export interface CaInitOptions {
  /** Key type of the root and the OCSP signer. Default `ecdsa-p256`. */
  keyType?: KeyType;
  /** Root common name. Default `ocsp-lab root CA <4 random hex>` so two labs never look alike. */
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
}

/** Options of issueServer. */
export interface IssueServerOptions {
  /** DNS SANs. Default `["localhost"]` when no IP is given either. */
  dnsNames?: string[];
  /** IP SANs (v4 or v6). */
  ipAddresses?: string[];
  /** OCSP responder URL for AuthorityInfoAccess (RFC 5280 §4.2.2.1, id-ad-ocsp). */
  ocspUrl?: string;
  /** Subject CN; default the first DNS name or IP. */
  commonName?: string;
  /** Validity in days; default 397. */
  validityDays?: number;
  /** Leaf key type; default the CA's. */
  keyType?: KeyType;
  /** RFC 7633 TLS Feature status_request ("must-staple"). Default false. */
  mustStaple?: boolean;
}

/** An issued certificate: its record, parsed form, PEM texts and absolute file paths. */
export interface IssuedCertificate {
  serial: string;
  certificate: x509.X509Certificate;
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
  /** Issuer chain (the root), PEM. */
  chainFile: string;
  /** Leaf then chain, PEM: what nginx's ssl_certificate wants. */
  fullchainFile: string;
}

/** The status of a serial as the CA knows it (RFC 6960 §2.2 semantics). */
export type SerialStatus =
  | { status: "good" }
  | { status: "revoked"; revocationTime: Date; reason: CRLReason }
  | { status: "unknown" };

/** A signing identity: certificate, its private key and key type. */
export interface Signer {
  certificate: x509.X509Certificate;
  key: CryptoKey;
  keyType: KeyType;
}

/**
 * A private CA kept in a state folder: a self-signed root, a delegated OCSP signer
 * (id-kp-OCSPSigning + id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2) and server certificates with
 * AuthorityInfoAccess pointing at a responder. Revocations persist in the store and are seen by
 * every process that opened it with `watch: true` within a second.
 */
export class CertificateAuthority {
  readonly store: FileStore;
  /** The root CA, which issues everything and is the trust anchor clients load. */
  readonly root: Signer;
  /** The delegated OCSP signer issued by the root. */
  readonly ocspSigner: Signer;
  private db: CaDatabase;
  private readonly clock: Clock;
  private readonly crypto: Crypto;
  private unwatch: (() => void) | undefined;
  private readonly listeners = new Set<() => void>();

  private constructor(store: FileStore, db: CaDatabase, root: Signer, ocspSigner: Signer, clock: Clock, crypto: Crypto) {
    this.store = store;
    this.db = db;
    this.root = root;
    this.ocspSigner = ocspSigner;
    this.clock = clock;
    this.crypto = crypto;
  }

  /** Absolute path of the state folder. */
  get stateDir(): string {
    return this.store.dir;
  }

  /** Absolute path of the root certificate PEM (the `-CAfile` of every client). */
  get rootFile(): string {
    return this.store.path(this.db.certificates[this.db.root]!.certFile);
  }

  /** Absolute path of the delegated OCSP signer certificate PEM. */
  get ocspSignerFile(): string {
    return this.store.path(this.db.certificates[this.db.ocspSigner]!.certFile);
  }

  /**
   * Create a CA in `stateDir`: root (10 years, CA:TRUE, keyCertSign+cRLSign) and delegated OCSP
   * signer (2 years, EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck), keys 0600.
   * @throws StateExistsError when the folder already holds a CA.
   */
  static async init(stateDir: string, options: CaInitOptions = {}): Promise<CertificateAuthority> {
    const clock = options.clock ?? systemClock;
    const crypto = options.crypto ?? defaultCrypto;
    const keyType = options.keyType ?? "ecdsa-p256";
    if (!KEY_TYPES.includes(keyType)) throw new InvalidArgumentError("key type", keyType, `use one of ${KEY_TYPES.join(", ")}`);
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
        notBefore: new Date(now.getTime() - BACKDATE_MS),
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

    const signerKeys = await generateKeyPair(keyType, crypto);
    const signerSerial = newSerial();
    const signerCert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: signerSerial,
        subject: `CN=ocsp-lab OCSP signer ${rootSerial.slice(0, 4)}, O=ocsp-lab`,
        issuer: rootCert.subject,
        notBefore: new Date(now.getTime() - BACKDATE_MS),
        notAfter: new Date(now.getTime() + SIGNER_VALIDITY_DAYS * DAY_MS),
        publicKey: signerKeys.publicKey,
        signingKey: rootKeys.privateKey,
        signingAlgorithm: signingAlgorithm(keyType),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([OID.kpOcspSigning], false),
          // id-pkix-ocsp-nocheck: extnValue is the DER of NULL (RFC 6960 §4.2.2.2.1).
          new x509.Extension(OID.ocspNoCheck, false, new asn1js.Null().toBER(false)),
          await x509.SubjectKeyIdentifierExtension.create(signerKeys.publicKey, false, crypto),
          await x509.AuthorityKeyIdentifierExtension.create(rootCert, false, crypto),
        ],
      },
      crypto,
    );
    const ocspSigner: Signer = { certificate: signerCert, key: signerKeys.privateKey, keyType };

    const record = (cert: x509.X509Certificate, kind: CertificateRecord["kind"], base: string): CertificateRecord => ({
      serial: normalizeSerial(cert.serialNumber),
      kind,
      subject: cert.subject,
      keyType,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      certFile: `${base}.pem`,
      keyFile: `${base}.key`,
    });
    const rootRecord = record(rootCert, "root", "ca");
    const signerRecord = record(signerCert, "ocsp-signer", "ocsp-signer");
    const db: CaDatabase = {
      version: 1,
      generation: 1,
      root: rootRecord.serial,
      ocspSigner: signerRecord.serial,
      certificates: { [rootRecord.serial]: rootRecord, [signerRecord.serial]: signerRecord },
    };
    await store.initialize(async () => {
      await store.writeAtomic("ca.key", await privateKeyToPem(rootKeys.privateKey, crypto), 0o600);
      await store.writeAtomic("ca.pem", rootCert.toString("pem") + "\n", 0o644);
      await store.writeAtomic("ocsp-signer.key", await privateKeyToPem(signerKeys.privateKey, crypto), 0o600);
      await store.writeAtomic("ocsp-signer.pem", signerCert.toString("pem") + "\n", 0o644);
      return db;
    });
    return new CertificateAuthority(store, db, root, ocspSigner, clock, crypto);
  }

  /**
   * Open the CA in `stateDir`.
   * @throws StateNotFoundError when there is none; StateCorruptError when ca.json does not parse.
   */
  static async open(stateDir: string, options: CaOpenOptions = {}): Promise<CertificateAuthority> {
    const crypto = options.crypto ?? defaultCrypto;
    const store = new FileStore(stateDir);
    const db = await store.read();
    const load = async (serial: string): Promise<Signer> => {
      const rec = db.certificates[serial]!;
      const [pem, keyPem] = await Promise.all([
        fs.readFile(store.path(rec.certFile), "utf8"),
        fs.readFile(store.path(rec.keyFile), "utf8"),
      ]);
      return { certificate: new x509.X509Certificate(pem), key: await privateKeyFromPem(keyPem, rec.keyType, crypto), keyType: rec.keyType };
    };
    const ca = new CertificateAuthority(store, db, await load(db.root), await load(db.ocspSigner), options.clock ?? systemClock, crypto);
    if (options.watch) ca.watch();
    return ca;
  }

  /** Open the CA in `stateDir`, creating it first when the folder holds none. */
  static async openOrInit(stateDir: string, options: CaInitOptions & CaOpenOptions = {}): Promise<CertificateAuthority> {
    const store = new FileStore(stateDir);
    if (!(await store.exists())) {
      try {
        const ca = await CertificateAuthority.init(stateDir, options);
        if (options.watch) ca.watch();
        return ca;
      } catch (err) {
        // Another process created it between our check and our lock: use theirs.
        if (!(err instanceof StateExistsError)) throw err;
      }
    }
    return CertificateAuthority.open(stateDir, options);
  }

  /**
   * Issue a TLS server certificate: SANs (DNS, IP), EKU serverAuth, AIA OCSP URL, optional
   * must-staple. Writes cert.pem, key.pem (0600), chain.pem and fullchain.pem under
   * `certs/<serial>/`, then records it.
   * @throws InvalidArgumentError for a bad IP, an empty SAN list or a non-positive validity.
   */
  async issueServer(options: IssueServerOptions = {}): Promise<IssuedCertificate> {
    const ips = options.ipAddresses ?? [];
    const dns = options.dnsNames ?? (ips.length === 0 ? ["localhost"] : []);
    for (const ip of ips) if (isIP(ip) === 0) throw new InvalidArgumentError("IP address", ip, "give a literal IPv4 or IPv6 address");
    if (dns.length + ips.length === 0) throw new InvalidArgumentError("SAN list", [], "give at least one DNS name or IP address");
    const validityDays = options.validityDays ?? SERVER_VALIDITY_DAYS;
    if (!(validityDays > 0)) throw new InvalidArgumentError("validityDays", validityDays, "give a positive number of days");
    const keyType = options.keyType ?? this.root.keyType;
    const now = this.clock.now();
    const keys = await generateKeyPair(keyType, this.crypto);
    const serial = newSerial();
    const cn = options.commonName ?? dns[0] ?? ips[0]!;
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        keyType === "rsa-2048"
          ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
          : x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([OID.kpServerAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, this.crypto),
      await x509.AuthorityKeyIdentifierExtension.create(this.root.certificate, false, this.crypto),
    ];
    if (options.ocspUrl) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [options.ocspUrl] }));
    if (options.mustStaple) {
      // RFC 7633: Features ::= SEQUENCE OF INTEGER; status_request is TLS extension 5.
      const features = new asn1js.Sequence({ value: [new asn1js.Integer({ value: 5 })] });
      extensions.push(new x509.Extension(OID.peTlsFeature, false, features.toBER(false)));
    }
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial,
        subject: `CN=${cn}`,
        issuer: this.root.certificate.subject,
        notBefore: new Date(now.getTime() - BACKDATE_MS),
        notAfter: new Date(now.getTime() + validityDays * DAY_MS),
        publicKey: keys.publicKey,
        signingKey: this.root.key,
        signingAlgorithm: signingAlgorithm(this.root.keyType),
        extensions,
      },
      this.crypto,
    );
    const canonical = normalizeSerial(cert.serialNumber);
    const base = `certs/${canonical}`;
    const certPem = cert.toString("pem") + "\n";
    const keyPem = await privateKeyToPem(keys.privateKey, this.crypto);
    const rootPem = this.root.certificate.toString("pem") + "\n";
    await this.store.writeAtomic(`${base}/key.pem`, keyPem, 0o600);
    await this.store.writeAtomic(`${base}/cert.pem`, certPem, 0o644);
    await this.store.writeAtomic(`${base}/chain.pem`, rootPem, 0o644);
    await this.store.writeAtomic(`${base}/fullchain.pem`, certPem + rootPem, 0o644);
    const record: CertificateRecord = {
      serial: canonical,
      kind: "server",
      subject: cert.subject,
      keyType,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      certFile: `${base}/cert.pem`,
      keyFile: `${base}/key.pem`,
      chainFile: `${base}/chain.pem`,
      fullchainFile: `${base}/fullchain.pem`,
    };
    this.db = await this.store.update((db) => {
      db.certificates[canonical] = record;
    });
    return {
      serial: canonical,
      certificate: cert,
      certPem,
      keyPem,
      certFile: this.store.path(record.certFile),
      keyFile: this.store.path(record.keyFile),
      chainFile: this.store.path(record.chainFile!),
      fullchainFile: this.store.path(record.fullchainFile!),
    };
  }

  /**
   * Revoke a certificate (RFC 5280 §5.3.1 reason, revocation time default now). Revoking again
   * replaces reason and time (e.g. certificateHold → keyCompromise).
   * @throws UnknownSerialError when the CA did not issue that serial; InvalidSerialError when it is not hex.
   */
  async revoke(serial: string, options: { reason?: CRLReason; time?: Date } = {}): Promise<CertificateRecord> {
    const key = normalizeSerial(serial);
    const time = options.time ?? this.clock.now();
    const reason = options.reason ?? CRLReason.unspecified;
    if (CRLReason[reason] === undefined) throw new InvalidArgumentError("CRLReason", reason, "use an RFC 5280 reason code");
    this.db = await this.store.update((db) => {
      const rec = db.certificates[key];
      if (!rec) throw new UnknownSerialError(key);
      rec.revocation = { time: time.toISOString(), reason };
    });
    this.emitChange();
    return this.db.certificates[key]!;
  }

  /**
   * Status of a serial as the CA knows it: revoked (with time and reason), good (issued and not
   * revoked), unknown (never issued here). O(1), from memory; see `watch` for freshness.
   */
  status(serial: string): SerialStatus {
    const rec = this.db.certificates[normalizeSerial(serial)];
    if (!rec) return { status: "unknown" };
    if (rec.revocation) return { status: "revoked", revocationTime: new Date(rec.revocation.time), reason: rec.revocation.reason };
    return { status: "good" };
  }

  /** The record of a serial, or undefined. */
  get(serial: string): CertificateRecord | undefined {
    return this.db.certificates[normalizeSerial(serial)];
  }

  /** Every certificate record, root and signer included. */
  list(): CertificateRecord[] {
    return Object.values(this.db.certificates);
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
}
