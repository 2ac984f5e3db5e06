import type * as pkijs from "pkijs";
import * as x509 from "@peculiar/x509";
import { OcspVerifyError } from "./errors.js";
import { defaultCrypto } from "./crypto.js";
import { readCertId, createCertId, sameCertId } from "./cert-id.js";
import { OID, hashNameFromOid } from "./oids.js";
import { OCSPResponseStatus, responseStatusName, type CertStatus, type CertStatusName } from "./cert-status.js";
import { pkiEngine, plainBytes, toPkiCertificate, toX509Certificate } from "./engine.js";
import { OcspResponse, type SingleResponseView } from "./ocsp-response.js";

const hex = (v: ArrayBuffer | Uint8Array): string => Buffer.from(v instanceof Uint8Array ? v : new Uint8Array(v)).toString("hex");

/** What verifyOcspResponse checks against. */
export interface VerifyOcspOptions {
  /** The certificate the response must be about. */
  certificate: x509.X509Certificate;
  /** Its issuer: signs the response itself, or issued the delegated signer. */
  issuer: x509.X509Certificate;
  /** The time to check thisUpdate/nextUpdate and the signer's validity at. */
  now: Date;
  /** Allowed clock skew for a thisUpdate in the future, in milliseconds. Default 300,000 (5 min). */
  maxSkewMs?: number;
  /** When a nonce was sent, the response must echo it. */
  nonce?: Uint8Array;
  /**
   * A stapler's checks: the response carries exactly one SingleResponse, and its
   * nextUpdate does not outlive the certificate. Default false (a client accepts a response
   * that answers for several certificates).
   */
  strict?: boolean;
  crypto?: Crypto;
}

/** A response that passed every check, with the status of the certificate. */
export interface VerifiedOcspResponse {
  response: OcspResponse;
  single: SingleResponseView;
  /** The certificate's CertStatus name (`single.status`). */
  status: CertStatusName;
  /** The certificate's CertStatus with its RevokedInfo, as the response says. */
  certStatus: CertStatus;
  thisUpdate: Date;
  nextUpdate: Date;
  producedAt: Date;
  /** Who signed: the issuer itself or a delegated OCSP signer it issued. */
  signer: "issuer" | "delegated";
}

/** Default skew allowed for a thisUpdate in the future: 5 minutes, as OpenSSL's `-validity_period` example and most stacks use. */
export const DEFAULT_MAX_SKEW_MS = 300_000;

/**
 * Verify an OCSP response for `certificate` as a strict client or a careful stapler must
 * (RFC 6960 §3.2 and §4.2.2.2):
 * 1. it decodes and responseStatus is successful with a BasicOCSPResponse;
 * 2. the signer is the issuer, or a delegated signer carried in `certs` that the issuer signed,
 *    with id-kp-OCSPSigning and valid at `now`; the responderID names it;
 * 3. the signature over tbsResponseData verifies with the signer's key;
 * 4. a SingleResponse's CertID matches the certificate (same hash algorithm, issuer hashes, serial);
 * 5. thisUpdate is not later than now + maxSkewMs; nextUpdate is present and not past;
 * 6. the nonce matches when one was sent;
 * 7. with `strict`: exactly one SingleResponse, and nextUpdate not after the certificate's notAfter;
 * and it carries no critical extension other than the nonce (RFC 6960 §4.4).
 * @throws OcspVerifyError with `reason` naming the first failed check.
 */
