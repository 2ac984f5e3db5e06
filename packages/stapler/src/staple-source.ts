import { promises as fs } from "node:fs";
import { z } from "zod";
import {
  OCSPResponseStatus,
  OcspResponse,
  responseStatusName,
  type CertStatusName,
  type UnsuccessfulStatusName,
} from "@ocsp-lab/ocsp";
import { CertificateSetupError, InvalidStapleSourceError } from "./errors.js";

/**
 * Where the staple of a certificate comes from (`staple_source`):
 * - `verified` (the default, the production behaviour): responses fetched from the responder
 *   under the polling policy, stapled only once they pass `verifyOcspResponse` (RFC 6960 §3.2,
 *   strict);
 * - `as-received`: every body the responder answers with HTTP 200 is stapled as it came,
 *   unverified: a bad signature, a stale or wrong-serial response, an unsuccessful
 *   responseStatus (tryLater...), even bytes that do not decode. Fetched under the same polling
 *   policy (mode, retries, on_failure for answers that never came); a received answer is
 *   refreshed every `query_frequency`, whatever its nextUpdate, and never dropped for its age;
 * - `bytes`: exactly these DER bytes on every handshake; the responder is never asked;
 * - `file`: the bytes of this file, read at start and re-read on every reload (the file is
 *   watched with the certificate files); the responder is never asked;
 * - `none`: never staple; the responder is never asked.
 * Every source but `verified` is for testing TLS clients (does the client refuse what it
 * should?); the stapler logs a warning at start when one is in force.
 */
export const STAPLE_SOURCE_KINDS = ["verified", "as-received", "bytes", "file", "none"] as const;
export type StapleSourceKind = (typeof STAPLE_SOURCE_KINDS)[number];

/** A staple source, as the library takes it (see STAPLE_SOURCE_KINDS). */
export type StapleSourceSpec =
  | { kind: "verified" }
  | { kind: "as-received" }
  /** `der`: the DER bytes stapled as they are (an OCSPResponse or anything else). */
  | { kind: "bytes"; der: Uint8Array }
  /** `path`: a file of DER bytes, re-read on reload. */
  | { kind: "file"; path: string }
  | { kind: "none" };

/** A staple source as the builder takes it: a spec, or the name of a kind that needs nothing more. */
export type StapleSourceInput = StapleSourceSpec | "verified" | "as-received" | "none";

const FIX = "give verified, as-received, none, { kind: bytes, der: Uint8Array } or { kind: file, path }";

/**
 * The spec of a staple source input (a bare name becomes `{ kind: name }`); the bytes of a
 * `bytes` source are copied.
 * @throws InvalidStapleSourceError for an unknown kind, `bytes` without a Uint8Array `der`,
 * `file` without a non-empty `path`.
 */
export function toStapleSource(input: StapleSourceInput): StapleSourceSpec {
  const spec = typeof input === "string" ? { kind: input } : input;
  const kind = (spec as { kind?: unknown } | undefined)?.kind;
  switch (kind) {
    case "verified":
    case "as-received":
    case "none":
      return { kind };
    case "bytes": {
      const der = (spec as { der?: unknown }).der;
      if (!(der instanceof Uint8Array)) throw new InvalidStapleSourceError(input, "a bytes source needs der: a Uint8Array");
      return { kind, der: new Uint8Array(der) };
    }
    case "file": {
      const path = (spec as { path?: unknown }).path;
      if (typeof path !== "string" || path === "")
        throw new InvalidStapleSourceError(input, "a file source needs path: the DER file to staple");
      return { kind, path };
    }
    default:
      throw new InvalidStapleSourceError(input, FIX);
  }
}

/** Whether a source asks the responder (`verified`, `as-received`). */
export function fetchesFromResponder(spec: StapleSourceSpec): boolean {
  return spec.kind === "verified" || spec.kind === "as-received";
}

/** Whether two sources are the same (same kind, same path, same bytes). */
export function sameStapleSource(a: StapleSourceSpec, b: StapleSourceSpec): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "file") return a.path === (b as { path: string }).path;
  if (a.kind === "bytes") return Buffer.from(a.der).equals(Buffer.from((b as { der: Uint8Array }).der));
  return true;
}

