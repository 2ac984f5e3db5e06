/**
 * The lab as a library, in a dozen lines: start an OcspLab, connect the strict Node client to
 * its default server, revoke the certificate, wait for the stapler to staple that, connect
 * again, and print what happened; `await using` stops everything at the end of the block.
 * Run from the repository root: npx -y tsx examples/node-tls-client/lab-demo.ts
 */
import { NodeStrictClient, OcspLab } from "@ocsp-lab/harness";

{
  await using lab = await new OcspLab().withPolicy({ query_frequency: 60 }).start();
  const client = new NodeStrictClient();
  console.log(`lab server ${lab.url} (${lab.servername}), CA ${lab.caFile}, responder ${lab.responderUrl}`);
  console.log("before:", (await client.probe(lab)).outcome);
  await lab.revoke(lab.leaf, "keyCompromise");
  await lab.staple(lab.leaf).becomes("revoked");
  console.log("after revoke:", (await client.probe(lab)).outcome);
  console.log(
    "responder answered:",
    lab
      .requests(lab.leaf)
      .map((r) => r.outcome)
      .join(", "),
  );
}
console.log("stopped");