export async function verifyOcspResponse(der: Uint8Array, options: VerifyOcspOptions): Promise<VerifiedOcspResponse> {
  const crypto = options.crypto ?? defaultCrypto;
  const engine = pkiEngine(crypto);
  let response: OcspResponse;
  try {
    response = OcspResponse.fromDer(der);
  } catch (cause) {
    throw new OcspVerifyError("malformed", cause instanceof Error ? cause.message : String(cause), { cause });
  }
  if (response.responseStatus !== OCSPResponseStatus.successful || !response.basic) {
    throw new OcspVerifyError("not successful", `responseStatus is ${responseStatusName(response.responseStatus)}`);
  }
  const basic = response.basic;
  const issuer = toPkiCertificate(options.issuer);
  const certificate = toPkiCertificate(options.certificate);

  // RFC 6960 §4.4: a client must reject a response with a critical extension it does not understand.
  const known = new Set<string>([OID.ocspNonce]);
  const critical = [
    ...(basic.tbsResponseData.responseExtensions ?? []),
    ...basic.tbsResponseData.responses.flatMap((r) => r.singleExtensions ?? []),
  ].find((e) => e.critical && !known.has(e.extnID));
  if (critical) throw new OcspVerifyError("malformed", `unsupported critical extension ${critical.extnID}`);

  // 2. Who signed it.
  const named = await responderNames(response, issuer, crypto);
  let signer: pkijs.Certificate;
  let signerKind: "issuer" | "delegated";
  if (named(issuer)) {
    signer = issuer;
    signerKind = "issuer";
  } else {
    const candidate = (basic.certs ?? []).find((c) => named(c));
    if (!candidate) {
      throw new OcspVerifyError("unauthorized signer", "responderID names neither the issuer nor a certificate in the response");
    }
    const view = toX509Certificate(candidate);
    const issuedByIssuer =
      view.issuer === options.issuer.subject &&
      (await view.verify({ publicKey: options.issuer.publicKey, signatureOnly: true }, crypto));
    if (!issuedByIssuer) {
      throw new OcspVerifyError(
        "unauthorized signer",
        `delegated signer "${view.subject}" was not issued by "${options.issuer.subject}"`,
      );
    }
    const eku = view.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku?.usages.map(String).includes(OID.kpOcspSigning)) {
      throw new OcspVerifyError("unauthorized signer", `delegated signer "${view.subject}" lacks id-kp-OCSPSigning`);
    }
    if (options.now < view.notBefore || options.now > view.notAfter) {
      throw new OcspVerifyError(
        "unauthorized signer",
        `delegated signer "${view.subject}" is not valid at ${options.now.toISOString()}`,
      );
    }
    signer = candidate;
    signerKind = "delegated";
  }

  // 3. Signature.
  let signatureOk = false;
  try {
    signatureOk = await engine.verifyWithPublicKey(
      plainBytes(basic.tbsResponseData.tbsView),
      basic.signature,
      signer.subjectPublicKeyInfo,
      basic.signatureAlgorithm,
    );
  } catch (cause) {
    throw new OcspVerifyError("bad signature", cause instanceof Error ? cause.message : String(cause), { cause });
  }
  if (!signatureOk) throw new OcspVerifyError("bad signature", `signature by ${signerKind} signer does not verify`);

  // 4. Which SingleResponse is about our certificate.
  let single: SingleResponseView | undefined;
  for (const candidate of response.responses) {
    const hash = hashNameFromOid(candidate.certId.hashOid);
    if (!hash) continue;
    const ours = readCertId(await createCertId(certificate, issuer, hash, crypto));
    if (sameCertId(candidate.certId, ours)) {
      single = candidate;
      break;
    }
  }
  if (!single) {
    const serials = response.responses.map((r) => r.certId.serial).join(", ") || "none";
    throw new OcspVerifyError(
      "wrong certificate",
      `no SingleResponse for serial ${options.certificate.serialNumber.toLowerCase()} (response has ${serials})`,
    );
  }

  // 5. Time window.
  const skew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (single.thisUpdate.getTime() > options.now.getTime() + skew) {
    throw new OcspVerifyError("not yet valid", `thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
  }
  if (!single.nextUpdate)
    throw new OcspVerifyError("no nextUpdate", "the response has no nextUpdate, so its freshness is unknown");
  if (single.nextUpdate.getTime() < options.now.getTime()) {
    throw new OcspVerifyError("stale", `nextUpdate ${single.nextUpdate.toISOString()} has passed`);
  }

  // 7. A stapler's stricter checks: one answer, about this certificate, not outliving it.
  if (options.strict) {
    if (response.responses.length !== 1) {
      throw new OcspVerifyError(
        "unexpected responses",
        `${response.responses.length} SingleResponses where exactly 1 was asked for`,
      );
    }
    if (single.nextUpdate.getTime() > options.certificate.notAfter.getTime()) {
      throw new OcspVerifyError(
        "outlives certificate",
        `nextUpdate ${single.nextUpdate.toISOString()} is after the certificate's notAfter ${options.certificate.notAfter.toISOString()}`,
      );
    }
  }

  // 6. Nonce.
  if (options.nonce) {
    const got = response.nonce;
    if (!got || Buffer.compare(Buffer.from(got), Buffer.from(options.nonce)) !== 0) {
      throw new OcspVerifyError(
        "nonce mismatch",
        got ? "the response nonce differs from the request's" : "the response carries no nonce",
      );
    }
  }

  return {
    response,
    single,
    status: single.status,
    certStatus:
      single.status === "revoked"
        ? {
            status: "revoked",
            revocationTime: single.revocationTime,
            ...(single.revocationReason !== undefined ? { revocationReason: single.revocationReason } : {}),
          }
        : { status: single.status },
    thisUpdate: single.thisUpdate,
    nextUpdate: single.nextUpdate,
    producedAt: response.producedAt!,
    signer: signerKind,
  };
}

/** A predicate telling whether the response's responderID names a given certificate. */
async function responderNames(
  response: OcspResponse,
  _issuer: pkijs.Certificate,
  crypto: Crypto,
): Promise<(c: pkijs.Certificate) => boolean> {
  const rid = response.responderId;
  if (!rid) return () => false;
  if ("byName" in rid) {
    return (c) => new x509.Name(c.subject.toSchema().toBER(false)).toString() === rid.byName;
  }
  const keyHashes = new Map<pkijs.Certificate, string>();
  const candidates = [_issuer, ...(response.basic?.certs ?? [])];
  for (const c of candidates) {
    keyHashes.set(
      c,
      hex(await crypto.subtle.digest("SHA-1", plainBytes(c.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView))),
    );
  }
  return (c) => keyHashes.get(c) === rid.byKey;
}