/** A source for messages: `as-received`, `file /path/x.der`, `bytes (471 bytes)`. */
export function describeStapleSource(spec: StapleSourceSpec): string {
  if (spec.kind === "file") return `file ${spec.path}`;
  if (spec.kind === "bytes") return `bytes (${spec.der.byteLength} bytes)`;
  return spec.kind;
}

/**
 * The bytes of a `file` source.
 * @throws CertificateSetupError naming the file when it cannot be read.
 */
export async function readStapleFile(path: string): Promise<Buffer> {
  try {
    return await fs.readFile(path);
  } catch (cause) {
    throw new CertificateSetupError("cannot read staple file", path, "check the path and its permissions", { cause });
  }
}

/**
 * What unverified staple bytes say, read leniently for the status snapshot: the unsuccessful
 * responseStatus name (RFC 6960 §4.2.1), or the certStatus of the SingleResponse about
 * `serial` (the first one when none is) with its times; `unreadable` for bytes that do not
 * decode as an OCSPResponse or a successful one without a SingleResponse.
 */
export function readStaple(
  der: Uint8Array,
  serial: string,
): {
  state: CertStatusName | UnsuccessfulName | "unreadable";
  producedAt?: Date;
  thisUpdate?: Date;
  nextUpdate?: Date;
} {
  let view: OcspResponse;
  try {
    view = OcspResponse.fromDer(der);
  } catch {
    return { state: "unreadable" };
  }
  if (view.responseStatus !== OCSPResponseStatus.successful) {
    const name = responseStatusName(view.responseStatus);
    return { state: UNSUCCESSFUL.has(name) ? (name as UnsuccessfulName) : "unreadable" };
  }
  const single = view.responses.find((r) => r.certId.serial === serial) ?? view.responses[0];
  if (!single) return { state: "unreadable" };
  return {
    state: single.status,
    ...(view.producedAt ? { producedAt: view.producedAt } : {}),
    thisUpdate: single.thisUpdate,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
  };
}

type UnsuccessfulName = UnsuccessfulStatusName;
const UNSUCCESSFUL = new Set<string>(["malformedRequest", "internalError", "tryLater", "sigRequired", "unauthorized"]);

const CONFIG_FIX =
  "give verified, as-received, none, { kind: bytes, base64: <DER in base64> } or { kind: file, path: staple.der }";

/**
 * `staple_source` in the configuration file: `verified`, `as-received`, `none`,
 * `{ kind: bytes, base64: <DER in base64> }`, `{ kind: file, path: staple.der }` (relative to
 * the configuration file), or `{ kind: verified | as-received | none }`.
 */
export const stapleSourceConfigSchema = z.union(
  [
    z.enum(["verified", "as-received", "none"], { error: CONFIG_FIX }),
    z.discriminatedUnion(
      "kind",
      [
        z.object({ kind: z.enum(["verified", "as-received", "none"]) }).strict(),
        z.object({ kind: z.literal("bytes"), base64: z.base64({ error: "give the DER staple in base64" }) }).strict(),
        z.object({ kind: z.literal("file"), path: z.string({ error: "give the DER staple file" }).min(1) }).strict(),
      ],
      { error: CONFIG_FIX },
    ),
  ],
  { error: CONFIG_FIX },
);

/** A configuration file's staple_source, validated by stapleSourceConfigSchema. */
export type StapleSourceConfig = z.output<typeof stapleSourceConfigSchema>;

/** The spec of a configuration's staple_source; a file path is resolved by `resolvePath`. */
export function stapleSourceFromConfig(config: StapleSourceConfig, resolvePath: (p: string) => string): StapleSourceSpec {
  if (typeof config === "string") return { kind: config };
  if (config.kind === "bytes") return { kind: "bytes", der: new Uint8Array(Buffer.from(config.base64, "base64")) };
  if (config.kind === "file") return { kind: "file", path: resolvePath(config.path) };
  return { kind: config.kind };
}
