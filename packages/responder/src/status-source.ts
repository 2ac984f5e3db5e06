import type * as x509 from "@peculiar/x509";
import type { CertificateAuthority, SerialStatus, Signer } from "@ocsp-lab/ca";
import { issuerHashes, toPkiCertificate, type CertIdFields, type CertIdHash } from "@ocsp-lab/ocsp";

/** An issuing CA the responder answers for, with the identities that can sign for it. */
export interface ServedIssuer {
  /** Canonical serial of the issuing CA certificate: the key of per-issuer behaviours. */
  id: string;
  certificate: x509.X509Certificate;
  /** Its delegated OCSP signer (id-kp-OCSPSigning), which signs by default (RFC 6960 §4.2.2.2). */
  delegated: Signer;
  /** The CA's own key, for "signed by the CA itself". */
  self: Signer;
}

/** A delegated-signer defect a source can produce on demand (see `ContentFlaw`). */
export type SignerDefect = "no-eku" | "expired" | "other-ca";

/**
 * Where the responder gets certificate status from (cfssl's `Source`): which issuer a CertID
 * names, and the status of a serial under it. Small on purpose so a test or another CA can
 * stand behind the HTTP layer.
 */
export interface StatusSource {
  /**
   * The issuer a CertID names by its issuerNameHash/issuerKeyHash (RFC 6960 §4.1.1), or
   * undefined when this source does not serve it (answered `unauthorized`, §2.3).
   */
  issuer(certId: CertIdFields): ServedIssuer | undefined;
  /** The status of canonical `serial` under `issuer` (`unknown` when that issuer did not issue it). */
  status(issuer: ServedIssuer, serial: string): SerialStatus;
  /** A delegated signer with a deliberate defect, for content behaviours; optional. */
  flawedSigner?(issuer: ServedIssuer, defect: SignerDefect): Promise<Signer>;
  /**
   * Register a listener run whenever statuses or issuers may have changed. The response cache
   * listens: after a change it checks each cached answer against `status` and `issuer` once
   * before serving it again; a source without `onChange` has every cached hit checked.
   * `issuer` should return the same object while that issuer is unchanged.
   */
  onChange?(listener: () => void): void;
  /** The issuer that signs answers about issuers not served here (`unknown` mode); optional. */
  defaultIssuer?(): ServedIssuer | undefined;
  /**
   * Resolves once a reload of the issuers under way (after a store change) is done, at once
   * when none is; optional. A CertID naming no issuer served is looked up again after it, so
   * an intermediate created a moment before the request is answered for, not `unauthorized`.
   */
  settled?(): Promise<void>;
}

const HASHES: CertIdHash[] = ["SHA-1", "SHA-256", "SHA-384", "SHA-512"];

/**
 * A StatusSource over a lab CertificateAuthority: serves the root and every intermediate, each
 * signed for by its own delegated OCSP signer, recognised under SHA-1, SHA-256, SHA-384 and
 * SHA-512 CertIDs. Statuses come from the CA's store (O(1), in memory); open the CA with
 * `watch: true` to follow other processes. New intermediates are picked up on the next change.
 */
export class CaStatusSource implements StatusSource {
  private readonly ca: CertificateAuthority;
  private byHashes = new Map<string, ServedIssuer>();
  private readonly flawed = new Map<string, Promise<Signer>>();
  private readonly crypto: Crypto | undefined;
  private readonly listeners = new Set<() => void>();
  /** The reload of the issuers under way after a store change, if any. */
  private refreshing: Promise<void> | undefined;

  private constructor(ca: CertificateAuthority, crypto?: Crypto) {
    this.ca = ca;
    this.crypto = crypto;
  }

  /** Load every CA of `ca` with its signers and precompute their CertID hashes. */
  static async create(ca: CertificateAuthority, crypto?: Crypto): Promise<CaStatusSource> {
    const source = new CaStatusSource(ca, crypto);
    await source.refresh();
    ca.watch(() => {
      // Tell listeners at once (a cached answer must not outlive a status change), and again
      // once new intermediates are loaded.
      for (const l of source.listeners) l();
      const run = source
        .refresh()
        .catch(() => undefined)
        .finally(() => {
          if (source.refreshing === run) source.refreshing = undefined;
          for (const l of source.listeners) l();
        });
      source.refreshing = run;
    });
    return source;
  }

  /** The root: it signs `unknown` answers about issuers not served here. */
  defaultIssuer(): ServedIssuer | undefined {
    return this.issuers().find((i) => i.id === this.ca.rootSerial);
  }

