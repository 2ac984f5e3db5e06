import type * as x509 from "@peculiar/x509";
import { InvalidArgumentError } from "./errors.js";

/** Subject fields a user can set (RFC 5280 §4.1.2.6, attribute types of RFC 4519). */
export interface SubjectFields {
  commonName?: string;
  organization?: string;
  organizationalUnit?: string;
  country?: string;
  state?: string;
  locality?: string;
  /** PKCS#9 emailAddress, for client certificates that still want it in the DN. */
  email?: string;
}

/**
 * The subject as a @peculiar/x509 JSON name, in DER order (C, ST, L, O, OU, CN, emailAddress),
 * so values with commas or plus signs need no escaping.
 * @throws InvalidArgumentError for a country that is not two capital letters.
 */
export function subjectName(fields: SubjectFields): x509.JsonName {
  if (fields.country !== undefined && !/^[A-Z]{2}$/.test(fields.country)) {
    throw new InvalidArgumentError("country", fields.country, "give a two-letter ISO 3166 code like NL (RFC 5280 Appendix A)");
  }
  const rdns: x509.JsonName = [];
  const add = (type: string, value: string | undefined): void => {
    if (value !== undefined && value !== "") rdns.push({ [type]: [value] });
  };
  add("C", fields.country);
  add("ST", fields.state);
  add("L", fields.locality);
  add("O", fields.organization);
  add("OU", fields.organizationalUnit);
  add("CN", fields.commonName);
  add("E", fields.email);
  return rdns;
}
