import type { ClientDriver, ClientObservation, TlsTarget } from "./client.js";
import { commandAvailable, execCapture } from "./exec.js";

/**
 * How curl (OpenSSL backend) words each stapling failure (lib/vtls/openssl.c, verifystatus),
 * mapped to the harness' reasons. First match wins.
 */
const CURL_REASONS: Array<[RegExp, string]> = [
  [/No OCSP response received/i, "no staple"],
  [/SSL certificate revocation reason/i, "revoked"],
  [/SSL certificate status: revoked/i, "revoked"],
  [/SSL certificate status: unknown/i, "unknown"],
  [/OCSP response has expired/i, "stale"],
  [/OCSP response verification failed/i, "bad signature"],
  [/Could not find certificate ID in OCSP response/i, "wrong certificate"],
  [/Error computing OCSP ID/i, "no issuer in chain"],
  [/Invalid OCSP response status/i, "not successful"],
  [/Invalid OCSP response/i, "malformed"],
];

/**
 * curl with `--cert-status` (OCSP stapling required and verified by curl itself). Reports
 * `connected` when curl fetched the page, else `refused: <reason>` from curl's verbose output.
 */
export class CurlClient implements ClientDriver {
  readonly name = "curl";

  /** curl on PATH. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return commandAvailable("curl", ["--version"]);
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const r = await execCapture("curl", [
      "--silent",
      "--show-error",
      "--verbose",
      "--cert-status",
      "--cacert",
      target.caFile,
      "--resolve",
      `${target.servername}:${target.port}:${target.host}`,
      "--max-time",
      "10",
      "--output",
      "/dev/null",
      `https://${target.servername}:${target.port}/`,
    ]);
    const lastError = r.stderr.split("\n").find((l) => /^curl: \(\d+\)/.test(l)) ?? r.spawnError?.message ?? `exit ${r.code}`;
    if (r.code === 0) return { client: this.name, outcome: "connected", detail: "curl --cert-status fetched the page" };
    const reason = CURL_REASONS.find(([re]) => re.test(r.stderr))?.[1] ?? "tls error";
    return { client: this.name, outcome: `refused: ${reason}`, detail: lastError.trim() };
  }
}
