// ocsp-lab's responder against `openssl ocsp -port` and a bare node:http server (issue 11,
// speed goals 1 and 2), on 127.0.0.1, for an ECDSA P-256 and an RSA-2048 CA, each with its
// delegated OCSP signer: `openssl ocsp` gets the same CA (its `openssl ca` index, from
// toOpensslIndex), the same delegated signer certificate and key, and the same request bytes.
//
// Per signer, per mode (keep-alive / a new connection per request, each with and without a new
// nonce per request), one figure per target: req/s, p50, p99 and the ratios. Without a nonce
// the responder answers from its pre-signed cache (RFC 5019); with one it signs each answer. The
// bare node:http server answers every request with a fixed body of the responder's answer size
// and headers (no nonce rows: it has nothing to sign). `openssl ocsp` is started afresh before
// each run (it spins at 100% CPU once a client closes a connection it has not answered, which
// every load generator does when its time is up) and is skipped with a message where absent.
// It answers HTTP/1.0 and closes each connection after its answer, so its keep-alive figures are
// new connections as well.
//
// Nonce per request: a pool of BENCH_POOL (default 1000) request DERs with distinct 32-byte
// nonces, cycled by the generator. Before each run a sample of answers (BENCH_SAMPLE, default 5)
// is fetched from the target and checked with `openssl ocsp -reqin … -respin … -VAfile <signer>`:
// signature good, nonce echoed, status good.
//
// Load: wrk (one thread, BENCH_CONNECTIONS connections, default 50, a Lua script cycling the
// pool; `Connection: close` for a new connection per request), or without wrk a node:http
// generator in this process (BENCH_GENERATOR=node forces it; it costs this process a core).
// Each server runs in its own process. Per signer and mode: ocsp-lab and bare are warmed up
// (BENCH_WARMUP_S, default 1), then BENCH_ROUNDS rounds (default 3) run each target in turn for
// BENCH_DURATION_S (default 5), so a change in what else runs on the host hits every target
// alike; a figure is the median of its rounds (each round's req/s is printed too). The CPU use of
// the server process over a run (all its threads; 100% = one core) is printed with each figure.
//
// Verdicts: goal 1: with a new nonce per request, keep-alive and new connection, ocsp-lab ≥
// 1.0× `openssl ocsp`'s req/s for both signers, and its p99 < 2× openssl's; goal 2: cached
// answers ≥ 0.8× bare node:http keep-alive, ≥ 0.9× bare node:http with a new connection per
// request. Absolute figures depend on the host (and on what else runs on it); the ratios,
// measured in the same run, are what the goals are about.
//
// Run: npx -y pnpm@10 bench:responder-vs-openssl   (about 6 minutes with the defaults)
// Env: BENCH_DURATION_S, BENCH_WARMUP_S, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_POOL, BENCH_SAMPLE,
//      BENCH_SIGNERS (default "ecdsa-p256,rsa-2048"), BENCH_GENERATOR (wrk | node).
import { fork } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkWithOpenssl, cpuMs, hasCommand, load, post, startOpensslOcsp, writePool } from "./lib/load.mjs";

const num = (name, fallback) => (process.env[name] !== undefined ? Number(process.env[name]) : fallback);
const DURATION_S = num("BENCH_DURATION_S", 5);
const WARMUP_S = num("BENCH_WARMUP_S", 1);
const CONNECTIONS = num("BENCH_CONNECTIONS", 50);
const POOL = num("BENCH_POOL", 1000);
const SAMPLE = num("BENCH_SAMPLE", 5);
const ROUNDS = num("BENCH_ROUNDS", 3);
const SIGNERS = (process.env.BENCH_SIGNERS ?? "ecdsa-p256,rsa-2048").split(",").map((s) => s.trim());
const GOAL1_RATE = 1.0;
const GOAL1_P99 = 2.0;
const GOAL2_KEEPALIVE = 0.8;
const GOAL2_NEWCONN = 0.9;

/** Child process: one server (the responder for a CA folder, or the bare baseline); reports its port over IPC. */
async function serve(kind) {
  let port;
  if (kind === "bare") {
    const body = Buffer.from(process.env.BENCH_BODY_B64, "base64");
    const headers = { ...JSON.parse(process.env.BENCH_HEADERS), "Content-Length": body.length };
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200, headers).end(body));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = server.address().port;
  } else {
    const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
    const { OcspResponder } = await import("../packages/responder/dist/index.js");
    const ca = await CertificateAuthority.open(process.env.BENCH_CA_DIR);
    const responder = await (await OcspResponder.forCa(ca)).start();
    port = responder.port;
  }
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
  process.send({ port });
}

