// Scale of the OCSP responder (issue 11, speed goal 3): a CA with BENCH_SCALE_BIG (default
// 100,000) certificates answers at the same rate (within 10%) as one with BENCH_SCALE_SMALL
// (default 100), and the responder's memory stays under 300 MB after an hour-equivalent of
// distinct requests.
//
// - Two lab CAs are synthesised (bench/lib/synth.mjs: records in ca.json, 10% of them revoked),
//   each served by the responder in a child process of its own (this file forked with --serve,
//   with --expose-gc), the way `ocsp-lab up` serves a CA.
// - Rate: two request mixes, both spread over every certificate of the CA, through wrk (or the
//   node generator) with BENCH_CONNECTIONS (default 50) keep-alive connections. `nonce`: a pool
//   of BENCH_POOL (default 100,000, the same for both CAs) requests, each with its own 32-byte
//   nonce (RFC 8954), so every answer is signed; the path most clients take. `cached`: requests
//   without a nonce (RFC 5019), the same pool size, so each certificate of the big CA is asked
//   about once per pass and each of the small one a thousand times; both CAs are first asked
//   about each certificate once, so the runs measure answers from the cache (which has to hold
//   every one of the big CA's answers for that). BENCH_ROUNDS (default 3) rounds run each CA in
//   turn for BENCH_DURATION_S (default 5) per mix; a figure is the median of its rounds. Before
//   the runs a sample of answers (a good and a revoked certificate, with and without a nonce)
//   is checked with `openssl ocsp -reqin … -respin … -VAfile <signer> -serial …`.
// - Memory, big CA only: the answer cache, the request decoder, the request log and the
//   metrics are each bounded (see the responder's README section); this phase sends more
//   distinct requests than all of them hold but the answer cache (which holds every answer of
//   the CA: that is what makes the cached rate the same). What an hour brings a responder for a
//   CA of N certificates, taken as: each certificate's stapler or client asking once without a
//   nonce by POST (the warm-up) and once by GET (query_frequency 3600 s, as the stapler's
//   default), each asked about once with a fresh nonce, and N serials the CA never issued (a
//   scanner; answered `unknown`), on top of the rate runs. The verdict is on the most RSS seen
//   (sampled every 200 ms from the moment the store is loaded and the port bound: what an
//   operator's monitoring sees), which must stay under 300 MB; RSS, the V8 heap (used and
//   reserved) after a full collection, and what the answer cache counts against its bound
//   (ocsp_response_cache_bytes) are printed after each phase.
// - Exit code 1 when a goal is missed.
//
// Run: npx -y pnpm@10 bench:scale   (about 4 minutes with the defaults on a 2-core machine)
// Env: BENCH_SCALE_BIG, BENCH_SCALE_SMALL, BENCH_DURATION_S, BENCH_ROUNDS, BENCH_CONNECTIONS,
//      BENCH_POOL, BENCH_GENERATOR (wrk | node).
import { fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkWithOpenssl, hasCommand, load, post, sendEach, writePool } from "./lib/load.mjs";
import { requestBuilder, synthesise } from "./lib/synth.mjs";

const num = (name, fallback) => (process.env[name] !== undefined ? Number(process.env[name]) : fallback);
const BIG = num("BENCH_SCALE_BIG", 100_000);
const SMALL = num("BENCH_SCALE_SMALL", 100);
const DURATION_S = num("BENCH_DURATION_S", 5);
const ROUNDS = num("BENCH_ROUNDS", 3);
const CONNECTIONS = num("BENCH_CONNECTIONS", 50);
const POOL = num("BENCH_POOL", 100_000);
/** Goal 3: the big CA's rate at least this fraction of the small one's. */
const RATE_GOAL = 0.9;
/** Goal 3: the responder's peak RSS under this many bytes. */
const MEMORY_GOAL = 300 * 1024 * 1024;
/** One in ten certificates revoked, as bench/ca-scale does. */
const REVOKED_SHARE = 0.1;

/** Child process: the responder for the CA folder BENCH_CA_DIR; reports its port, answers "memory". */
async function serve() {
  const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
  const { OcspResponder } = await import("../packages/responder/dist/index.js");
  const ca = await CertificateAuthority.open(process.env.BENCH_CA_DIR);
  const responder = await (await OcspResponder.forCa(ca)).start();
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
    if (m === "memory") {
      globalThis.gc?.();
      const mem = process.memoryUsage();
      // external counts the ArrayBuffers (the answers' DER) too.
      process.send({ memory: { rss: mem.rss, heap: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external } });
    }
  });
  process.send({ port: responder.port });
}

