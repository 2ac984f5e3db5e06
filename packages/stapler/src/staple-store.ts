import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import writeFileAtomic from "write-file-atomic";

/** Folder of the state folder where staples are kept. */
export const STAPLES_FOLDER = "staples";

/**
 * Persisted staples (certmagic keeps its staples on disk so a restart does not open a window
 * without one): one DER OCSPResponse per certificate in `<stateDir>/staples/<sha256 of the
 * certificate DER>.der`, written atomically (temp file, fsync, rename). Keyed by the whole
 * certificate, not the serial: two CAs may issue the same serial. What is read back is
 * re-verified by the caller before it is served.
 */
export class StapleStore {
  private readonly dir: string;

  /** Staples under `<stateDir>/staples/`. */
  constructor(stateDir: string) {
    this.dir = join(stateDir, STAPLES_FOLDER);
  }

  /** Path of the staple of a certificate (DER bytes of the certificate). */
  pathOf(certificateDer: ArrayBuffer | Uint8Array): string {
    return join(this.dir, fileName(certificateDer));
  }

  /** The persisted staple of a certificate, or undefined when there is none or it cannot be read. */
  async load(certificateDer: ArrayBuffer | Uint8Array): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await fs.readFile(this.pathOf(certificateDer)));
    } catch {
      return undefined;
    }
  }

  /** Persist a verified staple (DER OCSPResponse); resolves with the file written. */
  async save(certificateDer: ArrayBuffer | Uint8Array, staple: Uint8Array): Promise<string> {
    const file = this.pathOf(certificateDer);
    await fs.mkdir(this.dir, { recursive: true });
    await writeFileAtomic(file, Buffer.from(staple), { mode: 0o644, fsync: true });
    return file;
  }
}

function fileName(certificateDer: ArrayBuffer | Uint8Array): string {
  const bytes = certificateDer instanceof Uint8Array ? certificateDer : new Uint8Array(certificateDer);
  return `${createHash("sha256").update(bytes).digest("hex")}.der`;
}