  /** The issuers served, root first. */
  issuers(): ServedIssuer[] {
    return [...new Map([...this.byHashes.values()].map((i) => [i.id, i])).values()];
  }

  /** See StatusSource.issuer. */
  issuer(certId: CertIdFields): ServedIssuer | undefined {
    return this.byHashes.get(`${certId.issuerNameHash}:${certId.issuerKeyHash}`);
  }

  /** See StatusSource.status: `unknown` for a serial not issued by `issuer`. */
  status(issuer: ServedIssuer, serial: string): SerialStatus {
    if (this.ca.issuerOf(serial) !== issuer.id) return { status: "unknown" };
    return this.ca.status(serial);
  }

  /** A delegated signer of `issuer` with `defect`, issued once into the CA store and reused. */
  flawedSigner(issuer: ServedIssuer, defect: SignerDefect): Promise<Signer> {
    const key = `${issuer.id}:${defect}`;
    let signer = this.flawed.get(key);
    if (!signer) {
      // The other CA's signer is named for what it is, so error details never confuse it with ours.
      const name = defect === "other-ca" ? { commonName: "ocsp-lab OCSP signer of an unrelated CA" } : {};
      signer = this.ca.issue("ocsp-signer", { issuer: issuer.id, flaw: defect, ...name }).then((c) => this.ca.signer(c.serial));
      signer.catch(() => this.flawed.delete(key));
      this.flawed.set(key, signer);
    }
    return signer;
  }

  /** See StatusSource.onChange. */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** See StatusSource.settled. */
  async settled(): Promise<void> {
    await this.refreshing;
  }

  private async refresh(): Promise<void> {
    const map = new Map<string, ServedIssuer>();
    // A revoked intermediate is still answered for: its certificates' statuses are the CA's
    // records (the intermediate's own status is its parent's answer, as the parent issued it), so a
    // leaf under it reads good until it is revoked itself.
    const before = new Map(this.issuers().map((i) => [i.id, i]));
    for (const rec of this.ca.issuers()) {
      const self = await this.ca.signer(rec.serial);
      const delegated = await this.ca.ocspSignerOf(rec.serial);
      // The same object while nothing about the issuer changed: the response cache keeps the
      // answers signed for it (it compares issuers by identity).
      const kept = before.get(rec.serial);
      const served: ServedIssuer =
        kept && kept.self === self && kept.delegated === delegated
          ? kept
          : { id: rec.serial, certificate: self.certificate, self, delegated };
      const pki = toPkiCertificate(self.certificate);
      for (const hash of HASHES) {
        const h = await issuerHashes(pki, hash, this.crypto);
        map.set(`${h.issuerNameHash}:${h.issuerKeyHash}`, served);
      }
    }
    this.byHashes = map;
  }
}

/** Several sources behind one endpoint (more than one CA): the first that serves an issuer answers for it. */
export class CompositeStatusSource implements StatusSource {
  private readonly sources: StatusSource[];
  private readonly owner = new WeakMap<ServedIssuer, StatusSource>();

  /** Serve the issuers of every source in `sources`. */
  constructor(sources: StatusSource[]) {
    this.sources = sources;
  }

  /** See StatusSource.issuer. */
  issuer(certId: CertIdFields): ServedIssuer | undefined {
    for (const s of this.sources) {
      const found = s.issuer(certId);
      if (found) {
        this.owner.set(found, s);
        return found;
      }
    }
    return undefined;
  }

  /** See StatusSource.status. */
  status(issuer: ServedIssuer, serial: string): SerialStatus {
    return (this.owner.get(issuer) ?? this.sources[0]!).status(issuer, serial);
  }

  /** See StatusSource.flawedSigner. */
  flawedSigner(issuer: ServedIssuer, defect: SignerDefect): Promise<Signer> {
    const source = this.owner.get(issuer) ?? this.sources[0]!;
    if (!source.flawedSigner) return Promise.reject(new Error("this status source cannot make flawed signers"));
    return source.flawedSigner(issuer, defect);
  }

  /** See StatusSource.onChange. */
  onChange(listener: () => void): void {
    for (const s of this.sources) s.onChange?.(listener);
  }

  /** See StatusSource.settled: every source's. */
  async settled(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.settled?.()));
  }

  /** The first source's default issuer. */
  defaultIssuer(): ServedIssuer | undefined {
    for (const s of this.sources) {
      const found = s.defaultIssuer?.();
      if (found) {
        this.owner.set(found, s);
        return found;
      }
    }
    return undefined;
  }
}
