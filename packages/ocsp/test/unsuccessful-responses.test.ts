import { describe, expect, it } from "vitest";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  OCSPResponseStatus,
  OcspResponse,
  OcspResponseGenerator,
  UNSUCCESSFUL_RESPONSES,
  UNSUCCESSFUL_STATUS_NAMES,
  unsuccessfulResponse,
} from "@ocsp-lab/ocsp";
import { run, tempDir } from "../../../test-support/index.js";

describe("pre-encoded unsuccessful responses", () => {
  it.each(UNSUCCESSFUL_STATUS_NAMES)(
    "%s: the 5-byte DER of OCSPResponse { responseStatus }, which openssl reads",
    async (name) => {
      const der = unsuccessfulResponse(name);
      const value = OCSPResponseStatus[name];
      expect(Buffer.from(der).toString("hex")).toBe(`30030a010${value}`);
      const shared = UNSUCCESSFUL_RESPONSES[value as Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>];
      expect(shared).toEqual(der);
      expect(OcspResponseGenerator.error(value as Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>)).toEqual(der);
      // Copies: a caller that changes its bytes changes nobody else's.
      const mine = unsuccessfulResponse(name);
      mine[0] = 0;
      expect(shared[0]).toBe(0x30);
      expect(unsuccessfulResponse(name)[0]).toBe(0x30);
      const parsed = OcspResponse.fromDer(der);
      expect(parsed.responseStatus).toBe(value);
      expect(parsed.basic).toBeUndefined();
      const { dir, cleanup } = await tempDir();
      try {
        await writeFile(join(dir, "resp.der"), der);
        const r = await run("openssl", ["ocsp", "-respin", join(dir, "resp.der"), "-resp_text", "-noverify"]);
        expect(r.stdout + r.stderr).toMatch(new RegExp(`Responder Error: ${name.toLowerCase()} \\(${value}\\)`, "i"));
      } finally {
        await cleanup();
      }
    },
  );
});
