/**
 * Export of the CA's certificates as an `openssl ca` database (`index.txt`), so that
 * `openssl ocsp -index index.txt -CA ca.pem -rsigner ... -rkey ...` can answer for the same CA as
 * a reference responder, and `openssl ca -gencrl` can build a CRL from it.
 */
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { CRLReason, crlReasonName, normalizeSerial } from "@ocsp-lab/ocsp";
import { InvalidArgumentError } from "../errors.js";

/** One certificate of the database. */
export interface IndexEntry {
  /**
   * Serial in hex: the canonical form of CertificateRecord.serial, or anything `normalizeSerial`
   * takes (either case, `0x`, `:`, a missing leading 0 digit).
   */
  serial: string;
  /** End of validity (X.509 notAfter). */
  notAfter: Date;
  /**
   * Subject DN as `@peculiar/x509`'s `X509Certificate.subject` prints it (and as
   * CertificateRecord.subject stores it), e.g. `CN=localhost, O=ocsp-lab`.
   */
  subject: string;
  /** Present when revoked: RFC 6960 revocationTime and RFC 5280 CRLReason. */
  revocation?: { time: Date; reason: CRLReason };
}

/**
 * OpenSSL's names of the reasons (the `crl_reasons` table of apps/ca.c, matched case-insensitively
 * when read back). privilegeWithdrawn (9) and aACompromise (10) have no name there. `removeFromCRL`
 * is 7th in OpenSSL's table but OpenSSL maps it to the RFC value 8.
 */
const OPENSSL_REASON_NAMES: Readonly<Partial<Record<CRLReason, string>>> = {
  [CRLReason.unspecified]: "unspecified",
  [CRLReason.keyCompromise]: "keyCompromise",
  [CRLReason.cACompromise]: "CACompromise",
  [CRLReason.affiliationChanged]: "affiliationChanged",
  [CRLReason.superseded]: "superseded",
  [CRLReason.cessationOfOperation]: "cessationOfOperation",
  [CRLReason.certificateHold]: "certificateHold",
  [CRLReason.removeFromCRL]: "removeFromCRL",
};

/** OpenSSL's short names (OBJ_nid2sn) of the usual DN attribute types, by OID. */
const SHORT_NAMES: Readonly<Record<string, string>> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "street",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.12": "title",
  "2.5.4.13": "description",
  "2.5.4.15": "businessCategory",
  "2.5.4.17": "postalCode",
  "2.5.4.41": "name",
  "2.5.4.42": "GN",
  "2.5.4.43": "initials",
  "2.5.4.44": "generationQualifier",
  "2.5.4.46": "dnQualifier",
  "2.5.4.65": "pseudonym",
  "2.5.4.97": "organizationIdentifier",
  "1.2.840.113549.1.9.1": "emailAddress",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC",
  "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
  "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
  "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
};

/**
 * Render certificates as an `openssl ca` database (`index.txt`, OpenSSL's TXT_DB format): one
 * line per entry, in the given order, each ending in `\n`, with six TAB-separated fields:
 *
 * 1. status: `R` revoked; else `E` when `notAfter` is before `now`; else `V` valid (like
 *    `openssl ca -updatedb`, which never turns `R` into `E`). `openssl ocsp -index` answers an
 *    `E` serial with no SingleResponse at all ("No Status found"), as OpenSSL itself does;
 * 2. expiry: notAfter as UTCTime `YYMMDDHHMMSSZ` (GeneralizedTime `YYYYMMDDHHMMSSZ` outside
 *    1950-2049, as RFC 5280 §4.1.2.5 and `openssl ca` write it), seconds truncated;
 * 3. revocation: empty unless revoked, then `YYMMDDHHMMSSZ,reasonName` with OpenSSL's reason
 *    names (`unspecified`, `keyCompromise`, `CACompromise`, `affiliationChanged`, `superseded`,
 *    `cessationOfOperation`, `certificateHold`, `removeFromCRL`);
 * 4. serial: uppercase hex as OpenSSL's BN_bn2hex prints it (`normalizeSerial` in uppercase:
 *    whole bytes, so `0A1B…` for a first byte below 0x10; no leading zero bytes; `00` for
 *    zero), which is what `openssl ocsp -index` looks requests up by;
 * 5. file name: `unknown`;
 * 6. subject in OpenSSL's one-line form (X509_NAME_oneline, `-nameopt compat`), RDNs in DER
 *    order: `/CN=localhost/O=ocsp-lab`; `/` and `+` in values escaped with `\`, bytes outside
 *    printable ASCII as `\xHH`, multi-valued RDNs joined with `+`.
 *
 * @param entries the certificates; serials must be unique.
 * @param now the time `E` is decided against; default the current time.
 * @returns the file's text (empty string for no entries).
 * @throws InvalidSerialError for a serial that is not hex; InvalidArgumentError for a duplicate
 *   serial, an invalid date, a revocation time outside 1950-2049 (OpenSSL reads it as UTCTime
 *   only), a reason OpenSSL cannot name (privilegeWithdrawn, aACompromise) or a subject that is
 *   not a DN string.
 */
