// OcspService.answer alone (no HTTP): nonce requests, one at a time and N in flight.
// Run: npx tsc -b && node bench/ocsp-service-answer.mjs [count] (env BENCH_KEY_TYPE=rsa-2048, BENCH_IN_FLIGHT=16)
// Profile: node --cpu-prof --cpu-prof-dir=prof bench/ocsp-service-answer.mjs
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority } from "../packages/ca/dist/index.js";
import { buildOcspRequest, toPkiCertificate } from "../packages/ocsp/dist/index.js";
import { Behaviour, CaStatusSource, OcspService } from "../packages/responder/dist/index.js";

const COUNT = Number(process.argv[2] ?? 400);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 16);
const keyType = process.env.BENCH_KEY_TYPE ?? "ecdsa-p256";
const dir = await mkdtemp(join(tmpdir(), "ocsp-lab-answer-"));
try {
  const ca = await CertificateAuthority.init(dir, { keyType });
  const leaf = await ca.issueServer();
  const cert = toPkiCertificate(leaf.certificate);
  const issuer = toPkiCertificate(ca.root.certificate);
  const requests = [];
  for (let i = 0; i < COUNT; i++) requests.push((await buildOcspRequest({ certificate: cert, issuer, nonce: true })).der);
  const service = new OcspService({ source: await CaStatusSource.create(ca), behaviour: new Behaviour() });
  for (let i = 0; i < 50; i++) await service.answer(requests[i]); // warm-up
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  let t0 = performance.now();
  for (const r of requests) {
    const a = await service.answer(r);
    if (a.outcome !== "good") throw new Error(a.outcome);
  }
  const serialMs = (performance.now() - t0) / COUNT;
  const elu1 = performance.eventLoopUtilization();
  const cpu1 = process.cpuUsage();
  const serialCpu = process.cpuUsage(cpu0);
  t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < COUNT) await service.answer(requests[next++]);
    }),
  );
  const parallelRate = COUNT / ((performance.now() - t0) / 1000);
  const elu2 = performance.eventLoopUtilization(elu1);
  const cpu2 = process.cpuUsage(cpu1);
  const ms = (cpu) => (cpu.user + cpu.system) / 1000 / COUNT;
  const loopMs = (e) => e.active / COUNT;
  console.log(
    `${keyType}: ${COUNT} nonce requests: ${serialMs.toFixed(3)} ms per answer one at a time (${Math.round(1000 / serialMs)}/s); ` +
      `${Math.round(parallelRate)} answers/s with ${IN_FLIGHT} in flight; ` +
      `per answer: event loop busy ${loopMs(performance.eventLoopUtilization(elu1, elu0)).toFixed(3)} / ${loopMs(elu2).toFixed(3)} ms, ` +
      `process CPU ${ms(serialCpu).toFixed(3)} / ${ms(cpu2).toFixed(3)} ms (one at a time / in flight)`,
  );
  ca.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
