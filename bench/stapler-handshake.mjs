// Handshake benchmark of the stapling server (goal: "the staple for a handshake is a lookup of
// bytes already in memory: server CPU per full handshake with stapling stays within 1.05x of the
// same server without an `OCSPRequest` listener").
// Measures the server's CPU time per full TLS handshake (CPU µs / handshakes, not throughput:
// the load generator shares the machine, so handshakes/s says more about the host than about
// the server) for servers serving the same certificate chain and key, measured in one run:
// - stapling: StaplingServer.fromFiles(...) with its default status backend (node:https), no
//   admin endpoint, query_frequency 3600 s (so no OCSP query falls in a measured round), its
//   staple fetched at start-up from an OcspResponder for the bench CA running in this process;
// - plain: a bare node:https server with the same certificate chain (cert file + chain file,
//   what the stapler sends too: checked below), the same key, a short text handler and no
//   `OCSPRequest` listener, so the client's status_request extension is simply not answered;
// - control: a second, identical plain server, the reference for the measurement's own noise;
// - fixed: the plain server plus an `OCSPRequest` listener that staples the stapler's staple
//   from a constant: Node's own price of stapling (the certificate callback into JavaScript, the
//   certificate and issuer handed to the listener, the staple sent), which no stapler written
//   for Node can go below. stapling/fixed is what this stapler adds to it.
// - Each server runs in a child process of its own (this file forked with `--serve`) and answers
//   `process.cpuUsage()` over IPC; the load generator runs in this process.
// - Load: full handshakes only. Each handshake is a new tls.connect (TLS 1.3, Node's default;
//   no `session` given, so no resumption, checked with isSessionReused()), `requestOCSP: true`,
//   verifying the chain against the bench root; the client waits for the first NewSessionTicket
//   (the 'session' event), which a TLS 1.3 server sends only once it has read the client's
//   Finished, so every counted handshake is complete on the server side too; then it destroys
//   the socket. No HTTP request is sent: the figure is the handshake.
// - Simultaneous design: the four servers are loaded at the same time, from the same generator,
//   over the same interval (PER_SERVER handshakes in flight to each, workers interleaved, the
//   first one started rotating per round; they draw from one shared budget of 4 × HANDSHAKES, so
//   all four stay loaded to the end), and each one's CPU over that interval is divided by the
//   handshakes it completed. Why: measuring the servers one after the other (the earlier design,
//   alternating rounds) left the ratio at the mercy of whatever the host did in between (on this
//   2-vCPU VM, with ~10% steal, a round's CPU per handshake drifts by ±15%), so one run's ratio
//   swung 0.9–1.2. Loaded together, the servers see the same host conditions and most of that
//   drift cancels in each round's ratio. All of them in every round, rather than phases of two
//   sharing one plain reference: a reference loaded in every phase stays warmer than a server
//   loaded every other phase, which biased a plain-vs-plain control to ~1.035.
// - Each round gives three ratios over the same interval: stapling/plain, the measure,
//   fixed/plain, Node's floor, and control/plain, two identical servers, whose spread around 1.000 is the measurement's own
//   noise floor, to read the main ratio against. A warm-up round first, then ROUNDS rounds.
// - Every handshake to the stapling server must deliver a non-empty staple ('OCSPResponse'),
//   every handshake to a plain one none; the first staple is decoded (successful, status good,
//   the served serial), and the stapler's own metric of stapled handshakes must equal the count;
//   the chains of all four servers must be the same.
// - Prints per-round figures and ratios, the median ratio of each kind, and the verdict: the
//   ratio is the median of the per-round ratios stapling/plain (goal ≤ 1.05), the µs figures on
//   that line those of the round whose ratio is that median (ROUNDS is odd), so that X / Y = R.
//   The ratio is printed with three decimals so that the verdict matches the figure (1.054 is
//   MISSED). Then the control's median ratio plain/plain (its figures from its median round).
// - Absolute figures depend on the host (where the two vCPUs share a physical core, all
//   processes slow down together); the ratios, measured under the same conditions in the same
//   interval, are the figures to compare. On this VM single rounds of the control still spread
//   by about ±10% (with the generator near a full core, the servers share the other vCPU), so a
//   median of 7 rounds is good to a few percent: a main ratio within the control's distance of
//   the goal is not a verdict, compare several runs.
// Run: npx -y pnpm@10 bench:stapler   (about 60 s)
// Profile: node --cpu-prof --cpu-prof-dir=prof bench/stapler-handshake.mjs (the server children
// inherit the flag and write a profile each).
import { fork } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:https";
import { connect, createSecureContext } from "node:tls";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PER_SERVER = 3; // handshakes in flight to each of the four servers loaded together
const HANDSHAKES = 450; // per server and round, on average (4 × HANDSHAKES shared by the four)
const WARMUP_HANDSHAKES = 300;
const ROUNDS = 7; // odd: the median ratio is one round's
const GOAL = 1.05;
const HANDSHAKE_TIMEOUT_MS = 10_000;
if (process.argv[2] === "--serve") await serve(process.argv[3]);
else await main();

