// Scale benchmark of the lab CA store: 100,000 issued and 10,000 revoked
// certificates. Prints figures and ratios against baselines measured in the same run:
// - load: CertificateAuthority.open() vs a bare JSON.parse of the same ca.json (goal: < 1 s);
// - lookup: status() at 100,000 records vs at 1,000 records (O(1): the ratio stays near 1);
// - CRL: a full CRL with 10,000 entries, signing included (goal: < 2 s), and a whole
//   refreshCrls() (full + delta CRL, files and the locked store write).
// Run: npx -y pnpm@10 bench
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority, CrlGenerator } from "../packages/ca/dist/index.js";
import { synthesise } from "./lib/synth.mjs";

const ISSUED = 100_000;
const REVOKED = 10_000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (n) => `${n.toFixed(1)} ms`;

function lookupNs(ca, serials, rounds = 1_000_000) {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) sink += ca.status(serials[(i * 7919) % serials.length]).status.length;
  const t1 = process.hrtime.bigint();
  if (sink === 0) throw new Error("unreachable");
  return Number(t1 - t0) / rounds;
}

const big = await mkdtemp(join(tmpdir(), "ocsp-lab-bench-"));
const small = await mkdtemp(join(tmpdir(), "ocsp-lab-bench-"));
try {
  const { serials: bigSerials } = await synthesise(big, ISSUED, REVOKED);
  const { serials: smallSerials } = await synthesise(small, 1_000, 100);
  const file = join(big, "ca.json");
  const size = (await readFile(file)).length;

  const parse = [];
  const load = [];
  for (let i = 0; i < 5; i++) {
    let t = performance.now();
    JSON.parse(await readFile(file, "utf8"));
    parse.push(performance.now() - t);
    t = performance.now();
    const ca = await CertificateAuthority.open(big);
    load.push(performance.now() - t);
    ca.close();
  }

  const bigCa = await CertificateAuthority.open(big);
  const smallCa = await CertificateAuthority.open(small);
  lookupNs(bigCa, bigSerials, 100_000); // warm-up
  lookupNs(smallCa, smallSerials, 100_000);
  const nsBig = median([1, 2, 3].map(() => lookupNs(bigCa, bigSerials)));
  const nsSmall = median([1, 2, 3].map(() => lookupNs(smallCa, smallSerials)));

  const entries = bigCa
    .listRevoked()
    .map((r) => ({ serial: r.serial, revocationTime: new Date(r.revocation.time), revocationReason: r.revocation.reason }));
  const crl = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await CrlGenerator.create({
      issuer: bigCa.root,
      entries,
      crlNumber: BigInt(1000 + i),
      thisUpdate: new Date(),
      nextUpdate: new Date(Date.now() + 86_400_000),
    });
    crl.push(performance.now() - t);
  }
  const t = performance.now();
  await bigCa.refreshCrls();
  const refresh = performance.now() - t;

  const loadMs = median(load);
  const crlMs = median(crl);
  console.log(
    `store: ${ISSUED.toLocaleString("en")} issued, ${REVOKED.toLocaleString("en")} revoked, ca.json ${(size / 1e6).toFixed(1)} MB`,
  );
  console.log(
    `load     open() ${ms(loadMs)} vs bare JSON.parse ${ms(median(parse))}: ratio ${(loadMs / median(parse)).toFixed(2)}  (goal < 1000 ms: ${loadMs < 1000 ? "met" : "MISSED"})`,
  );
  console.log(
    `lookup   status() ${nsBig.toFixed(0)} ns at 100,000 vs ${nsSmall.toFixed(0)} ns at 1,000: ratio ${(nsBig / nsSmall).toFixed(2)}  (O(1): near 1; a scan would be 100×, cache misses in the bigger map explain the rest)`,
  );
  console.log(
    `crl      full CRL with ${entries.length.toLocaleString("en")} entries ${ms(crlMs)}  (goal < 2000 ms: ${crlMs < 2000 ? "met" : "MISSED"}); refreshCrls() with files and store write ${ms(refresh)}`,
  );
  bigCa.close();
  smallCa.close();
} finally {
  await rm(big, { recursive: true, force: true });
  await rm(small, { recursive: true, force: true });
}
