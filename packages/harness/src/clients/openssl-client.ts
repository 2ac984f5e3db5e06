import type { ClientDriver, ClientObservation, TlsTarget } from "./client.js";
import { commandAvailable, execCapture } from "./exec.js";

/**
 * `openssl s_client -status`: asks for a staple and prints it without enforcing anything, so it
 * reports what it saw: `staple: good|revoked|unknown`, `staple: <responseStatus>` for an error
 * response, `staple: parse error` for bytes it cannot decode as an OCSPResponse, or `no staple`.
 */
export class OpensslClient implements ClientDriver {
  readonly name = "openssl";

  /** openssl on PATH. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return commandAvailable("openssl", ["version"]);
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const r = await execCapture("openssl", [
      "s_client",
      "-connect",
      `${target.host}:${target.port}`,
      "-servername",
      target.servername,
      "-status",
      "-CAfile",
      target.caFile,
    ]);
    const out = r.stdout + r.stderr;
    const verify = /Verify return code: (\d+ \([^)]*\))/.exec(out)?.[1] ?? "no verify result";
    if (r.spawnError) return { client: this.name, outcome: "error", detail: r.spawnError.message };
    if (/OCSP response: no response sent/.test(out))
      return { client: this.name, outcome: "no staple", detail: `verify ${verify}` };
    if (/OCSP response: response parse error/.test(out))
      return { client: this.name, outcome: "staple: parse error", detail: `verify ${verify}` };
    const certStatus = /Cert Status: (\w+)/.exec(out)?.[1];
    if (certStatus) return { client: this.name, outcome: `staple: ${certStatus}`, detail: `verify ${verify}` };
    const responseStatus = /OCSP Response Status: (\w+)/.exec(out)?.[1];
    if (responseStatus) return { client: this.name, outcome: `staple: ${responseStatus}`, detail: `verify ${verify}` };
    return {
      client: this.name,
      outcome: "error",
      detail: (out.split("\n").find((l) => /error|errno/i.test(l)) ?? `exit ${r.code}`).trim(),
    };
  }
}
