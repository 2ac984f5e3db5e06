// Load generation and target control shared by the responder benches (responder-vs-openssl;
// the scale and soak benches of issue 11 are meant to reuse it): a wrk run with a Lua script
// cycling through a pool of request bodies, a node:http fallback generator with the same
// interface, `openssl ocsp -port` started and stopped as a child process, CPU time of a process
// from /proc, and an answer checked with `openssl ocsp -respin … -VAfile`.
//
// Neither generator probes and closes: wrk's address probe (connect, close) is replaced in its
// script, so it opens its connections and sends; the node generator never aborts a request, it
// stops issuing new ones at the deadline and waits for the answers in flight. (wrk does close
// connections with a request in flight when its duration ends, which is why `openssl ocsp` is
// started afresh before each run.)
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";

/** Whether `command` is on the PATH. */
export function hasCommand(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/** CPU time (user + system, all threads) of process `pid` so far, in ms; undefined without /proc. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of proc(5) (utime, stime), counted from the state field (3).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** Percentile `p` (0–100) of sorted `xs`. */
function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const WRK_SCRIPT = `
-- wrk's own resolve() connects to each address and closes at once to pick one that answers:
-- that probe wedges \`openssl ocsp\` (it spins on a connection closed before its request). Take
-- the address as given instead.
function wrk.resolve(host, service)
  wrk.addrs = { wrk.lookup(host, service)[1] }
end

-- Cycles through the request bodies of a pool file (each: 2-byte big-endian length, then DER).
local pool = {}
local at = 0
function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local headers = { ["Content-Type"] = "application/ocsp-request" }
  if args[2] == "close" then headers["Connection"] = "close" end
  local pos = 1
  while pos <= #data do
    local len = data:byte(pos) * 256 + data:byte(pos + 1)
    pool[#pool + 1] = wrk.format("POST", "/", headers, data:sub(pos + 2, pos + 1 + len))
    pos = pos + 2 + len
  end
  at = math.random(#pool) - 1
end
function request()
  at = at % #pool + 1
  return pool[at]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_JSON {\\"requests\\":%d,\\"durationUs\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50Us\\":%d,\\"p99Us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
`;

/** Write `bodies` as a pool file for the wrk script (and the Lua script next to it); returns their paths. */
export async function writePool(dir, name, bodies) {
  const parts = [];
  for (const b of bodies) {
    if (b.length > 0xffff) throw new Error("request body over 64 KiB");
    parts.push(Buffer.from([b.length >> 8, b.length & 0xff]), Buffer.from(b));
  }
  const pool = join(dir, `${name}.pool`);
  await writeFile(pool, Buffer.concat(parts));
  const script = join(dir, "pool.lua");
  await writeFile(script, WRK_SCRIPT);
  return { pool, script, bodies };
}

/**
 * One load run against `url` (POST /): `connections` concurrent clients for `seconds`, bodies
 * cycled from `pool` (see writePool), keep-alive or a new connection per request (`Connection:
 * close`). Resolves with { rps, p50Ms, p99Ms, requests, errors, non2xx }.
 */
export async function load({ generator, url, pool, connections, seconds, newConnection }) {
  return generator === "wrk"
    ? wrkLoad({ url, pool, connections, seconds, newConnection })
    : nodeLoad({ url, bodies: pool.bodies, connections, seconds, newConnection });
}

async function wrkLoad({ url, pool, connections, seconds, newConnection }) {
  const args = [
    "-t1",
    `-c${connections}`,
    `-d${Math.max(1, Math.round(seconds))}s`,
    "--timeout",
    "10s",
    "-s",
    pool.script,
    url,
    "--",
    pool.pool,
  ];
  if (newConnection) args.push("close");
  const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
  const [code] = await once(child, "close");
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (code !== 0 || !line) throw new Error(`wrk exited ${code}: ${err || out}`);
  const r = JSON.parse(line.slice("BENCH_JSON ".length));
  return {
    rps: r.requests / (r.durationUs / 1e6),
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    requests: r.requests,
    errors: r.connect + r.read + r.write + r.timeout,
    non2xx: r.status,
  };
}

/**
 * One HTTP request through `agent` with `options` (node:http request options and `body`):
 * resolves with the status once the answer is read, undefined on a request or response error.
 */
function exchange(agent, { body, ...options }) {
  return new Promise((resolve) => {
    const req = request({ agent, ...options }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
      res.on("error", () => resolve(undefined));
    });
    req.on("error", () => resolve(undefined));
    req.end(body);
  });
}

/**
 * The fallback generator, in this process: `connections` loops, each sending its next request
 * when the previous answer has been read, through an agent with keepAlive on or off.
 */
