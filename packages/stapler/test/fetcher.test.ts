import { describe, expect, it } from "vitest";
import { FetchError, fetchOcsp } from "@ocsp-lab/stapler";

describe("fetchOcsp", () => {
  it.each(["ftp://127.0.0.1/ocsp", "file:///etc/passwd", "not a url"])(
    "refuses %s as a FetchError naming the URL, never a TypeError",
    async (url) => {
      const err = await fetchOcsp(url, new Uint8Array([0x30, 0x00]), 1000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchError);
      expect((err as FetchError).kind).toBe("network");
      expect((err as FetchError).message).toContain(JSON.stringify(url));
    },
  );
});
