import { promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";
import { normalizeSerial } from "@ocsp-lab/ocsp";
import type { TlsTarget } from "../clients/client.js";
import { ServerUnderTestError } from "../errors.js";
import { SERVER_START_TIMEOUT_MS, pollUntil } from "./process.js";
import { probeStaple } from "./staple-probe.js";

/** The serial (normalizeSerial) of the PEM certificate in `certFile`, its first certificate. */
export async function serialOfFile(certFile: string): Promise<string> {
  return normalizeSerial(new x509.X509Certificate(await fs.readFile(certFile, "utf8")).serialNumber);
}

/**
 * Resolve once handshakes to `target` get the certificate now in `certFile` (after a reload).
 * @throws ServerUnderTestError naming `server` when it still serves another one after SERVER_START_TIMEOUT_MS.
 */
export async function waitServing(
  server: string,
  target: TlsTarget,
  certFile: string,
  log: () => Promise<string>,
): Promise<void> {
  const want = await serialOfFile(certFile);
  const ok = await pollUntil(async () => (await probeStaple(target)).servedSerial === want, SERVER_START_TIMEOUT_MS, {
    everyMs: 100,
  });
  if (!ok) throw new ServerUnderTestError(server, `still serves another certificate than ${want} after its reload`, await log());
}
