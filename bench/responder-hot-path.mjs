// Hot-path benchmark of the OCSP responder (goal: "at least 0.8× of a bare node:http server").
// Measures keep-alive throughput of a pre-signed answer looked up and written (a nonce-less,
// single-CertID request, answered from the cache after the first one), for POST (DER body,
// application/ocsp-request) and GET (`/` + url-encoded base64 DER), against a baseline measured
// in the same run: a bare node:http server returning a fixed body of the same byte length with
// the same response headers as the responder's answer for that method (Content-Type,
// Cache-Control and, for GET, the RFC 5019 caching headers), so the load generator parses the
// same bytes from both; it reads the request body first, as any OCSP server must.
// - Each server runs in a child process of its own (this file forked with `--serve`), the
//   load generator (autocannon, keep-alive, pipelining 1) runs in this process, so on a 2-core
//   machine the generator and the server each get a core.
// - Per method: a warm-up of each server, then baseline and responder alternately, ROUNDS runs
//   each; prints the median req/s of each and the ratio responder/baseline (goal ≥ 0.80), with
//   the non-2xx/error counts and the CPU use of the server child and of the generator (a server
//   near 100% is the bottleneck; a generator near 100% caps both figures).
// - Before measuring, one answer per method is fetched and decoded with OcspResponse.fromDer:
//   the bench measures real, successful OCSP answers.
// - Absolute figures depend on the host: where the two vCPUs share one physical core (two busy
//   processes each get about half), generator and server compete anyway; the ratio, measured
//   under the same conditions in the same run, is the figure to compare.
// Run: npx -y pnpm@10 bench:responder   (about 75 s)
// Profile: node --cpu-prof --cpu-prof-dir=prof bench/responder-hot-path.mjs (the server children
// inherit the flag and write a profile each).
import { fork } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CONNECTIONS = 50;
const DURATION_S = 5;
const WARMUP_S = 1.5;
const ROUNDS = 3;
const GOAL = 0.8;
const OCSP_RESPONSE_TYPE = "application/ocsp-response";

if (process.argv[2] === "--serve") await serve(process.argv[3]);
else await main();

/** Child process: run one server and answer CPU-usage queries over IPC. */
async function serve(kind) {
  let port;
  if (kind === "bare") {
    const body = Buffer.from(process.env.BENCH_BODY_B64, "base64");
    // The responder's own header set per method, captured from its answers by the parent.
    const byMethod = JSON.parse(process.env.BENCH_HEADERS);
    for (const h of Object.values(byMethod)) h["Content-Length"] = body.length;
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200, byMethod[req.method]).end(body));
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
    if (m === "cpu") process.send({ cpu: process.cpuUsage() });
    else if (m === "exit") process.exit(0);
  });
  process.send({ port });
}

/** Fork a server child; resolves with its port and a CPU-time probe (µs user+system). */
async function startChild(kind, env) {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", kind], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [msg] = await once(child, "message");
  const cpu = async () => {
    child.send("cpu");
    const [m] = await once(child, "message");
    return m.cpu.user + m.cpu.system;
  };
  return { kind, child, port: msg.port, url: `http://127.0.0.1:${msg.port}`, cpu };
}

