// Soak of the OCSP responder under every behaviour at once (issue goal: "200 connections mixing
// every behaviour and nonce/no-nonce requests: zero crashes, zero unhandled rejections, every
// answer meant to be well-formed verifies, memory back within 20% of its start after the load").
// - The responder runs in a child process of its own (this file forked with `--serve`, with
//   --expose-gc so its memory is measured after a full collection): one lab CA, one leaf per
//   behaviour (each behaviour set on its serial), and the child counts unhandled rejections and
//   uncaught exceptions (an uncaught exception also ends it: a crash).
// - This process is the load: CONNECTIONS loops, each sending one request at a time on a
//   keep-alive agent, a random certificate each time, half of them with a fresh nonce (RFC 8954:
//   a new signature per request), GET or POST. Every answer is checked against what its
//   behaviour means: a well-formed answer (good, revoked, unknown, delay, drip, the normal half
//   of a flapping behaviour, text/html content type) is verified with verifyOcspResponse against
//   the issuer (signature, CertID, window, nonce echoed) for one answer in VERIFY_EVERY, and
//   decoded for the rest; an error answer (tryLater, internalError) has that responseStatus; an
//   HTTP fault has its status; a connection fault (close, reset, truncate) fails the request;
//   a hang is cut by the client after HANG_TIMEOUT_MS (any other answer taking longer than
//   ANSWER_TIMEOUT_MS is wrong); a content flaw decodes as an OCSPResponse. Anything else is a
//   wrong answer.
// - Memory: the child's heap (JS heap, external and array buffers, after gc) before the load
//   (after a warm-up) and after it (once every connection closed); RSS is printed too, but the
//   allocator rarely gives pages back, so the verdict is on the heap.
// - Exit code 1 when any goal is missed, so CI (`.ci/run`, 10 s) fails on it.
// Run: npx -y pnpm@10 bench:soak   (OCSP_LAB_SOAK_SECONDS=60 by default; CI runs 10)
import { fork } from "node:child_process";
import { once } from "node:events";
import { Agent, request as httpRequest } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SECONDS = Number(process.env.OCSP_LAB_SOAK_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.OCSP_LAB_SOAK_CONNECTIONS ?? 200);
/** A hang never answers: the client gives up on it after this long (a stapler's response_timeout). */
const HANG_TIMEOUT_MS = 1000;
/** Any other answer slower than this is wrong (the load queues requests: answers take a while). */
const ANSWER_TIMEOUT_MS = 10_000;
/** Verify one well-formed answer in this many (verification costs the generator ~1 ms). */
const VERIFY_EVERY = 8;
/** Distinct nonce requests per certificate (each is a new signature whatever its reuse). */
const NONCES_PER_CERT = 32;
const MEMORY_GOAL = 0.2;

/**
 * Every behaviour, one certificate each (and one per content flaw, added from CONTENT_FLAWS): [name, what the answer must be, behaviour (or a CA
 * revocation)]. `expect` is one of: verify:<status>, responseStatus:<name>, http:<code>,
 * network (the connection fails), timeout (no answer), decodes (an OCSPResponse, flawed on
 * purpose), undecodable (a body that is no OCSPResponse), flapping (verify:good or timeout).
 */
