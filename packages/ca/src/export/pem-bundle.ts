/**
 * One PEM file holding a certificate, its private key and its chain, in that order: what
 * HAProxy's `crt`, `openssl s_server -cert f -key f` and many appliances load as a single file.
 */
import { InvalidArgumentError } from "../errors.js";

/** What a PEM bundle is made of: PEM texts, each with or without a final newline. */
export interface PemBundleParams {
  /** The certificate, PEM (`-----BEGIN CERTIFICATE-----`). */
  certPem: string;
  /** Its private key, PEM (PKCS#8 `-----BEGIN PRIVATE KEY-----` as the CA writes it). */
  keyPem: string;
  /** The issuer chain up to the root, PEM (one or more certificates); empty for none. */
  chainPem?: string;
}

/**
 * The bundle text: certificate, then key, then chain, each block on its own lines and the
 * whole ending with `\n` (a part missing its final newline gets one, so two blocks are never
 * glued into `-----END PRIVATE KEY----------BEGIN CERTIFICATE-----`).
 * @throws InvalidArgumentError when `certPem` holds no certificate block or `keyPem` no private key block.
 */
export function toPemBundle(params: PemBundleParams): string {
  if (!/-----BEGIN CERTIFICATE-----/.test(params.certPem)) {
    throw new InvalidArgumentError(
      "certificate PEM",
      firstLine(params.certPem),
      "give a PEM certificate (-----BEGIN CERTIFICATE-----)",
    );
  }
  if (!/-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/.test(params.keyPem)) {
    // Only the first line is quoted: the rest may be key material.
    throw new InvalidArgumentError(
      "private key PEM",
      firstLine(params.keyPem),
      "give a PEM private key (-----BEGIN PRIVATE KEY-----)",
    );
  }
  return [params.certPem, params.keyPem, params.chainPem ?? ""]
    .filter((p) => p.trim() !== "")
    .map(withFinalNewline)
    .join("");
}

/** `text` with exactly one final newline (trailing whitespace removed first). */
function withFinalNewline(text: string): string {
  return `${text.trimEnd()}\n`;
}

/**
 * The first line of `text` for an error message when it is a PEM boundary (`-----BEGIN …`);
 * anything else is described, never quoted, since it may be key material.
 */
function firstLine(text: string): string {
  const line = (text.trimStart().split("\n")[0] ?? "").slice(0, 64);
  return line.startsWith("-----") ? line : `${text.length} characters that are not PEM`;
}