async function main() {
  const { default: autocannon } = await import("autocannon");
  const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
  const { OcspResponse, buildOcspRequest, toPkiCertificate } = await import("../packages/ocsp/dist/index.js");
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (n) => Math.round(n).toLocaleString("en");
  const started = performance.now();

  const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-bench-"));
  const children = [];
  try {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer();
    const { der } = await buildOcspRequest({
      certificate: toPkiCertificate(leaf.certificate),
      issuer: toPkiCertificate(ca.root.certificate),
    });
    ca.close();
    const reqBody = Buffer.from(der);
    const getPath = `/${encodeURIComponent(reqBody.toString("base64"))}`;

    const responder = await startChild("responder", { BENCH_CA_DIR: dir });
    children.push(responder);

    // One real answer per method, decoded: the benchmark measures successful OCSP responses.
    const methods = {
      POST: { method: "POST", path: "/", headers: { "content-type": "application/ocsp-request" }, body: reqBody },
      GET: { method: "GET", path: getPath, headers: {} },
    };
    const sizes = {};
    const headers = {};
    for (const [name, m] of Object.entries(methods)) {
      const res = await fetch(responder.url + m.path, {
        method: m.method,
        headers: m.headers,
        ...(m.body ? { body: m.body } : {}),
      });
      const body = new Uint8Array(await res.arrayBuffer());
      const decoded = OcspResponse.fromDer(body);
      const status = decoded.responses[0]?.status;
      if (
        res.status !== 200 ||
        res.headers.get("content-type") !== OCSP_RESPONSE_TYPE ||
        decoded.responseStatus !== 0 ||
        status !== "good"
      ) {
        throw new Error(
          `${name}: HTTP ${res.status} ${res.headers.get("content-type")}, responseStatus ${decoded.responseStatus}, cert status ${status}`,
        );
      }
      sizes[name] = body;
      // What node:http adds itself (Date, Connection, Keep-Alive, Content-Length) is left to the baseline's node:http.
      headers[name] = Object.fromEntries(
        [...res.headers].filter(([k]) => !["date", "connection", "keep-alive", "content-length"].includes(k)),
      );
    }
    if (Buffer.compare(Buffer.from(sizes.POST), Buffer.from(sizes.GET)) !== 0)
      throw new Error("POST and GET answers differ: the second was not served from the cache");
    const answer = sizes.POST;
    const bare = await startChild("bare", {
      BENCH_BODY_B64: Buffer.from(answer).toString("base64"),
      BENCH_HEADERS: JSON.stringify(headers),
    });
    children.push(bare);

    for (const [name, h] of Object.entries(headers))
      console.log(`${name} answer headers (both servers): ${Object.keys(h).join(", ")}`);
    console.log(
      `request ${reqBody.length} B (GET path ${getPath.length} chars); answer ${answer.length} B, successful, status good, pre-signed after the first request`,
    );
    console.log(
      `load: autocannon ${CONNECTIONS} keep-alive connections, pipelining 1, in the bench process; each server in its own child process; ` +
        `${WARMUP_S} s warm-up, then ${ROUNDS} × ${DURATION_S} s per target, baseline and responder alternated`,
    );

    const run = async (target, m, seconds) => {
      const cpu0 = await target.cpu();
      const gen0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await autocannon({
        url: target.url + m.path,
        method: m.method,
        headers: m.headers,
        ...(m.body ? { body: m.body } : {}),
        connections: CONNECTIONS,
        pipelining: 1,
        duration: seconds,
      });
      const wall = (performance.now() - t0) * 1000;
      const gen = process.cpuUsage(gen0);
      const cpu1 = await target.cpu();
      return {
        rps: r.requests.average,
        total: r.requests.total,
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        serverCpu: (cpu1 - cpu0) / wall,
        genCpu: (gen.user + gen.system) / wall,
      };
    };

    for (const [name, m] of Object.entries(methods)) {
      await run(bare, m, WARMUP_S);
      await run(responder, m, WARMUP_S);
      const results = { bare: [], responder: [] };
      for (let i = 0; i < ROUNDS; i++) {
        results.bare.push(await run(bare, m, DURATION_S));
        results.responder.push(await run(responder, m, DURATION_S));
      }
      const summary = (rs) => ({
        rps: median(rs.map((r) => r.rps)),
        runs: rs.map((r) => fmt(r.rps)).join(" / "),
        total: rs.reduce((s, r) => s + r.total, 0),
        bad: rs.reduce((s, r) => s + r.non2xx, 0),
        errors: rs.reduce((s, r) => s + r.errors + r.timeouts, 0),
        serverCpu: median(rs.map((r) => r.serverCpu)),
        genCpu: median(rs.map((r) => r.genCpu)),
      });
      const b = summary(results.bare);
      const s = summary(results.responder);
      const ratio = s.rps / b.rps;
      const met = ratio >= GOAL && s.bad === 0 && s.errors === 0;
      const pad = name.padEnd(5);
      console.log(
        `${pad} responder ${fmt(s.rps)} req/s vs bare node:http ${fmt(b.rps)} req/s: ratio ${ratio.toFixed(2)} (goal ≥ ${GOAL.toFixed(2)}: ${met ? "met" : "MISSED"})`,
      );
      for (const [label, x] of [
        ["responder", s],
        ["bare", b],
      ]) {
        console.log(
          `      ${label.padEnd(9)} runs ${x.runs} req/s; ${fmt(x.total)} answers, ${x.bad} non-2xx, ${x.errors} errors/timeouts; ` +
            `CPU server ${(x.serverCpu * 100).toFixed(0)}%, generator ${(x.genCpu * 100).toFixed(0)}%`,
        );
      }
    }

    // The hot path really is the cache: hits counted by the responder's own metrics.
    const metrics = await (await fetch(`${responder.url}/metrics`)).text();
    const hits = Number(/^ocsp_response_cache_hits_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const answered = [...metrics.matchAll(/^ocsp_requests_total\{[^}]*\} (\d+)/gm)].reduce((sum, x) => sum + Number(x[1]), 0);
    console.log(
      `responder metrics: ${fmt(answered)} OCSP requests answered, ${fmt(hits)} from the pre-signed cache; total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  } finally {
    for (const c of children) {
      c.child.send("exit");
      await once(c.child, "exit").catch(() => {});
    }
    await rm(dir, { recursive: true, force: true });
  }
}