const one = (action) => ({ steps: [{ actions: [action] }] });
const BEHAVIOURS = [
  ["good", "verify:good", undefined],
  ["good-2", "verify:good", undefined],
  ["revoked", "verify:revoked", "revoke"],
  ["unknown", "verify:unknown", one({ kind: "status", status: "unknown" })],
  ["status-revoked", "verify:revoked", one({ kind: "status", status: "revoked", reason: "keyCompromise" })],
  ["tryLater", "responseStatus:tryLater", one({ kind: "responseStatus", responseStatus: "tryLater" })],
  ["internalError", "responseStatus:internalError", one({ kind: "responseStatus", responseStatus: "internalError" })],
  ["delay", "verify:good", one({ kind: "delay", ms: 50 })],
  ["drip", "verify:good", one({ kind: "drip", chunkBytes: 256, chunkDelayMs: 5 })],
  ["hang", "timeout", one({ kind: "hang" })],
  ["close", "network", one({ kind: "close" })],
  ["reset", "network", one({ kind: "reset" })],
  ["truncate", "network", one({ kind: "truncate" })],
  ["http-500", "http:500", one({ kind: "http", status: 500 })],
  ["http-503", "http:503", one({ kind: "http", status: 503 })],
  ["wrong-content-type", "verify:good", one({ kind: "wrong-content-type" })],
  ["empty-body", "undecodable", one({ kind: "empty-body" })],
  ["garbage-body", "undecodable", one({ kind: "garbage-body" })],
  [
    "flapping",
    "flapping",
    {
      steps: [
        { actions: [{ kind: "hang" }], count: 1 },
        { actions: [{ kind: "normal" }], count: 1 },
      ],
      repeat: true,
    },
  ],
];

if (process.argv[2] === "--serve") await serve();
else await main();

/** Child: the responder over the CA in BENCH_CA_DIR, behaviours from BENCH_BEHAVIOURS. */
async function serve() {
  let rejections = 0;
  process.on("unhandledRejection", (err) => {
    rejections += 1;
    process.stderr.write(`soak: unhandled rejection in the responder: ${err?.stack ?? err}\n`);
  });
  const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
  const { OcspResponder } = await import("../packages/responder/dist/index.js");
  const ca = await CertificateAuthority.open(process.env.BENCH_CA_DIR);
  const responder = await (await OcspResponder.forCa(ca)).start();
  for (const [serial, behaviour] of JSON.parse(process.env.BENCH_BEHAVIOURS)) {
    responder.setBehaviour({ kind: "serial", serial }, behaviour);
  }
  process.on("message", (m) => {
    if (m === "memory") {
      globalThis.gc?.();
      const mem = process.memoryUsage();
      process.send({ memory: { heap: mem.heapUsed + mem.external, rss: mem.rss }, rejections });
    } else if (m === "exit") responder.stop().then(() => process.exit(0));
  });
  process.send({ port: responder.port });
}