async function nodeLoad({ url, bodies, connections, seconds, newConnection }) {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: !newConnection, maxSockets: connections });
  const latencies = [];
  let errors = 0;
  let non2xx = 0;
  let next = Math.floor(Math.random() * bodies.length);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const one = async (body) => {
    const start = performance.now();
    const status = await exchange(agent, {
      hostname,
      port,
      method: "POST",
      path: "/",
      headers: {
        "Content-Type": "application/ocsp-request",
        "Content-Length": body.length,
        ...(newConnection ? { Connection: "close" } : {}),
      },
      body,
    });
    if (status === undefined) errors++;
    else {
      if (status !== 200) non2xx++;
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await one(bodies[next++ % bodies.length]);
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requests: latencies.length,
    errors,
    non2xx,
  };
}

/**
 * `openssl ocsp -port` answering from an `openssl ca` index with a delegated signer, nextUpdate
 * `nmin` minutes after thisUpdate. Resolves once it listens, with { pid, url, stop() }.
 * It answers HTTP/1.0 and closes every connection after its answer.
 */
export async function startOpensslOcsp({ index, caFile, signerCert, signerKey, nmin = 60 }) {
  const port = await freePort();
  const child = spawn(
    "openssl",
    [
      "ocsp",
      "-port",
      String(port),
      "-index",
      index,
      "-CA",
      caFile,
      "-rsigner",
      signerCert,
      "-rkey",
      signerKey,
      "-nmin",
      String(nmin),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  const ready = new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d;
      if (log.includes("waiting for OCSP client connections")) resolve();
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.once("exit", (code) => reject(new Error(`openssl ocsp exited ${code}: ${log}`)));
    child.once("error", reject);
  });
  await ready;
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
  };
}

/** POST one DER request to `url` and resolve with the answer's HTTP status, headers and body. */
export function post(url, body, { newConnection = false } = {}) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname,
        port,
        method: "POST",
        path: "/",
        agent: false,
        headers: {
          "Content-Type": "application/ocsp-request",
          "Content-Length": body.length,
          ...(newConnection ? { Connection: "close" } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Check one answer with `openssl ocsp -reqin <request> -respin <answer> -VAfile <signer>`:
 * signature good, nonce echoed when the request has one (openssl compares them), status
 * `expected` for `certFile` (or for `serial`, canonical hex, when there is no certificate file).
 * Resolves with undefined when all holds, else the reason.
 */
export async function checkWithOpenssl({
  dir,
  tag,
  requestDer,
  answerDer,
  signerCert,
  caFile,
  certFile,
  serial,
  expected = "good",
}) {
  const req = join(dir, `${tag}.req.der`);
  const resp = join(dir, `${tag}.resp.der`);
  await writeFile(req, requestDer);
  await writeFile(resp, answerDer);
  const name = certFile ?? `0x${serial}`;
  const subject = certFile ? ["-cert", certFile] : ["-serial", name];
  const child = spawn(
    "openssl",
    // -no_nonce: without it openssl replaces the request's nonce with one of its own (it still compares
    // the request's nonce with the answer's).
    ["ocsp", "-reqin", req, "-respin", resp, "-VAfile", signerCert, "-issuer", caFile, ...subject, "-no_nonce"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
  const [code] = await once(child, "close");
  const text = `${out}${err}`.trim().replace(/\s+/g, " ");
  if (code !== 0) return `openssl ocsp exited ${code}: ${text}`;
  if (!err.includes("Response verify OK")) return `signature not verified: ${text}`;
  if (/no nonce in response|Nonce Verify error/i.test(text)) return `nonce not echoed: ${text}`;
  if (!out.includes(`${name}: ${expected}`)) return `status is not ${expected}: ${text}`;
  return undefined;
}

/**
 * Send each of `requests` once to `url` (each `{ method: "POST", body }` or `{ method: "GET",
 * path }`), `connections` at a time on a keep-alive agent. Resolves with { sent, non2xx, errors,
 * seconds }.
 */
export async function sendEach({ url, requests, connections = 50 }) {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let next = 0;
  let non2xx = 0;
  let errors = 0;
  const t0 = performance.now();
  const one = async (r) => {
    const status = await exchange(agent, {
      hostname,
      port,
      method: r.method,
      path: r.method === "GET" ? r.path : "/",
      headers: r.method === "GET" ? {} : { "Content-Type": "application/ocsp-request", "Content-Length": r.body.length },
      body: r.method === "GET" ? undefined : r.body,
    });
    if (status === undefined) errors++;
    else if (status !== 200) non2xx++;
  };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < requests.length) await one(requests[next++]);
    }),
  );
  agent.destroy();
  return { sent: requests.length, non2xx, errors, seconds: (performance.now() - t0) / 1000 };
}
