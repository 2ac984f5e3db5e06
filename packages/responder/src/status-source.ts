import type { CertificateAuthority, CertIdFields, SerialStatus } from "@ocsp-lab/ca";
import { issuerHashes, toPkiCertificate, type CertIdHash } from "@ocsp-lab/ca";

/**
 * Where the responder gets certificate status from (cfssl's `Source`): given a CertID, say
 * whether its issuer is served here and, if so, the serial's status. Small on purpose so a test
 * or another CA can stand behind the HTTP layer.
 */
export interface StatusSource {
  /**
   * Status for one CertID (RFC 6960 §4.1.1). `undefined` means the issuer is not served by this
   * responder (answered `unauthorized`, RFC 6960 §2.3).
   */
  lookup(certId: CertIdFields): SerialStatus | undefined;
}

const HASHES: CertIdHash[] = ["SHA-1", "SHA-256", "SHA-384", "SHA-512"];

/**
 * A StatusSource over a lab CertificateAuthority: recognises CertIDs of its root under SHA-1,
 * SHA-256, SHA-384 and SHA-512 and answers from the CA's store (O(1), in memory; open the CA
 * with `watch: true` to follow revocations other processes make). Intermediates' certificates
 * are not answered for yet (their CertIDs name another issuer: `unauthorized`).
 */
export class CaStatusSource implements StatusSource {
  private readonly ca: CertificateAuthority;
  private readonly issuerKeys: Set<string>;

  private constructor(ca: CertificateAuthority, issuerKeys: Set<string>) {
    this.ca = ca;
    this.issuerKeys = issuerKeys;
  }

  /** Precompute the root's CertID hashes for every supported algorithm. */
  static async create(ca: CertificateAuthority, crypto?: Crypto): Promise<CaStatusSource> {
    const root = toPkiCertificate(ca.root.certificate.rawData);
    const keys = new Set<string>();
    for (const hash of HASHES) {
      const h = await issuerHashes(root, hash, crypto);
      keys.add(`${h.issuerNameHash}:${h.issuerKeyHash}`);
    }
    return new CaStatusSource(ca, keys);
  }

  /**
   * See StatusSource.lookup. A serial this CA issued under another of its CAs (an intermediate)
   * is `unknown` here: the CertID names the root as issuer, and the root did not issue it.
   */
  lookup(certId: CertIdFields): SerialStatus | undefined {
    if (!this.issuerKeys.has(`${certId.issuerNameHash}:${certId.issuerKeyHash}`)) return undefined;
    const issuer = this.ca.issuerOf(certId.serial);
    if (issuer !== undefined && issuer !== this.ca.rootSerial) return { status: "unknown" };
    return this.ca.status(certId.serial);
  }
}