/** Fork a server child; resolves with { pid, url, stop() }. */
async function startChild(kind, env) {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", kind], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [msg] = await once(child, "message");
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${msg.port}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.send("exit");
      await once(child, "exit");
    },
  };
}

const fmt = (n) => Math.round(n).toLocaleString("en");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

async function main() {
  const { CertificateAuthority, toOpensslIndex } = await import("../packages/ca/dist/index.js");
  const { OcspResponse, buildOcspRequest, toPkiCertificate } = await import("../packages/ocsp/dist/index.js");
  const started = performance.now();
  const generator = process.env.BENCH_GENERATOR ?? (hasCommand("wrk") ? "wrk" : "node");
  if (generator === "wrk" && !hasCommand("wrk"))
    throw new Error("BENCH_GENERATOR=wrk but wrk is not installed (apt-get install wrk)");
  const withOpenssl = hasCommand("openssl");
  const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-vs-openssl-"));
  const stops = new Set();
  const track = (target) => {
    stops.add(target);
    return target;
  };
  const stop = async (target) => {
    stops.delete(target);
    await target.stop();
  };

  console.log(
    `load: ${generator === "wrk" ? "wrk -t1" : "node:http generator in the bench process"}, ${CONNECTIONS} connections, ` +
      `${WARMUP_S} s warm-up (ocsp-lab, bare), then ${ROUNDS} round(s) of ${DURATION_S} s per target, targets alternated, median per figure; ` +
      `nonce pool ${POOL} requests; ` +
      `${SAMPLE} answers per target and mode checked with openssl ocsp -VAfile`,
  );
  if (generator === "node")
    console.log(
      "note: the node:http generator runs in this process and needs about a core of its own, which the servers then lack on a " +
        "2-core host (figures drop, fast targets most); install wrk (apt-get install wrk) for the figures the goals are about",
    );
  if (!withOpenssl) console.log("openssl not found: the `openssl ocsp` figures and goal 1 are skipped (apt-get install openssl)");

  const figures = []; // { signer, mode, nonce, target, rps, p50Ms, p99Ms, ... }
  try {
    for (const keyType of SIGNERS) {
      const caDir = join(dir, keyType);
      const work = join(dir, `${keyType}-work`);
      await mkdir(work, { recursive: true });
      const ca = await CertificateAuthority.init(caDir, { keyType });
      const leaf = await ca.issueServer();
      const index = join(work, "index.txt");
      await writeFile(
        index,
        toOpensslIndex(ca.list().map((r) => ({ serial: r.serial, notAfter: new Date(r.notAfter), subject: r.subject }))),
      );
      const signerKey = join(caDir, "ocsp-signer.key");
      const files = { caFile: ca.rootFile, signerCert: ca.ocspSignerFile, signerKey, certFile: leaf.certFile };
      const certificate = toPkiCertificate(leaf.certificate);
      const issuer = toPkiCertificate(ca.root.certificate);
      const plain = (await buildOcspRequest({ certificate, issuer })).der;
      const nonced = [];
      for (let i = 0; i < POOL; i++) nonced.push((await buildOcspRequest({ certificate, issuer, nonce: true })).der);
      ca.close();
      const pools = {
        false: await writePool(work, "plain", [plain]),
        true: await writePool(work, "nonce", nonced),
      };

      const responder = track(await startChild("responder", { BENCH_CA_DIR: caDir }));
      // The bare baseline answers with the responder's own answer: its size and headers.
      const sampleAnswer = await post(responder.url, plain);
      const decoded = OcspResponse.fromDer(new Uint8Array(sampleAnswer.body));
      if (sampleAnswer.status !== 200 || decoded.responseStatus !== 0 || decoded.responses[0]?.status !== "good")
        throw new Error(`${keyType}: the responder's answer is not a successful good: HTTP ${sampleAnswer.status}`);
      const headers = Object.fromEntries(
        Object.entries(sampleAnswer.headers).filter(([k]) => !["date", "connection", "keep-alive", "content-length"].includes(k)),
      );
      const bare = track(
        await startChild("bare", {
          BENCH_BODY_B64: sampleAnswer.body.toString("base64"),
          BENCH_HEADERS: JSON.stringify(headers),
        }),
      );
      console.log(
        `\n${keyType}: request ${plain.length} B (${nonced[0].length} B with a nonce); ocsp-lab's answer ${sampleAnswer.body.length} B, ` +
          `bare node:http answers ${sampleAnswer.body.length} B with headers ${Object.keys(headers).join(", ")}`,
      );

      /** Check a sample of answers of `url` with openssl; throws on the first bad one. */
      const checkSample = async (name, url, nonce, newConnection) => {
        if (!withOpenssl) return;
        const bodies = nonce ? nonced.slice(0, SAMPLE) : [plain];
        for (const [i, body] of bodies.entries()) {
          const answer = await post(url, body, { newConnection });
          const failed = await checkWithOpenssl({
            dir: work,
            tag: `${name}-${i}`,
            requestDer: body,
            answerDer: answer.body,
            ...files,
          });
          if (failed) throw new Error(`${keyType} ${name}: answer ${i} fails openssl's check: ${failed}`);
        }
      };

      for (const newConnection of [false, true]) {
        for (const nonce of [false, true]) {
          const mode = `${newConnection ? "new connection" : "keep-alive"}, ${nonce ? "new nonce per request" : "no nonce"}`;
          const targets = [
            ["ocsp-lab", responder],
            ...(withOpenssl ? [["openssl ocsp", undefined]] : []),
            ...(nonce ? [] : [["bare node:http", bare]]),
          ];
          const openssl = () => startOpensslOcsp({ index, caFile: files.caFile, signerCert: files.signerCert, signerKey });
          // Each target's answers checked once, and ocsp-lab and bare warmed up, before the rounds.
          for (const [name, fixed] of targets) {
            if (name === "openssl ocsp") {
              const checked = track(await openssl());
              await checkSample("openssl-ocsp", checked.url, nonce, newConnection);
              await stop(checked);
            } else {
              if (name === "ocsp-lab") await checkSample("ocsp-lab", fixed.url, nonce, newConnection);
              if (WARMUP_S > 0)
                await load({
                  generator,
                  url: fixed.url,
                  pool: pools[nonce],
                  connections: CONNECTIONS,
                  seconds: WARMUP_S,
                  newConnection,
                });
            }
          }
          const runs = new Map(targets.map(([name]) => [name, []]));
          // Rounds alternate the targets, so a change in what else runs on the host hits them alike.
          for (let round = 0; round < ROUNDS; round++) {
            for (const [name, fixed] of targets) {
              // openssl ocsp afresh for every run: nothing may have touched it.
              const target = name === "openssl ocsp" ? track(await openssl()) : fixed;
              const cpu0 = cpuMs(target.pid);
              const t0 = performance.now();
              const r = await load({
                generator,
                url: target.url,
                pool: pools[nonce],
                connections: CONNECTIONS,
                seconds: DURATION_S,
                newConnection,
              });
              const wallMs = performance.now() - t0;
              const cpu1 = cpuMs(target.pid);
              if (name === "openssl ocsp") await stop(target);
              runs
                .get(name)
                .push({ ...r, serverCpu: cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / wallMs : undefined });
            }
          }
          for (const [name] of targets) {
            const rs = runs.get(name);
            const figure = {
              signer: keyType,
              newConnection,
              nonce,
              mode,
              target: name,
              rps: median(rs.map((r) => r.rps)),
              p50Ms: median(rs.map((r) => r.p50Ms)),
              p99Ms: median(rs.map((r) => r.p99Ms)),
              errors: rs.reduce((n, r) => n + r.errors, 0),
              non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
              serverCpu: rs.some((r) => r.serverCpu === undefined) ? undefined : median(rs.map((r) => r.serverCpu)),
              runs: rs.map((r) => fmt(r.rps)).join(" / "),
            };
            figures.push(figure);
          }
          for (const [name] of targets) printFigure(find(figures, figures.at(-1), name), figures);
        }
      }
      await stop(responder);
      await stop(bare);
    }
  } finally {
    for (const t of stops) await t.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
  printVerdicts(figures, withOpenssl);
  console.log(`\ntotal bench time ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

function find(figures, f, target) {
  return figures.find(
    (x) => x.signer === f.signer && x.newConnection === f.newConnection && x.nonce === f.nonce && x.target === target,
  );
}

function printFigure(f, figures) {
  const ratios = [];
  if (f.target === "ocsp-lab") {
    const o = find(figures, f, "openssl ocsp");
    const b = find(figures, f, "bare node:http");
    if (o) ratios.push(`${(f.rps / o.rps).toFixed(2)}× openssl ocsp (p99 ${(f.p99Ms / o.p99Ms).toFixed(2)}×)`);
    if (b) ratios.push(`${(f.rps / b.rps).toFixed(2)}× bare node:http`);
  } else {
    const lab = find(figures, f, "ocsp-lab");
    if (lab) ratios.push(`ocsp-lab = ${(lab.rps / f.rps).toFixed(2)}× this (p99 ${(lab.p99Ms / f.p99Ms).toFixed(2)}×)`);
  }
  const problems = f.errors + f.non2xx > 0 ? `; ${f.non2xx} non-2xx, ${f.errors} socket errors` : "";
  console.log(
    `${f.signer.padEnd(10)} ${f.mode.padEnd(37)} ${f.target.padEnd(14)} ${fmt(f.rps).padStart(7)} req/s  p50 ${ms(f.p50Ms).padStart(5)} ms  p99 ${ms(f.p99Ms).padStart(5)} ms` +
      `  server CPU ${f.serverCpu === undefined ? "?" : `${Math.round(f.serverCpu * 100)}%`}${ratios.length ? `  ${ratios.join(", ")}` : ""}${problems}` +
      (ROUNDS > 1 ? `  (runs ${f.runs})` : ""),
  );
}

function printVerdicts(figures, withOpenssl) {
  console.log("\nverdicts");
  const signers = [...new Set(figures.map((f) => f.signer))];
  const lab = figures.filter((f) => f.target === "ocsp-lab");
  const clean = (f) => f.errors + f.non2xx === 0;
  if (withOpenssl) {
    const rows = lab
      .filter((f) => f.nonce)
      .map((f) => {
        const o = find(figures, f, "openssl ocsp");
        const rate = f.rps / o.rps;
        const p99 = f.p99Ms / o.p99Ms;
        const ok = rate >= GOAL1_RATE && p99 < GOAL1_P99 && clean(f);
        // Where it is missed, what bounds it: the bare server (nothing to decode or sign, the
        // same connection handling) against openssl's nonce rate leaves a time per request for
        // the OCSP work; ocsp-lab's nonce answers cost their time over its cached ones.
        const bare = figures.find(
          (x) => x.signer === f.signer && x.newConnection === f.newConnection && !x.nonce && x.target === "bare node:http",
        );
        const cached = figures.find(
          (x) => x.signer === f.signer && x.newConnection === f.newConnection && !x.nonce && x.target === "ocsp-lab",
        );
        const why =
          ok || !bare || !cached
            ? undefined
            : `bare node:http answers ${(bare.rps / o.rps).toFixed(2)}× openssl ocsp's nonce rate, which leaves ` +
              `${Math.round(1e6 / o.rps - 1e6 / bare.rps)} µs per request for decoding, signing and encoding to match it; ` +
              `ocsp-lab's nonce answers take ${Math.round(1e6 / f.rps - 1e6 / cached.rps)} µs per request more than its cached ones`;
        return {
          ok,
          text: `${f.signer} ${f.newConnection ? "new connection" : "keep-alive"}: ${rate.toFixed(2)}× req/s, p99 ${p99.toFixed(2)}×`,
          why,
        };
      });
    const met = rows.every((r) => r.ok);
    console.log(
      `goal 1 (new nonce per request ≥ ${GOAL1_RATE.toFixed(1)}× openssl ocsp, p99 < ${GOAL1_P99}×, for ${signers.join(" and ")}): ${met ? "met" : "MISSED"}`,
    );
    for (const r of rows) {
      console.log(`  ${r.ok ? "met   " : "MISSED"} ${r.text}`);
      if (r.why) console.log(`         (${r.why})`);
    }
  } else {
    console.log("goal 1: skipped (no openssl)");
  }
  const rows = lab
    .filter((f) => !f.nonce)
    .map((f) => {
      const b = find(figures, f, "bare node:http");
      const goal = f.newConnection ? GOAL2_NEWCONN : GOAL2_KEEPALIVE;
      const ratio = f.rps / b.rps;
      return {
        ok: ratio >= goal && clean(f),
        text: `${f.signer} ${f.newConnection ? "new connection" : "keep-alive"}: ${ratio.toFixed(2)}× (goal ≥ ${goal.toFixed(1)}×)`,
      };
    });
  console.log(`goal 2 (cached answers against bare node:http): ${rows.every((r) => r.ok) ? "met" : "MISSED"}`);
  for (const r of rows) console.log(`  ${r.ok ? "met   " : "MISSED"} ${r.text}`);
}

if (process.argv[2] === "--serve") await serve(process.argv[3]);
else await main();