/** Child process: run one server and answer CPU-usage queries over IPC. */
async function serve(kind) {
  const files = JSON.parse(process.env.BENCH_FILES);
  let port;
  let stop;
  let stapled = () => undefined;
  if (kind === "plain" || kind === "fixed") {
    const [cert, chain, key] = await Promise.all([
      readFile(files.certFile, "utf8"),
      readFile(files.chainFile, "utf8"),
      readFile(files.keyFile, "utf8"),
    ]);
    const body = `plain node:https server: ${new X509Certificate(cert).subject.replace(/\n/g, ", ")}\n`;
    const server = createServer({ cert: `${cert.trimEnd()}\n${chain}`, key }, (_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(body);
    });
    if (kind === "fixed") {
      // Node's own price of stapling: the same bytes the stapler sends, from a constant.
      const staple = Buffer.from(process.env.BENCH_STAPLE, "base64");
      server.on("OCSPRequest", (_cert, _issuer, callback) => callback(null, staple));
    }
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = server.address().port;
    stop = () => new Promise((resolve) => server.close(resolve));
  } else {
    const { StaplingServer } = await import("../packages/stapler/dist/index.js");
    const stapler = await (await StaplingServer.fromFiles(files)).withAdmin(false).withPolicy({ query_frequency: 3600 }).start();
    const state = stapler.status()[0]?.staple;
    if (state !== "good") {
      await stapler.stop();
      throw new Error(`the stapling server holds no good staple (status: ${state})`);
    }
    port = stapler.port;
    stop = () => stapler.stop();
    // Handshakes that asked for a staple and got one, from the stapler's own metrics.
    stapled = async () => {
      const metric = await stapler.metrics.registry.getSingleMetricAsString("ocsp_staple_requests_total");
      return Number(/^ocsp_staple_requests_total\{stapled="true"\} (\d+)/m.exec(metric)?.[1] ?? 0);
    };
  }
  process.on("message", async (m) => {
    if (m === "cpu") process.send({ cpu: process.cpuUsage() });
    else if (m === "stapled") process.send({ stapled: await stapled() });
    else if (m === "exit") {
      await stop();
      process.exit(0);
    }
  });
  process.send({ port });
}

/** Fork a server child; resolves with its name, port, a CPU-time probe (µs user+system) and a query. */
async function startChild(kind, env, name = kind) {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", kind], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [msg] = await Promise.race([
    once(child, "message"),
    once(child, "exit").then(([code]) => {
      throw new Error(`${name} server child exited (code ${code}) before listening`);
    }),
  ]);
  const ask = async (what) => {
    child.send(what);
    const [m] = await once(child, "message");
    return m[what];
  };
  const cpu = async () => {
    const c = await ask("cpu");
    return c.user + c.system;
  };
  return { kind, name, child, port: msg.port, cpu, ask };
}