async function startChild(dir) {
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], {
    env: { ...process.env, BENCH_CA_DIR: dir },
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [msg] = await once(child, "message");
  // RSS sampled from here on (the store loaded, the port bound): the most seen is the verdict.
  const rssOf = () => {
    try {
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  };
  let maxRss = rssOf();
  const sampler = setInterval(() => {
    maxRss = Math.max(maxRss, rssOf());
  }, 200);
  sampler.unref();
  return {
    pid: child.pid,
    get maxRss() {
      return Math.max(maxRss, rssOf());
    },
    url: `http://127.0.0.1:${msg.port}`,
    async memory() {
      const metrics = await (await fetch(`http://127.0.0.1:${msg.port}/metrics`)).text();
      const cacheBytes = Number(/^ocsp_response_cache_bytes (\S+)$/m.exec(metrics)?.[1] ?? Number.NaN);
      child.send("memory");
      const [m] = await once(child, "message");
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
      return { ...m.memory, peak: kb("VmHWM"), cacheBytes };
    },
    async stop() {
      clearInterval(sampler);
      if (child.exitCode !== null) return;
      child.send("exit");
      await once(child, "exit");
    },
  };
}

const fmt = (n) => Math.round(n).toLocaleString("en");
const mb = (n) => `${(n / 1024 / 1024).toFixed(0)} MB`;
/** One phase's memory figures on one line. */
const memLine = (m) =>
  `rss ${mb(m.rss)}, heap ${mb(m.heap)} used of ${mb(m.heapTotal)}, external ${mb(m.external)}, answer cache counts ${mb(m.cacheBytes)}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const generator = process.env.BENCH_GENERATOR ?? (hasCommand("wrk") ? "wrk" : "node");
  const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-scale-"));
  const children = [];
  const missed = [];
  try {
    const cas = {};
    for (const [name, count] of [
      ["small", SMALL],
      ["big", BIG],
    ]) {
      const caDir = join(dir, name);
      const t = performance.now();
      const { serials, root } = await synthesise(caDir, count, Math.round(count * REVOKED_SHARE));
      const build = await requestBuilder(root);
      const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
      const ca = await CertificateAuthority.open(caDir);
      const files = { caFile: ca.rootFile, signerCert: ca.ocspSignerFile };
      ca.close();
      const at = (i) => serials[i % serials.length];
      const plain = serials.map((s) => build(s));
      cas[name] = {
        count,
        serials,
        build,
        files,
        plain,
        nonced: await writePool(
          dir,
          `${name}-nonce`,
          Array.from({ length: POOL }, (_, i) => build(at(i), true)),
        ),
        cached: await writePool(
          dir,
          `${name}-cached`,
          Array.from({ length: POOL }, (_, i) => plain[i % plain.length]),
        ),
      };
      console.log(
        `${name} CA: ${fmt(count)} certificates (${fmt(Math.round(count * REVOKED_SHARE))} revoked), requests ${plain[0].length} B (${cas[name].nonced.bodies[0].length} B with a nonce), made in ${fmt(performance.now() - t)} ms`,
      );
      const child = await startChild(caDir);
      children.push(child);
      cas[name].child = child;
      cas[name].idle = await child.memory();
    }

    // A sample checked by openssl: a revoked and a good certificate, with and without a nonce.
    for (const name of ["small", "big"]) {
      const { serials, build, files, child, count } = cas[name];
      const cases = [
        { serial: serials[0], expected: "revoked" },
        { serial: serials[count - 1], expected: "good" },
      ];
      for (const { serial, expected } of cases) {
        for (const nonce of [false, true]) {
          const requestDer = build(serial, nonce);
          const answer = await post(child.url, requestDer);
          const problem = await checkWithOpenssl({
            dir,
            tag: `${name}-${serial}-${nonce}`,
            requestDer,
            answerDer: answer.body,
            ...files,
            serial,
            expected,
          });
          if (problem) throw new Error(`${name} CA, ${expected} serial ${serial}${nonce ? " with a nonce" : ""}: ${problem}`);
        }
      }
    }
    console.log("sample: 8 answers verified by openssl ocsp -VAfile (status, signature, nonce echoed)");

    // Ask about each certificate once: the cached runs then answer from the cache.
    for (const name of ["small", "big"]) {
      const { child, plain } = cas[name];
      const r = await sendEach({
        url: child.url,
        requests: plain.map((body) => ({ method: "POST", body })),
        connections: CONNECTIONS,
      });
      if (r.non2xx || r.errors) throw new Error(`${name} CA: warm-up had ${r.non2xx} non-200 answers and ${r.errors} errors`);
      console.log(
        `warm-up: ${name} CA asked about each of its ${fmt(plain.length)} certificates once in ${r.seconds.toFixed(1)} s`,
      );
    }

    console.log(
      `\nrate: ${generator}, ${CONNECTIONS} keep-alive connections, ${ROUNDS} rounds of ${DURATION_S} s per CA and mix, pools of ${fmt(POOL)} requests over every certificate`,
    );
    for (const mix of ["nonce", "cached"]) {
      const rps = { small: [], big: [] };
      const p99 = { small: [], big: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const name of round % 2 === 0 ? ["small", "big"] : ["big", "small"]) {
          const { child } = cas[name];
          const r = await load({
            generator,
            url: child.url,
            pool: mix === "nonce" ? cas[name].nonced : cas[name].cached,
            connections: CONNECTIONS,
            seconds: DURATION_S,
            newConnection: false,
          });
          if (r.errors || r.non2xx) throw new Error(`${mix}, ${name} CA: ${r.errors} errors, ${r.non2xx} non-200 answers`);
          rps[name].push(r.rps);
          p99[name].push(r.p99Ms);
        }
      }
      const ratio = median(rps.big) / median(rps.small);
      const met = ratio >= RATE_GOAL;
      if (!met) missed.push(`${mix} rate`);
      console.log(
        `${mix.padEnd(6)}  ${fmt(SMALL).padStart(7)} certificates ${fmt(median(rps.small)).padStart(6)} req/s (p99 ${median(p99.small).toFixed(1)} ms)` +
          `  ${fmt(BIG).padStart(7)} certificates ${fmt(median(rps.big)).padStart(6)} req/s (p99 ${median(p99.big).toFixed(1)} ms)` +
          `  ratio ${ratio.toFixed(2)}  goal ≥ ${RATE_GOAL}: ${met ? "met" : "MISSED"}   [rounds: small ${rps.small.map(fmt).join(", ")}; big ${rps.big.map(fmt).join(", ")}]`,
      );
    }

    // An hour-equivalent of distinct requests, big CA.
    const big = cas.big;
    const { newSerial } = await import("../packages/ca/dist/index.js");
    const getPath = (der) => `/${encodeURIComponent(Buffer.from(der).toString("base64"))}`;
    const phases = [
      ["GET without a nonce, each certificate", big.plain.map((der) => ({ method: "GET", path: getPath(der) }))],
      ["POST with a fresh nonce, each certificate", big.serials.map((s) => ({ method: "POST", body: big.build(s, true) }))],
      [
        "POST without a nonce, serials never issued",
        Array.from({ length: BIG }, () => ({ method: "POST", body: big.build(newSerial()) })),
      ],
    ];
    console.log(`\nmemory: big CA, an hour-equivalent of distinct requests on top of the rate runs`);
    const before = await big.child.memory();
    console.log(
      `  idle after start      ${memLine(big.idle)}  (small CA: rss ${mb(cas.small.idle.rss)}, heap ${mb(cas.small.idle.heap)})`,
    );
    console.log(`  after the rate runs   ${memLine(before)}`);
    let sent = 0;
    for (const [label, requests] of phases) {
      const r = await sendEach({ url: big.child.url, requests, connections: CONNECTIONS });
      if (r.non2xx || r.errors) throw new Error(`${label}: ${r.non2xx} non-200 answers, ${r.errors} errors`);
      sent += r.sent;
      const m = await big.child.memory();
      console.log(`  + ${fmt(r.sent)} ${label.padEnd(43)} ${r.seconds.toFixed(1).padStart(5)} s  ${memLine(m)}`);
    }
    const after = await big.child.memory();
    const most = big.child.maxRss;
    const met = most < MEMORY_GOAL;
    if (!met) missed.push("memory");
    console.log(
      `  RSS at most ${mb(most)} from start-up to the end (sampled every 200 ms), ${fmt(sent + BIG)} distinct requests and the rate runs  goal < ${mb(MEMORY_GOAL)}: ${met ? "met" : "MISSED"}` +
        `\n  (peak RSS of the process, loading the store included: ${mb(after.peak)})`,
    );
  } finally {
    for (const c of children) await c.stop();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(missed.length === 0 ? "\nscale: every goal met" : `\nscale: MISSED ${missed.join(", ")}`);
  if (missed.length > 0) process.exitCode = 1;
}

if (process.argv[2] === "--serve") await serve();
else await main();
