import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClientDriver, ClientObservation, KeptSession, TlsTarget } from "./client.js";
import { commandAvailable, execCapture, type ExecResult } from "./exec.js";

/**
 * `openssl s_client -status`: asks for a staple and prints it without enforcing anything, so it
 * reports what it saw: `staple: good|revoked|unknown`, `staple: <responseStatus>` for an error
 * response, `staple: parse error` for bytes it cannot decode as an OCSPResponse, or `no staple`.
 * A kept session is `-sess_out FILE` on the first handshake and `-sess_in FILE` on the resumed
 * one, which s_client reports as `Reused, TLSv1.3` (or `New,` when the server declined).
 */
export class OpensslClient implements ClientDriver {
  readonly name = "openssl";

  /** openssl on PATH. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return commandAvailable("openssl", ["version"]);
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    return this.observe(await execCapture("openssl", sClientArgs(target)));
  }

  /**
   * See ClientDriver.probeKeepingSession. A TLS 1.3 session comes in a NewSessionTicket after the
   * handshake, which s_client only reads while the connection is open: so this handshake sends an
   * HTTP/1.0 request and, with `-ign_eof`, reads until the server closes (the stapler's HTTPS
   * service answers and closes; a server that does not is cut off after 15 s). The session file
   * is in a temporary folder, removed by resume or discard.
   */
  async probeKeepingSession(target: TlsTarget): Promise<{ observation: ClientObservation; session: KeptSession }> {
    const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-openssl-session-"));
    const file = join(dir, "session.pem");
    const request = `GET / HTTP/1.0\r\nHost: ${target.servername}\r\n\r\n`;
    const observation = this.observe(
      await execCapture("openssl", [...sClientArgs(target), "-sess_out", file, "-ign_eof"], 15_000, request),
    );
    let used = false;
    const discard = async (): Promise<void> => {
      used = true;
      await rm(dir, { recursive: true, force: true });
    };
    const session: KeptSession = {
      resume: async () => {
        if (used) return this.obs("no session to resume", "the session was resumed or discarded already");
        const saved = await stat(file).then(
          (s) => s.size > 0,
          () => false,
        );
        if (!saved) {
          await discard();
          return this.obs("no session to resume", "s_client -sess_out wrote no session: the server gave none");
        }
        const r = await execCapture("openssl", [...sClientArgs(target), "-sess_in", file]);
        await discard();
        const out = r.stdout + r.stderr;
        const reused = /^Reused,/m.test(out);
        const seen = this.observe(r);
        // A resumed TLS 1.2 session prints no OCSP line at all; TLS 1.3 says "no response sent".
        const outcome = reused && seen.outcome === "error" && !/OCSP response/.test(out) ? "no staple" : seen.outcome;
        const protocol = /^(?:Reused|New), (TLSv[\d.]+)/m.exec(out)?.[1] ?? "TLS";
        return this.obs(
          `${outcome} (${reused ? "resumed" : "not resumed"})`,
          `${reused ? "Reused" : "New"}, ${protocol}; ${seen.detail}`,
        );
      },
      discard,
    };
    return { observation, session };
  }

  /** What one s_client run saw (see the class). */
  private observe(r: ExecResult): ClientObservation {
    const out = r.stdout + r.stderr;
    const verify = /Verify return code: (\d+ \([^)]*\))/.exec(out)?.[1] ?? "no verify result";
    if (r.spawnError) return this.obs("error", r.spawnError.message);
    if (/OCSP response: no response sent/.test(out)) return this.obs("no staple", `verify ${verify}`);
    if (/OCSP response: response parse error/.test(out)) return this.obs("staple: parse error", `verify ${verify}`);
    const certStatus = /Cert Status: (\w+)/.exec(out)?.[1];
    if (certStatus) return this.obs(`staple: ${certStatus}`, `verify ${verify}`);
    const responseStatus = /OCSP Response Status: (\w+)/.exec(out)?.[1];
    if (responseStatus) return this.obs(`staple: ${responseStatus}`, `verify ${verify}`);
    return this.obs("error", (out.split("\n").find((l) => /error|errno/i.test(l)) ?? `exit ${r.code}`).trim());
  }

  private obs(outcome: string, detail: string): ClientObservation {
    return { client: this.name, outcome, detail };
  }
}

/** `openssl s_client` asking `target` for a staple, verifying the chain against its CA file. */
function sClientArgs(target: TlsTarget): string[] {
  return [
    "s_client",
    "-connect",
    `${target.host}:${target.port}`,
    "-servername",
    target.servername,
    "-status",
    "-CAfile",
    target.caFile,
  ];
}