/** One full handshake; resolves with what the client saw (with `details`, the chain and protocol too). */
function handshake(port, secureContext, details = false) {
  return new Promise((resolve, reject) => {
    let staple;
    let connected = false;
    const socket = connect({
      port,
      host: "127.0.0.1",
      servername: "localhost",
      secureContext,
      requestOCSP: true,
      session: undefined,
    });
    const timer = setTimeout(() => fail(new Error(`handshake timed out after ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
    const fail = (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on("OCSPResponse", (response) => (staple = response));
    socket.on("secureConnect", () => (connected = true));
    // TLS 1.3: the server sends its tickets once it has read the client's Finished.
    socket.once("session", () => {
      clearTimeout(timer);
      if (!connected) return fail(new Error("session ticket before secureConnect"));
      const seen = {
        staple,
        reused: socket.isSessionReused(),
        ...(details ? { protocol: socket.getProtocol(), chain: peerChain(socket) } : {}),
      };
      socket.destroy();
      resolve(seen);
    });
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed before the handshake completed")));
  });
}

/** Fingerprints of the certificates the server sent, leaf first. */
function peerChain(socket) {
  const out = [];
  for (let c = socket.getPeerCertificate(true); c?.fingerprint256 && !out.includes(c.fingerprint256); c = c.issuerCertificate)
    out.push(c.fingerprint256);
  return out;
}

async function main() {
  const { CertificateAuthority } = await import("../packages/ca/dist/index.js");
  const { OcspResponse, normalizeSerial } = await import("../packages/ocsp/dist/index.js");
  const { OcspResponder } = await import("../packages/responder/dist/index.js");
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (n) => Math.round(n).toLocaleString("en");
  const started = performance.now();

  const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-bench-"));
  const children = [];
  let responder;
  let ca;
  try {
    ca = await CertificateAuthority.init(dir);
    responder = await (await OcspResponder.forCa(ca)).start();
    const leaf = await ca.issueServer({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], ocspUrl: responder.url });
    const files = { certFile: leaf.certFile, keyFile: leaf.keyFile, chainFile: leaf.chainFile };
    const secureContext = createSecureContext({ ca: await readFile(ca.rootFile, "utf8") });
    const env = { BENCH_FILES: JSON.stringify(files) };

    const stapling = await startChild("stapling", env);
    children.push(stapling);
    const plain = await startChild("plain", env);
    children.push(plain);
    const control = await startChild("plain", env, "control");
    children.push(control);
    const stapleNow = (await handshake(stapling.port, secureContext, true)).staple;
    const fixed = await startChild("fixed", { ...env, BENCH_STAPLE: Buffer.from(stapleNow ?? []).toString("base64") }, "fixed");
    children.push(fixed);

    // All serve the same chain; the stapler's staple is a real, good answer for this certificate.
    const probe = {};
    for (const c of children) probe[c.name] = await handshake(c.port, secureContext, true);
    for (const name of ["stapling", "control", "fixed"]) {
      if (probe[name].chain.join() !== probe.plain.chain.join())
        throw new Error(
          `${name} and plain send different chains (${probe[name].chain.length} vs ${probe.plain.chain.length} certificates)`,
        );
    }
    if (!probe.stapling.staple?.length) throw new Error("the stapling server sent no staple");
    for (const name of ["plain", "control"]) if (probe[name].staple?.length) throw new Error(`the ${name} server sent a staple`);
    const decoded = OcspResponse.fromDer(new Uint8Array(probe.stapling.staple));
    const single = decoded.responses[0];
    if (decoded.responseStatus !== 0 || single?.status !== "good" || single.certId.serial !== normalizeSerial(leaf.serial)) {
      throw new Error(
        `unexpected staple: responseStatus ${decoded.responseStatus}, status ${single?.status}, serial ${single?.certId.serial} (served ${leaf.serial})`,
      );
    }
    const stapledBefore = await stapling.ask("stapled");
    console.log(
      `servers: same chain of ${probe.plain.chain.length} certificates (${leaf.certificate.publicKey.algorithm.name}), ${probe.plain.protocol}; ` +
        `staple ${probe.stapling.staple.length} B, successful, status good for serial ${leaf.serial}`,
    );
    console.log(
      `load: full handshakes (new connection each, no resumption, requestOCSP) from the bench process; each server in its own child process; ` +
        `stapling, plain and control (a second plain node:https) loaded simultaneously, ${PER_SERVER} in flight to each, ` +
        `~${fmt(HANDSHAKES)} each per round; 1 warm-up round of ~${fmt(WARMUP_HANDSHAKES)} each, then ${ROUNDS} rounds`,
    );

    // Load all four servers over the same interval, from one shared budget of 4 × count.
    const servers = [stapling, plain, control, fixed];
    let clientStapled = 0;
    const phase = async (count, rotate) => {
      const per = new Map(servers.map((t) => [t, { n: 0, stapled: 0, reused: 0 }]));
      let next = 0;
      const worker = (t) => async () => {
        const seen = per.get(t);
        while (next < servers.length * count) {
          next++;
          const r = await handshake(t.port, secureContext);
          seen.n++;
          if (r.staple?.length) seen.stapled++;
          if (r.reused) seen.reused++;
        }
      };
      // Interleaved, and the first one started changes from round to round.
      const order = servers.map((_, i) => servers[(i + rotate) % servers.length]);
      const workers = [];
      for (let i = 0; i < PER_SERVER; i++) for (const t of order) workers.push(worker(t));
      const cpu0 = await Promise.all(servers.map((t) => t.cpu()));
      const gen0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(workers.map((w) => w()));
      const wallMs = performance.now() - t0;
      const gen = process.cpuUsage(gen0);
      const cpu1 = await Promise.all(servers.map((t) => t.cpu()));
      const out = {
        hps: (servers.length * count) / (wallMs / 1000),
        genCpu: (gen.user + gen.system) / (wallMs * 1000),
        serverCpu: 0,
      };
      servers.forEach((t, i) => {
        const seen = per.get(t);
        const expected = t.kind === "stapling" || t.kind === "fixed" ? seen.n : 0;
        if (seen.n === 0) throw new Error(`${t.name}: no handshake completed`);
        if (seen.stapled !== expected)
          throw new Error(`${t.name}: ${seen.stapled} of ${seen.n} handshakes stapled (expected ${expected})`);
        if (seen.reused !== 0) throw new Error(`${t.name}: ${seen.reused} handshakes resumed a session`);
        if (t.kind === "stapling") clientStapled += seen.stapled;
        out[t.name] = { us: (cpu1[i] - cpu0[i]) / seen.n, n: seen.n };
        out.serverCpu += (cpu1[i] - cpu0[i]) / (wallMs * 1000);
      });
      out.ratio = out.stapling.us / out.plain.us;
      out.controlRatio = out.control.us / out.plain.us;
      out.fixedRatio = out.fixed.us / out.plain.us;
      return out;
    };

    await phase(WARMUP_HANDSHAKES, 0);
    const results = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await phase(HANDSHAKES, i + 1);
      results.push(r);
      const fig = (name) => `${name} ${r[name].us.toFixed(0).padStart(5)} µs (${String(r[name].n).padStart(4)} hs)`;
      console.log(
        `round ${i + 1}: ${fig("stapling")}, ${fig("plain")}, ${fig("control")}, ${fig("fixed")}: ratio stapling/plain ${r.ratio.toFixed(3)}, control/plain ${r.controlRatio.toFixed(3)}, fixed/plain ${r.fixedRatio.toFixed(3)}; ` +
          `${fmt(r.hps)} handshakes/s; CPU servers ${(r.serverCpu * 100).toFixed(0)}%, generator ${(r.genCpu * 100).toFixed(0)}%`,
      );
    }

    const spread = (xs) => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;
    const m = results.map((r) => r.ratio);
    const c = results.map((r) => r.controlRatio);
    console.log(
      `per-round ratios stapling/plain ${m.map((r) => r.toFixed(3)).join(" / ")} (median ${median(m).toFixed(3)}, range ${spread(m)})`,
    );
    console.log(
      `per-round ratios control/plain  ${c.map((r) => r.toFixed(3)).join(" / ")} (median ${median(c).toFixed(3)}, range ${spread(c)})`,
    );
    const f = results.map((r) => r.fixedRatio);
    console.log(
      `per-round ratios fixed/plain    ${f.map((r) => r.toFixed(3)).join(" / ")} (median ${median(f).toFixed(3)}, range ${spread(f)})`,
    );

    const stapledHandshakes = (await stapling.ask("stapled")) - stapledBefore;
    if (stapledHandshakes !== clientStapled)
      throw new Error(`the stapler counted ${stapledHandshakes} stapled handshakes, the client saw ${clientStapled}`);
    console.log(
      `stapler metrics: ${fmt(stapledHandshakes)} stapled handshakes (all of them); total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );

    // The round whose ratio is the median (ROUNDS is odd), so that the figures printed give the ratio.
    const mid = results.find((r) => r.ratio === median(m));
    const ratio = mid.ratio;
    console.log(
      `server CPU per full handshake: stapling ${mid.stapling.us.toFixed(0)} µs vs plain node:https ${mid.plain.us.toFixed(0)} µs: ratio ${ratio.toFixed(3)} (goal ≤ ${GOAL.toFixed(2)}: ${ratio <= GOAL ? "met" : "MISSED"})`,
    );
    const midC = results.find((r) => r.controlRatio === median(c));
    console.log(
      `control, plain vs plain node:https (same intervals, same run): ${midC.control.us.toFixed(0)} µs vs ${midC.plain.us.toFixed(0)} µs: ratio ${midC.controlRatio.toFixed(3)} ` +
        `(median of rounds, range ${spread(c)}: the measurement's own noise floor; ideally 1.000)`,
    );
    console.log(
      `reference, node:https stapling the same bytes from a constant (no stapler): ratio ${median(f).toFixed(3)} to plain (median of rounds, range ${spread(f)}): ` +
        `Node's own price of an OCSPRequest listener and a staple; the stapler adds ${((median(m) / median(f) - 1) * 100).toFixed(1)}% to it`,
    );
  } finally {
    for (const c of children) {
      if (c.child.exitCode !== null) continue;
      c.child.send("exit");
      await once(c.child, "exit").catch(() => {});
    }
    await responder?.stop();
    ca?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
