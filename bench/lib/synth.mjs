// Synthetic CA stores and requests for the scale benches (ca-scale, responder-scale): records
// written straight into a lab CA's ca.json (no key or certificate files: nothing on the OCSP or
// CRL path reads them), and OCSP requests about their serials encoded with @peculiar/asn1-ocsp
// (a CertID per serial under the CA's root, as buildOcspRequest would make from a certificate).
import { randomBytes } from "node:crypto";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import { CertID, OCSPRequest, Request, TBSRequest, id_pkix_ocsp_nonce } from "@peculiar/asn1-ocsp";
import { AlgorithmIdentifier, Extension, Extensions } from "@peculiar/asn1-x509";
import { CertificateAuthority, FileStore, newSerial } from "../../packages/ca/dist/index.js";
import { CRLReason, issuerHashes, toPkiCertificate } from "../../packages/ocsp/dist/index.js";

/**
 * A lab CA in `dir` with `count` server certificate records issued by its root, the first
 * `revoked` of them revoked (keyCompromise). Resolves with their serials (canonical hex).
 */
export async function synthesise(dir, count, revoked) {
  const ca = await CertificateAuthority.init(dir);
  const serials = [];
  const now = new Date();
  await new FileStore(dir).update((db) => {
    for (let i = 0; i < count; i++) {
      const serial = newSerial();
      serials.push(serial);
      db.certificates[serial] = {
        serial,
        kind: "server",
        subject: `CN=host-${i}.lab.test`,
        keyType: "ecdsa-p256",
        notBefore: now.toISOString(),
        notAfter: new Date(now.getTime() + 397 * 86_400_000).toISOString(),
        certFile: `certs/${serial}/cert.pem`,
        keyFile: `certs/${serial}/key.pem`,
        issuer: db.root,
        ...(i < revoked
          ? { revocation: { time: now.toISOString(), reason: CRLReason.keyCompromise, recordedAt: now.toISOString() } }
          : {}),
      };
    }
  });
  const root = ca.root.certificate;
  ca.close();
  return { serials, root };
}

/** SHA-1, as RFC 5019 clients (and `openssl ocsp`) name CertIDs. */
const SHA1 = "1.3.14.3.2.26";

/**
 * A request builder for serials under `issuer` (an X509Certificate): `build(serial, nonce)`
 * returns the DER of an OCSPRequest with one CertID (SHA-1) and, when `nonce` is true, an RFC
 * 8954 nonce extension with 32 fresh random bytes (RFC 6960 §4.1.1).
 */
export async function requestBuilder(issuer) {
  const { issuerNameHash, issuerKeyHash } = await issuerHashes(toPkiCertificate(issuer), "SHA-1");
  const nameHash = new OctetString(Buffer.from(issuerNameHash, "hex"));
  const keyHash = new OctetString(Buffer.from(issuerKeyHash, "hex"));
  return (serial, nonce = false) => {
    const certId = new CertID({
      hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA1, parameters: null }),
      issuerNameHash: nameHash,
      issuerKeyHash: keyHash,
      serialNumber: Uint8Array.from(Buffer.from(serial, "hex")).buffer,
    });
    const tbsRequest = new TBSRequest({ requestList: [new Request({ reqCert: certId })] });
    if (nonce) {
      const value = AsnConvert.serialize(new OctetString(randomBytes(32)));
      tbsRequest.requestExtensions = new Extensions([
        new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(value) }),
      ]);
    }
    return new Uint8Array(AsnConvert.serialize(new OCSPRequest({ tbsRequest })));
  };
}