export function toOpensslIndex(entries: IndexEntry[], now: Date = new Date()): string {
  assertDate("now", now);
  const seen = new Set<string>();
  let out = "";
  for (const entry of entries) {
    const serial = opensslSerial(entry.serial);
    if (seen.has(serial)) {
      throw new InvalidArgumentError(
        "index entry serial",
        entry.serial,
        "each serial may appear once: `openssl ocsp -index` refuses a database with duplicate serials",
      );
    }
    seen.add(serial);
    assertDate(`notAfter of ${entry.serial}`, entry.notAfter);
    let status = entry.notAfter.getTime() < now.getTime() ? "E" : "V";
    let revoked = "";
    if (entry.revocation) {
      status = "R";
      revoked = revocationField(entry.serial, entry.revocation);
    }
    out += `${[status, asn1Time(entry.notAfter), revoked, serial, "unknown", opensslOneline(entry.subject)].join("\t")}\n`;
  }
  return out;
}

/** `YYMMDDHHMMSSZ,reason` of a revocation. */
function revocationField(serial: string, revocation: { time: Date; reason: CRLReason }): string {
  const { time, reason } = revocation;
  assertDate(`revocation time of ${serial}`, time);
  const year = time.getUTCFullYear();
  if (year < 1950 || year > 2049) {
    throw new InvalidArgumentError(
      `revocation time of ${serial}`,
      time.toISOString(),
      "OpenSSL's index stores revocation times as UTCTime: give a time between 1950 and 2049",
    );
  }
  const name = OPENSSL_REASON_NAMES[reason];
  if (name === undefined) {
    throw new InvalidArgumentError(
      `revocation reason of ${serial}`,
      crlReasonName(reason),
      `OpenSSL's index cannot express it: use one of ${Object.values(OPENSSL_REASON_NAMES).join(", ")}`,
    );
  }
  return `${asn1Time(time)},${name}`;
}

/**
 * Serial as OpenSSL's BN_bn2hex prints it, which is what `openssl ocsp -index` looks a request's
 * serial up by: the canonical serial (`normalizeSerial`, the one normalisation every package
 * uses: whole bytes, no leading zero bytes, `00` for zero) in uppercase. A serial whose first
 * byte is below 0x10 keeps its leading 0 digit (`0A1B…`, never `A1B…`).
 */
function opensslSerial(serial: string): string {
  return normalizeSerial(String(serial)).toUpperCase();
}

/** UTCTime `YYMMDDHHMMSSZ` for 1950-2049, else GeneralizedTime `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5). */
function asn1Time(date: Date): string {
  const year = date.getUTCFullYear();
  const p2 = (n: number): string => String(n).padStart(2, "0");
  const rest = `${p2(date.getUTCMonth() + 1)}${p2(date.getUTCDate())}${p2(date.getUTCHours())}${p2(date.getUTCMinutes())}${p2(date.getUTCSeconds())}Z`;
  return year >= 1950 && year <= 2049 ? `${p2(year % 100)}${rest}` : `${String(year).padStart(4, "0")}${rest}`;
}

function assertDate(what: string, date: Date): void {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError(what, String(date), "give a valid Date");
  }
}

/**
 * OpenSSL's one-line DN (X509_NAME_oneline as in OpenSSL 3) of a DN string in @peculiar/x509's
 * form. That string lists RDNs in the certificate's DER order (not reversed as RFC 4514 says),
 * which is also the order of the one-line form; @peculiar/x509 parses it back in the same order.
 */
function opensslOneline(subject: string): string {
  let der: ArrayBuffer;
  try {
    der = new x509.Name(subject).toArrayBuffer();
  } catch (cause) {
    throw new InvalidArgumentError("subject", subject, `give a DN such as "CN=localhost, O=ocsp-lab" (${String(cause)})`);
  }
  // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue)
  const name = asn1js.fromBER(der).result as asn1js.Sequence;
  let out = "";
  for (const rdn of name.valueBlock.value as asn1js.Set[]) {
    (rdn.valueBlock.value as asn1js.Sequence[]).forEach((atv, i) => {
      const [type, value] = atv.valueBlock.value as [asn1js.ObjectIdentifier, asn1js.BaseBlock];
      const oid = type.valueBlock.toString();
      out += `${i === 0 ? "/" : "+"}${SHORT_NAMES[oid] ?? oid}=${escapeValue(contentOctets(value))}`;
    });
  }
  return out;
}

/** The content octets of a DER element (what X509_NAME_oneline prints for a value). */
function contentOctets(element: asn1js.BaseBlock): Uint8Array {
  const tlv = element.valueBeforeDecodeView;
  return tlv.subarray(element.idBlock.blockLength + element.lenBlock.blockLength);
}

/** X509_NAME_oneline escaping: `\/`, `\+`, and `\xHH` (uppercase) outside printable ASCII. */
function escapeValue(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    if (b < 0x20 || b > 0x7e) out += `\\x${b.toString(16).toUpperCase().padStart(2, "0")}`;
    else if (b === 0x2f || b === 0x2b) out += `\\${String.fromCharCode(b)}`;
    else out += String.fromCharCode(b);
  }
  return out;
}
