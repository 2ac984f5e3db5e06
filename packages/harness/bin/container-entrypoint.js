#!/usr/bin/env node
/**
 * Entry point of the lab's OCI image (the repository's Dockerfile): runs `ocsp-lab up --json`
 * with fixed ports and makes them reachable from outside the container.
 *
 * `up` binds 127.0.0.1 only (it has no listen-address option), and a container's published
 * ports arrive on the container's own addresses, not on its loopback. So this forwards the
 * same ports on every non-loopback address of the container (eth0...) to 127.0.0.1, where
 * `up` listens. The URLs in the JSON line (`http://127.0.0.1:8080`, the certificate's AIA
 * URL) stay true on the host when the ports are published to the same numbers
 * (`docker run -p 127.0.0.1:8080:8080 -p 127.0.0.1:8443:8443`).
 *
 * Exposing the lab beyond loopback exposes its admin API too, so an admin token is required:
 * `OCSP_LAB_ADMIN_TOKEN` (8 characters or more, no spaces), which `up` reads; without it this
 * prints why and exits 2 before anything starts. The stapler's own admin endpoint stays on an
 * ephemeral loopback port inside the container (`docker exec <container> ocsp-lab set ...`
 * reaches it).
 *
 * Environment: OCSP_LAB_ADMIN_TOKEN (required), OCSP_LAB_RESPONDER_PORT (default 8080),
 * OCSP_LAB_STAPLER_PORT (default 8443), OCSP_LAB_HOME (the state folder; the image sets
 * /var/lib/ocsp-lab). Arguments are passed on to `ocsp-lab up` (e.g. `--quiet`,
 * `--query-frequency 2`).
 * Exit status: that of `ocsp-lab up` (0 after SIGTERM/SIGINT, which are passed on to it); 2
 * for a missing or bad token or port; 1 when a forwarding port cannot be bound.
 */
import { spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { networkInterfaces } from "node:os";
import { fileURLToPath } from "node:url";

const fail = (code, message) => {
  process.stderr.write(`ocsp-lab container: ${message}\n`);
  process.exit(code);
};

const token = process.env.OCSP_LAB_ADMIN_TOKEN;
if (!token || token.length < 8 || /\s/.test(token))
  fail(
    2,
    `OCSP_LAB_ADMIN_TOKEN must be set, 8 characters or more without spaces (got ${token ? `${token.length} characters` : "none"}): the container publishes the responder's admin API, which needs a token off loopback; run docker run -e OCSP_LAB_ADMIN_TOKEN=$(openssl rand -hex 16) ...`,
  );

const portOf = (name, fallback) => {
  const text = process.env[name] ?? String(fallback);
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(2, `${name} must be a TCP port (1-65535), got "${text}"`);
  return n;
};
const ports = [portOf("OCSP_LAB_RESPONDER_PORT", 8080), portOf("OCSP_LAB_STAPLER_PORT", 8443)];

/** The container's own addresses (not loopback, not IPv6 link-local, which would need a scope). */
const addresses = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i && !i.internal && !(i.family === "IPv6" && i.address.toLowerCase().startsWith("fe80:")))
  .map((i) => i.address);

const servers = [];
for (const address of addresses)
  for (const port of ports) {
    const server = createServer((client) => {
      const upstream = connect(port, "127.0.0.1");
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    server.on("error", (err) => fail(1, `cannot forward ${address}:${port} to 127.0.0.1:${port}: ${err.message}`));
    server.listen({ port, host: address });
    servers.push(server);
  }

const up = spawn(
  process.execPath,
  [
    fileURLToPath(new URL("./ocsp-lab.js", import.meta.url)),
    "up",
    "--json",
    "--responder-port",
    String(ports[0]),
    "--port",
    String(ports[1]),
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
// As PID 1 this process gets no default signal handling: pass the stop on to up, which stops the lab.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => up.kill(signal));
up.on("exit", (code, signal) => {
  for (const server of servers) server.close();
  process.exit(code ?? (signal === "SIGTERM" || signal === "SIGINT" ? 0 : 1));
});
