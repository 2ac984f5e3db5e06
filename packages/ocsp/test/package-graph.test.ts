/**
 * The import graph between ocsp-lab's packages points one way: ocsp ← ca ← responder,
 * ocsp ← stapler, everything ← harness; cli-support is a leaf the commands use. Checked on
 * what each package's src/ really imports and on its package.json.
 */
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;

/** Which workspace packages each package's run-time code may import. */
const ALLOWED: Record<string, string[]> = {
  ocsp: [],
  "cli-support": [],
  ca: ["ocsp", "cli-support"],
  responder: ["ocsp", "cli-support", "ca"],
  stapler: ["ocsp", "cli-support"],
  harness: ["ocsp", "cli-support", "ca", "responder", "stapler"],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".ts") ? [path] : [];
  });
}

function imported(pkg: string): Set<string> {
  const found = new Set<string>();
  for (const file of files(join(root, pkg, "src"))) {
    // Static (`from "…"`, `import "…"`) and dynamic (`import("…")`) imports alike.
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["']@ocsp-lab\/([a-z-]+)(?:\/[a-z-]+)?["']/g)) found.add(m[1]!);
  }
  return found;
}

describe("package graph", () => {
  it("lists every package", () => {
    expect(
      readdirSync(root)
        .filter((d) => statSync(join(root, d)).isDirectory())
        .sort(),
    ).toEqual(Object.keys(ALLOWED).sort());
  });

  it.each(Object.keys(ALLOWED))("%s imports only the packages below it, each declared as a run-time dependency", (pkg) => {
    const uses = [...imported(pkg)].filter((p) => p !== pkg).sort();
    expect(uses.filter((p) => !ALLOWED[pkg]!.includes(p))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(root, pkg, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    const declared = Object.keys(manifest.dependencies ?? {})
      .filter((d) => d.startsWith("@ocsp-lab/"))
      .map((d) => d.slice("@ocsp-lab/".length))
      .sort();
    expect(declared).toEqual(uses);
  });

  it("has no cycle", () => {
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (p: string, path: string[]): void => {
      if (done.has(p)) return;
      if (visiting.has(p)) throw new Error(`cycle: ${[...path, p].join(" → ")}`);
      visiting.add(p);
      for (const q of imported(p)) if (q !== p) visit(q, [...path, p]);
      visiting.delete(p);
      done.add(p);
    };
    for (const p of Object.keys(ALLOWED)) expect(() => visit(p, [])).not.toThrow();
  });
});
