import * as x509 from "@peculiar/x509";
import { OCSPResponseStatus, OcspResponse, buildOcspRequest, toPkiCertificate } from "@ocsp-lab/ocsp";
import { fetchOcsp, splitPem } from "@ocsp-lab/stapler";

/**
 * What an operator's cron job does for a server that never queries a responder itself
 * (HAProxy before 2.8's ocsp-update): one RFC 5019 POST (SHA-1 CertID, no nonce) to `url` for
 * the certificate in `certPem`, whose issuer is the first certificate of `chainPem`, through the
 * stapler's fetchOcsp (status 200, Content-Type application/ocsp-response, at most 64 KiB), and
 * the DER of the answer when its responseStatus is successful (RFC 6960 §4.2.1). The answer's
 * signature is not checked, as `openssl ocsp -respout` in a cron job does not.
 * @param timeoutMs bound of the whole exchange, in milliseconds.
 * @throws FetchError (@ocsp-lab/stapler) when the responder cannot be reached or answers badly;
 * Error naming the responseStatus for an unsuccessful answer; OcspDecodeError for a body that
 * is not an OCSPResponse.
 */
export async function fetchForOperator(certPem: string, chainPem: string, url: string, timeoutMs: number): Promise<Uint8Array> {
  const cert = new x509.X509Certificate(certPem);
  const issuer = new x509.X509Certificate(splitPem(chainPem)[0]!);
  const { der } = await buildOcspRequest({ certificate: toPkiCertificate(cert), issuer: toPkiCertificate(issuer) });
  const body = await fetchOcsp(url, der, timeoutMs);
  const status = OcspResponse.fromDer(body).responseStatus;
  if (status !== OCSPResponseStatus.successful) throw new Error(`responseStatus ${OCSPResponseStatus[status]}`);
  return body;
}
