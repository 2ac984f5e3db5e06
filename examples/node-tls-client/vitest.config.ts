import { defineConfig } from "vitest/config";

// The example's own config, so it runs the same when copied out of this repository.
export default defineConfig({ test: { include: ["*.test.ts"], testTimeout: 30_000 } });
