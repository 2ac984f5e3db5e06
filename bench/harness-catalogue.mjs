// Catalogue benchmark of the harness (goal: "the whole built-in catalogue with every installed
// client finishes in under 60 seconds on a 2-core machine").
// - Runs `ocsp-lab run --json` (the built command, as a user runs it: every built-in scenario,
//   the clients node, curl and openssl, those not installed reported as skipped) twice: with
//   `--jobs 1` (one scenario at a time, the old behaviour) and with the default jobs (the number
//   of cores, os.availableParallelism()).
// - Prints the time per scenario in each run (from the report: a scenario's lab started to
//   stopped), the total of each run (wall time of the command, process start included, and the
//   run's own figure), the speed-up, and the verdict on the default run's wall time.
// - A run with a mismatched row is reported as such: its time still counts, but the catalogue
//   did not pass, so the verdict says so.
// - The goal is stated for a 2-core machine; on another machine the figure is printed with its
//   core count and the verdict says it was not measured on 2 cores.
// Run: npx -y pnpm@10 bench:harness (or `node bench/harness-catalogue.mjs` after `npx tsc -b`)
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../packages/harness/bin/ocsp-lab.js", import.meta.url));
const GOAL_S = 60;
const GOAL_CORES = 2;
const cores = availableParallelism();

/** Run `ocsp-lab run --json` with `args`; resolves with the parsed report and the command's wall time in ms. */
function runCatalogue(args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, "run", "--json", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const wallMs = performance.now() - started;
      try {
        resolve({ report: JSON.parse(stdout), wallMs, code });
      } catch {
        reject(new Error(`ocsp-lab run ${args.join(" ")} exited ${code} without a JSON report:\n${stderr}`));
      }
    });
  });
}

const s = (ms) => `${(ms / 1000).toFixed(1)} s`;

console.log(`harness catalogue: ${cores} cores (os.availableParallelism()), node ${process.version}`);
const serial = await runCatalogue(["--jobs", "1"]);
const parallel = await runCatalogue([]);

const clients = [...new Set(parallel.report.rows.filter((r) => r.client !== "stapler").map((r) => r.client))];
const installed = clients.filter((c) => parallel.report.rows.some((r) => r.client === c && r.verdict !== "skipped"));
const skipped = clients.filter((c) => !installed.includes(c));
console.log(
  `${parallel.report.scenarios.length} scenarios, clients ${installed.join(", ")}${skipped.length ? ` (not installed: ${skipped.join(", ")})` : ""}`,
);
console.log("");

const width = Math.max("scenario".length, ...parallel.report.scenarios.map((x) => x.name.length));
const col = (text) => text.padStart(10);
console.log(`${"scenario".padEnd(width)}  ${col("--jobs 1")}  ${col(`--jobs ${parallel.report.jobs}`)}`);
const serialByName = new Map(serial.report.scenarios.map((x) => [x.name, x]));
for (const x of parallel.report.scenarios) {
  const one = serialByName.get(x.name);
  const mark = (t) => (t?.verdict === "MISMATCH" ? " MISMATCH" : "");
  console.log(
    `${x.name.padEnd(width)}  ${col(one ? s(one.durationMs) : "-")}  ${col(s(x.durationMs))}${mark(one)}${mark(x)}`.trimEnd(),
  );
}
const sum = (r) => r.report.scenarios.reduce((a, x) => a + x.durationMs, 0);
console.log("");
for (const [label, r] of [
  ["--jobs 1", serial],
  [`--jobs ${parallel.report.jobs} (default)`, parallel],
]) {
  const rows = r.report.rows;
  const count = (v) => rows.filter((row) => row.verdict === v).length;
  console.log(
    `total ${label}: ${s(r.wallMs)} wall (command), run ${s(r.report.durationMs)}, scenarios add up to ${s(sum(r))}; ` +
      `${rows.length} rows: ${count("ok")} as expected, ${count("MISMATCH")} mismatched, ${count("skipped")} skipped`,
  );
}
console.log(`speed-up: ${(serial.wallMs / parallel.wallMs).toFixed(2)}x`);

const passed = parallel.report.ok && parallel.code === 0;
const met = parallel.wallMs < GOAL_S * 1000;
const where = cores === GOAL_CORES ? "" : ` (measured on ${cores} cores, the goal is stated for ${GOAL_CORES})`;
console.log(
  `verdict: whole catalogue with every installed client ${s(parallel.wallMs)} at the default jobs ` +
    `(goal < ${GOAL_S} s on a ${GOAL_CORES}-core machine: ${met && passed ? "met" : "MISSED"}${passed ? "" : ", and the catalogue had mismatches"})${where}`,
);
