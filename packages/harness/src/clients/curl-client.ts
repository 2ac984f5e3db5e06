import { constants as fsConstants } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClientDriver, ClientObservation, KeptSession, TlsTarget } from "./client.js";
import { commandAvailable, execCapture, startCapture } from "./exec.js";

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

/** How long a curl that keeps a session may wait for its resumed transfer, in ms (discard ends it sooner). */
const KEPT_SESSION_MAX_MS = 300_000;

/** The line `--write-out` prints to stderr after each transfer of a kept-session run. */
const TRANSFER_DONE = (which: string): RegExp => new RegExp(`^ocsp-lab: ${which} transfer exit (\\d+): (.*)$`, "m");

/**
 * curl with `--cert-status` (OCSP stapling required and verified by curl itself). Reports
 * `connected` when curl fetched the page, else `refused: <reason>` from curl's verbose output.
 *
 * curl keeps TLS sessions in its own memory only (curl before 8.12 has no `--ssl-sessions`
 * file), so a kept session is one curl process with two transfers (`--next`): the first fetches
 * the page with `Connection: close` (so the second needs a new connection) and leaves the
 * session in curl's cache; the second uploads from a named pipe that curl opens before it
 * connects, so it waits there until resume opens the pipe, then connects offering the cached
 * session (verbose: "SSL re-using session ID"); the server resumed it when no Certificate
 * message follows in the verbose handshake trace.
 */
export class CurlClient implements ClientDriver {
  readonly name = "curl";

  /** curl on PATH. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return commandAvailable("curl", ["--version"]);
  }

  /** See ClientDriver.probe. */
  async probe(target: TlsTarget): Promise<ClientObservation> {
    const r = await execCapture("curl", [...curlArgs(target), url(target)]);
    const lastError = r.stderr.split("\n").find((l) => /^curl: \(\d+\)/.test(l)) ?? r.spawnError?.message ?? `exit ${r.code}`;
    if (r.code === 0) return this.obs("connected", "curl --cert-status fetched the page");
    return this.obs(`refused: ${reason(r.stderr)}`, lastError.trim());
  }

  /**
   * See ClientDriver.probeKeepingSession and the class: resolves once curl's first transfer has
   * ended, with curl waiting on the named pipe (made with mkfifo, in a temporary folder removed by
   * resume or discard).
   */
  async probeKeepingSession(target: TlsTarget): Promise<{ observation: ClientObservation; session: KeptSession }> {
    const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-curl-session-"));
    const pipe = join(dir, "resume");
    const made = await execCapture("mkfifo", [pipe]);
    if (made.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      const why = made.spawnError?.message ?? made.stderr.trim();
      const observation = await this.probe(target);
      return {
        observation,
        session: { resume: async () => this.obs("no session to resume", `mkfifo: ${why}`), discard: async () => {} },
      };
    }
    const done = (which: string): string[] => [
      "--write-out",
      `%{stderr}ocsp-lab: ${which} transfer exit %{exitcode}: %{errormsg}\\n`,
    ];
    const curl = startCapture(
      "curl",
      [
        ...curlArgs(target),
        "--header",
        "Connection: close",
        ...done("first"),
        url(target),
        "--next",
        ...curlArgs(target),
        "--upload-file",
        pipe,
        ...done("resumed"),
        url(target),
      ],
      { timeoutMs: KEPT_SESSION_MAX_MS },
    );
    const first = await curl.stderrMatch(TRANSFER_DONE("first"));
    const observation = first
      ? this.transfer(first, curl.stderr.slice(0, first.index))
      : this.obs("refused: tls error", (await curl.done).spawnError?.message ?? "curl ended before its first transfer did");
    let used = false;
    const discard = async (): Promise<void> => {
      used = true;
      curl.kill();
      await curl.done;
      await rm(dir, { recursive: true, force: true });
    };
    const session: KeptSession = {
      resume: async () => {
        if (used || curl.ended) {
          await discard();
          return this.obs("no session to resume", "curl is no longer waiting to resume");
        }
        used = true;
        // Not released: curl ended, or the pipe is gone and curl would wait on it until killed.
        if (!(await release(pipe, curl.done))) curl.kill();
        const r = await curl.done;
        await rm(dir, { recursive: true, force: true });
        const second = TRANSFER_DONE("resumed").exec(r.stderr);
        const after = r.stderr.slice((first?.index ?? 0) + (first?.[0].length ?? 0));
        if (!second) return this.obs("refused: tls error (not resumed)", `curl exit ${r.code} before its second transfer ended`);
        const seen = this.transfer(second, after);
        const sameConnection = /Re-?using existing connection/i.test(after);
        // curl logs the session it offers ("SSL re-using session ID") before the server answers; the
        // server resumed it when no Certificate message came (RFC 8446 §2.2).
        const offered = /^\* (SSL re-?using session.*)$/im.exec(after)?.[1];
        const resumed = offered !== undefined && !/\(IN\), TLS handshake, Certificate \(11\)/.test(after);
        const how = sameConnection ? "same connection, no handshake" : resumed ? "resumed" : "not resumed";
        const outcome =
          resumed && seen.outcome === "connected" ? "connected (resumed, no staple seen)" : `${seen.outcome} (${how})`;
        const said = offered
          ? `${offered}, ${resumed ? "no Certificate came" : "the server sent its Certificate"}`
          : "no session offered";
        return this.obs(outcome, `${said}; ${seen.detail}`);
      },
      discard,
    };
    return { observation, session };
  }

  /** One transfer of a kept-session run from its `--write-out` line and its part of the verbose output. */
  private transfer(done: RegExpExecArray, verbose: string): ClientObservation {
    if (done[1] === "0") return this.obs("connected", "curl --cert-status fetched the page");
    return this.obs(`refused: ${reason(verbose)}`, `curl: (${done[1]}) ${done[2]}`);
  }

  private obs(outcome: string, detail: string): ClientObservation {
    return { client: this.name, outcome, detail };
  }
}

/** The harness' reason for a failed transfer, from curl's verbose output. */
function reason(stderr: string): string {
  return CURL_REASONS.find(([re]) => re.test(stderr))?.[1] ?? "tls error";
}

/** `curl --cert-status` for `target`, verbose, the page discarded. */
function curlArgs(target: TlsTarget): string[] {
  return [
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
  ];
}

function url(target: TlsTarget): string {
  return `https://${target.servername}:${target.port}/`;
}

/**
 * Let the curl waiting on `pipe` go on: open the pipe for writing (which waits for curl to open it
 * for reading) and close it at once (an empty upload): true. Should curl end instead (or the
 * pipe not open), opening the read end ourselves, non-blocking, ends that wait: false. Nothing
 * is left blocked either way.
 */
async function release(pipe: string, ended: Promise<unknown>): Promise<boolean> {
  const writer = open(pipe, "w");
  const opened = await Promise.race([
    writer.then(
      (handle) => ({ handle }),
      () => undefined,
    ),
    ended.then(() => undefined),
  ]);
  if (opened) {
    await opened.handle.close();
    return true;
  }
  const reader = await open(pipe, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK).catch(() => undefined);
  await (await writer.catch(() => undefined))?.close();
  await reader?.close();
  return false;
}