async function main() {
  const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
  const { OCSPResponseStatus, OcspResponse, buildOcspRequest, toPkiCertificate, verifyOcspResponse } = await import(
    "../packages/ocsp/dist/index.js"
  );
  const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-soak-"));
  let child;
  try {
    const ca = await CertificateAuthority.init(join(dir, "ca"));
    const issuerPki = toPkiCertificate(ca.root.certificate);
    const certs = [];
    const behaviours = [];
    const { CONTENT_FLAWS } = await import("../packages/responder/dist/index.js");
    const all = [...BEHAVIOURS, ...CONTENT_FLAWS.map((flaw) => [`flaw ${flaw}`, "decodes", one({ kind: "content", flaw })])];
    for (const [name, expect, behaviour] of all) {
      const leaf = await ca.issueServer({ ocspUrl: "http://127.0.0.1/" });
      if (behaviour === "revoke") await ca.revoke(leaf.serial, { reason: 1 });
      else if (behaviour) behaviours.push([leaf.serial, behaviour]);
      const pki = toPkiCertificate(leaf.certificate);
      const plain = (await buildOcspRequest({ certificate: pki, issuer: issuerPki })).der;
      const nonced = [];
      for (let i = 0; i < NONCES_PER_CERT; i++)
        nonced.push(await buildOcspRequest({ certificate: pki, issuer: issuerPki, nonce: true }));
      certs.push({ name, expect, leaf, plain, nonced, counts: { total: 0, wrong: 0, verified: 0 } });
    }

    child = fork(fileURLToPath(import.meta.url), ["--serve"], {
      env: { ...process.env, BENCH_CA_DIR: join(dir, "ca"), BENCH_BEHAVIOURS: JSON.stringify(behaviours) },
      execArgv: ["--expose-gc"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let crashed;
    child.on("exit", (code, signal) => {
      crashed ??= `the responder exited (code ${code}, signal ${signal})`;
    });
    const [{ port }] = await once(child, "message");
    const probe = async () => {
      child.send("memory");
      const [m] = await once(child, "message");
      return m;
    };

    const wrong = [];
    // OCSP_LAB_SOAK_ONLY=name,name: load those behaviours only (to look at one).
    const only = process.env.OCSP_LAB_SOAK_ONLY
      ? certs.filter((c) => process.env.OCSP_LAB_SOAK_ONLY.split(",").includes(c.name))
      : undefined;
    /** One request; resolves with what came back (never rejects). */
    const send = (agent, cert, nonce) =>
      new Promise((resolve) => {
        const req = nonce ? cert.nonced[Math.floor(Math.random() * cert.nonced.length)] : { der: cert.plain };
        const get = Math.random() < 0.5 && !nonce;
        const path = get ? `/${encodeURIComponent(Buffer.from(req.der).toString("base64"))}` : "/";
        const r = httpRequest(
          {
            host: "127.0.0.1",
            port,
            path,
            method: get ? "GET" : "POST",
            agent,
            headers: get ? {} : { "content-type": "application/ocsp-request", "content-length": req.der.length },
          },
          (res) => {
            const chunks = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () =>
              resolve({ status: res.statusCode, body: new Uint8Array(Buffer.concat(chunks)), nonce: req.nonce }),
            );
            res.on("error", (err) => resolve({ error: err.code ?? err.message }));
            res.on("aborted", () => resolve({ error: "aborted" }));
          },
        );
        r.setTimeout(cert.expect === "timeout" || cert.expect === "flapping" ? HANG_TIMEOUT_MS : ANSWER_TIMEOUT_MS, () => {
          r.destroy();
          resolve({ timeout: true });
        });
        r.on("error", (err) => resolve({ error: err.code ?? err.message }));
        if (!get) r.end(Buffer.from(req.der));
        else r.end();
      });

    /** Whether `got` is what `cert`'s behaviour means (verifying when `verify`). */
    const judge = async (cert, got, verify) => {
      const [kind, arg] = cert.expect.split(":");
      const decode = () => {
        try {
          return OcspResponse.fromDer(got.body);
        } catch {
          return undefined;
        }
      };
      const wellFormed = async (status) => {
        if (got.status !== 200) return `HTTP ${got.status ?? got.error ?? "timeout"}`;
        if (!verify) return decode()?.responses?.[0]?.status === status ? undefined : "not the expected status";
        cert.counts.verified += 1;
        try {
          const v = await verifyOcspResponse(got.body, {
            certificate: cert.leaf.certificate,
            issuer: ca.root.certificate,
            now: new Date(),
            ...(got.nonce ? { nonce: got.nonce } : {}),
          });
          return v.status === status ? undefined : `verified ${v.status}, wanted ${status}`;
        } catch (err) {
          return `did not verify: ${err.message}`;
        }
      };
      switch (kind) {
        case "verify":
          return wellFormed(arg);
        case "flapping":
          return got.timeout ? undefined : wellFormed("good");
        case "responseStatus": {
          if (got.status !== 200) return `HTTP ${got.status ?? got.error ?? "timeout"}`;
          const status = decode()?.responseStatus;
          return status === OCSPResponseStatus[arg] ? undefined : `responseStatus ${status}, wanted ${arg}`;
        }
        case "http":
          return got.status === Number(arg) ? undefined : `HTTP ${got.status ?? got.error ?? "timeout"}, wanted ${arg}`;
        case "network":
          return got.error !== undefined || got.timeout ? undefined : `answered HTTP ${got.status}`;
        case "timeout":
          return got.timeout ? undefined : `answered ${got.status ?? got.error}`;
        case "decodes":
          return got.status === 200 && decode() ? undefined : "not an OCSPResponse";
        case "undecodable":
          return got.status === 200 && !decode() ? undefined : "decoded, or not HTTP 200";
      }
      return `unknown expectation ${cert.expect}`;
    };

    const loop = async (until, agent, counter) => {
      while (performance.now() < until && !crashed) {
        const pool = only ?? certs;
        const cert = pool[Math.floor(Math.random() * pool.length)];
        const nonce = Math.random() < 0.5;
        const got = await send(agent, cert, nonce);
        const verify = counter.n++ % VERIFY_EVERY === 0;
        const problem = await judge(cert, got, verify);
        cert.counts.total += 1;
        if (problem) {
          cert.counts.wrong += 1;
          if (wrong.length < 10 || (cert.name === "good" && wrong.length < 14))
            wrong.push(`${cert.name}${nonce ? " (nonce)" : ""}: ${problem}`);
        }
      }
    };
    const run = async (seconds, connections) => {
      const agent = new Agent({ keepAlive: true, maxSockets: connections });
      const counter = { n: 0 };
      const until = performance.now() + seconds * 1000;
      await Promise.all(Array.from({ length: connections }, () => loop(until, agent, counter)));
      agent.destroy();
    };

    // Warm-up: every certificate answered, signers loaded, caches filled; then the baseline.
    await run(2, 8);
    const before = await probe();
    const started = performance.now();
    for (const c of certs) c.counts = { total: 0, wrong: 0, verified: 0 };
    wrong.length = 0;
    await run(SECONDS, CONNECTIONS);
    const elapsed = (performance.now() - started) / 1000;
    const after = crashed ? undefined : await probe();

    const total = certs.reduce((n, c) => n + c.counts.total, 0);
    const wrongCount = certs.reduce((n, c) => n + c.counts.wrong, 0);
    const verified = certs.reduce((n, c) => n + c.counts.verified, 0);
    console.log(
      `soak: ${SECONDS} s at ${CONNECTIONS} connections, ${certs.length} behaviours (one certificate each), half the requests with a nonce`,
    );
    for (const c of certs) {
      console.log(
        `  ${c.name.padEnd(20)} ${String(c.counts.total).padStart(7)} requests  ${String(c.counts.wrong).padStart(4)} wrong  (${c.expect})`,
      );
    }
    console.log(
      `requests: ${total} in ${elapsed.toFixed(1)} s (${Math.round(total / elapsed)} req/s), ${verified} verified with verifyOcspResponse, ${wrongCount} wrong`,
    );
    for (const w of wrong) console.log(`  wrong: ${w}`);
    const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
    const verdicts = [];
    verdicts.push(["no crash", !crashed, crashed ?? "the responder ran throughout"]);
    const rejections = after?.rejections ?? Number.NaN;
    verdicts.push(["no unhandled rejection", rejections === 0, `${rejections} unhandled rejections`]);
    verdicts.push(["every answer as its behaviour means", wrongCount === 0 && total > 0, `${wrongCount} of ${total} wrong`]);
    if (after) {
      const growth = after.memory.heap / before.memory.heap - 1;
      verdicts.push([
        "memory back within 20%",
        growth <= MEMORY_GOAL,
        `heap ${mb(before.memory.heap)} before, ${mb(after.memory.heap)} after (${(growth * 100).toFixed(1)}%); rss ${mb(before.memory.rss)} → ${mb(after.memory.rss)}`,
      ]);
    }
    for (const [goal, met, figure] of verdicts) console.log(`${met ? "met   " : "MISSED"}  ${goal}: ${figure}`);
    process.exitCode = verdicts.every(([, met]) => met) ? 0 : 1;
  } finally {
    if (child && child.exitCode === null) {
      child.send("exit");
      await once(child, "exit");
    }
    await rm(dir, { recursive: true, force: true });
  }
}
